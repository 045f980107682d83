"""Documents: format detection, decoding and extraction to text blocks, in bounded workers."""
