"""BENCH-ONLY embedder: vectors from a hash of the text, at almost no cost.

It stands in for a GPU fast enough that embedding is not the bottleneck, so the benchmark can
measure everything else (sensor, Dagster, S3, extraction, chunking, Parquet, Qdrant) at the
rate such an embedder would demand. The vectors mean nothing: deterministic (the same text
gives the same vector), unit-normalized, 384-d float32. It reports the settings' vector space
so the pipeline's fingerprint check accepts it. Never use it outside ``bench/``.
"""

from __future__ import annotations

import hashlib
import time

import numpy as np

from rag_ingest.core.text.encoder import DEFAULT_BACKEND, DIMENSION, vector_space
from rag_ingest.resources.embedders import Embedder, EmbedStats

LABEL = "bench-hashing (BENCH-ONLY, not a model)"


def hash_vectors(texts: list[str]) -> np.ndarray:
    """``(len(texts), 384)`` unit vectors: SHAKE-128 of each text, read as signed bytes."""
    if not texts:
        return np.zeros((0, DIMENSION), dtype=np.float32)
    raw = b"".join(
        hashlib.shake_128(t.encode("utf-8", "surrogatepass")).digest(DIMENSION) for t in texts
    )
    vectors = np.frombuffer(raw, dtype=np.int8).reshape(len(texts), DIMENSION).astype(np.float32)
    vectors += 0.5  # int8 is -128..127: centre it, so no vector is all zeros
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


class HashingEmbedder(Embedder):
    """BENCH-ONLY: see the module docstring. ``backend`` is the one whose vector space it
    claims (the settings' ``embed_backend``), so the pipeline's fingerprint check passes."""

    backend: str = DEFAULT_BACKEND

    @property
    def model_name(self) -> str:
        return LABEL

    @property
    def vector_space(self) -> str:
        return vector_space(self.backend)

    def embed(self, texts: list[str]) -> tuple[np.ndarray, EmbedStats]:
        started = time.perf_counter()
        vectors = hash_vectors(texts)
        batches = -(-len(texts) // self.batch_size)
        stats = EmbedStats(LABEL, len(texts), batches, time.perf_counter() - started)
        return vectors, stats

    def embed_query(self, queries: list[str]) -> np.ndarray:
        return hash_vectors(queries)
