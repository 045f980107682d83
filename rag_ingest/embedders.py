"""The ``Embedder`` resource interface and its local (in-process) implementation."""

import time
from abc import abstractmethod
from dataclasses import dataclass

import dagster as dg
import numpy as np

from rag_ingest.core.encoder import DIMENSION, MODEL_NAME, shared_encoder


@dataclass(frozen=True)
class EmbedStats:
    """What one ``embed`` call cost; recorded as materialization metadata."""

    backend: str
    texts: int
    batches: int
    seconds: float
    gpu_seconds: float = 0.0
    cost_usd: float = 0.0


class Embedder(dg.ConfigurableResource):
    """Turns texts into normalized float32 vectors of :attr:`dimension` dims."""

    batch_size: int = 64

    @property
    def model_name(self) -> str:
        return MODEL_NAME

    @property
    def dimension(self) -> int:
        return DIMENSION

    @abstractmethod
    def embed(self, texts: list[str]) -> tuple[np.ndarray, EmbedStats]:
        """Embed ``texts`` in order; returns ``(len(texts), dimension)`` float32 and stats."""


class LocalEmbedder(Embedder):
    """all-MiniLM-L6-v2 in this process, from the packaged weights; loaded once per process."""

    device: str = "cpu"

    def embed(self, texts: list[str]) -> tuple[np.ndarray, EmbedStats]:
        started = time.perf_counter()
        vectors = shared_encoder(self.device, self.batch_size).encode(texts)
        batches = -(-len(texts) // self.batch_size)
        stats = EmbedStats("local", len(texts), batches, time.perf_counter() - started)
        return vectors, stats
