"""Text: chunking to the model's token budget, tokenizer helpers, the encoder embedders run."""
