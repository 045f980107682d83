"""The ``Embedder`` resource interface and its local (in-process) implementation."""

import time
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import dagster as dg
import numpy as np
from pydantic import field_validator

from rag_ingest.core.text.encoder import (
    DEFAULT_BACKEND,
    DIMENSION,
    MODEL_NAME,
    check_backend,
    shared_encoder,
    vector_space,
)


class EmbeddingError(RuntimeError):
    """Some texts could not be embedded; ``failed_spans`` are their (start, end) indices."""

    def __init__(self, message: str, failed_spans: Sequence[tuple[int, int]]) -> None:
        super().__init__(message)
        self.failed_spans = list(failed_spans)


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
    # How long a run waits for another run's embedding (see ``serializes_runs``).
    lock_wait_seconds: float = 3600.0

    @property
    def serializes_runs(self) -> bool:
        """Whether runs take turns embedding (the deployment's ``embedder`` lock): true where
        embedding competes for this machine's cores and memory, false for a remote service
        that scales by itself."""
        return False

    @property
    def model_name(self) -> str:
        return MODEL_NAME

    @property
    def dimension(self) -> int:
        return DIMENSION

    @property
    @abstractmethod
    def vector_space(self) -> str:
        """Runtime and precision of the vectors (part of the pipeline fingerprint)."""

    @abstractmethod
    def embed(self, texts: list[str]) -> tuple[np.ndarray, EmbedStats]:
        """Embed ``texts`` in order; returns ``(len(texts), dimension)`` float32 and stats."""


class LocalEmbedder(Embedder):
    """all-MiniLM-L6-v2 in this process, from the packaged weights; loaded once per process.

    ``backend`` picks the runtime (see ``rag_ingest.core.text.encoder.BACKENDS``): ``torch`` is
    sentence-transformers itself; ``onnx``/``openvino`` run an fp32 export of the same weights
    (the ``cpu`` extra). Exports are made once into the export cache
    (``RAG_EMBED_CACHE_DIR``, else ``$RAG_DATA_DIR/embedder-cache``) and reused.
    """

    device: str = "cpu"
    backend: str = DEFAULT_BACKEND

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        # Fails at resource construction (definitions load), not at the first embed of a run.
        return check_backend(value)

    @property
    def vector_space(self) -> str:
        return vector_space(self.backend)

    @property
    def serializes_runs(self) -> bool:
        # In-process: two runs embedding at once on one machine only slow each other down
        # and hold the model twice.
        return True

    def embed(self, texts: list[str]) -> tuple[np.ndarray, EmbedStats]:
        started = time.perf_counter()
        vectors = shared_encoder(self.device, self.batch_size, self.backend).encode(texts)
        batches = -(-len(texts) // self.batch_size)
        label = f"local/{self.backend}"
        stats = EmbedStats(label, len(texts), batches, time.perf_counter() - started)
        return vectors, stats
