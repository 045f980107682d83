"""A second sentence-transformers model, built here: no other weights can be downloaded.

A 2-layer BERT with 32-dimensional hidden states and random (seeded) weights, its own WordPiece
vocabulary trained offline with ``tokenizers`` on a few sentences, wrapped as Transformer +
Pooling + Normalize with e5-style prompts in its ``config_sentence_transformers.json``. Every
fact differs from all-MiniLM-L6-v2's (dimension, window, vocabulary, prompts), so a fact that
reached the pipeline from MiniLM instead of from the model shows up.
"""

from __future__ import annotations

from pathlib import Path

DIMENSION = 32
MAX_SEQ_LENGTH = 48
PROMPTS = {"query": "query: ", "document": "passage: "}
_CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "glacier and river carve the valley over centuries",
    "honey bread rises slowly in a warm kitchen",
    "a chess engine searches the puzzle tree",
    "the comet orbit passes the lantern of the lighthouse",
    "query passage retrieval embedding model document search",
]


def build_tiny_model(
    dst: Path,
    *,
    pooling: str = "mean",
    prompts: dict[str, str] | None = None,
    with_tokenizer: bool = True,
) -> Path:
    """Save the tiny model as a sentence-transformers folder at ``dst`` and return it."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    trainer = trainers.WordPieceTrainer(vocab_size=400, special_tokens=specials)
    tokenizer.train_from_iterator(_CORPUS * 20, trainer)
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=MAX_SEQ_LENGTH,
    )
    config = BertConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=DIMENSION,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    torch.manual_seed(0)
    raw = dst.parent / f"{dst.name}-transformer"
    BertModel(config).save_pretrained(raw)
    fast.save_pretrained(raw)
    word = Transformer(str(raw), max_seq_length=MAX_SEQ_LENGTH)
    pool = Pooling(DIMENSION, pooling)  # type: ignore[arg-type]  # one of its Literal modes
    model = SentenceTransformer(
        modules=[word, pool, Normalize()],
        prompts=PROMPTS if prompts is None else prompts,
    )
    model.save(str(dst))
    if not with_tokenizer:
        for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt"):
            (dst / name).unlink(missing_ok=True)
    return dst
