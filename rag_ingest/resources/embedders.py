"""The ``Embedder`` resource interface and its local (in-process) implementation."""

import time
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import dagster as dg
import numpy as np
from pydantic import field_validator, model_validator

from rag_ingest.core.text.encoder import (
    DEFAULT_BACKEND,
    Encoder,
    check_backend,
    shared_encoder,
    vector_space,
)
from rag_ingest.core.text.model import DEFAULT_MODEL, ModelSpec, resolve_model


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
    """Turns texts into normalized float32 vectors of :attr:`dimension` dims.

    ``model`` and the rest name the sentence-transformers model (``Settings.embed_model`` and
    its neighbours; see :func:`rag_ingest.core.text.model.resolve_model`); it is resolved when
    the resource is built, so an unusable model is refused at load.
    """

    model: str = DEFAULT_MODEL
    model_revision: str = ""
    query_prompt: str | None = None
    document_prompt: str | None = None
    batch_size: int = 64
    # How long a run waits for another run's embedding (see ``serializes_runs``).
    lock_wait_seconds: float = 3600.0

    @property
    def serializes_runs(self) -> bool:
        """Whether runs take turns embedding (the deployment's ``embedder`` lock): true where
        embedding competes for this machine's cores and memory, false for a remote service
        that scales by itself."""
        return False

    @model_validator(mode="after")
    def _resolvable(self) -> "Embedder":
        _ = self.spec  # a ModelError (a ValueError) refuses the resource
        return self

    @property
    def spec(self) -> ModelSpec:
        prompts = (self.query_prompt, self.document_prompt)
        return resolve_model(self.model, self.model_revision, *prompts)

    @property
    def model_name(self) -> str:
        return self.spec.name

    @property
    def dimension(self) -> int:
        return self.spec.dimension

    @property
    @abstractmethod
    def vector_space(self) -> str:
        """Runtime and precision of the vectors (part of the pipeline fingerprint)."""

    @abstractmethod
    def embed(self, texts: list[str]) -> tuple[np.ndarray, EmbedStats]:
        """Embed documents' ``texts`` in order, with the model's document prompt; returns
        ``(len(texts), dimension)`` float32 and stats."""

    @abstractmethod
    def embed_query(self, queries: list[str]) -> np.ndarray:
        """Embed search queries, with the model's query prompt: ``(len(queries), dimension)``."""


class LocalEmbedder(Embedder):
    """The model in this process, from local files; loaded once per process.

    ``backend`` picks the runtime (see ``rag_ingest.core.text.encoder.BACKENDS``): ``torch`` is
    sentence-transformers itself; ``onnx``/``openvino`` run an fp32 export of the same weights
    (the ``cpu`` extra), for BERT models with mean pooling only. Exports are made once into
    the export cache (``RAG_EMBED_CACHE_DIR``, else ``$RAG_DATA_DIR/embedder-cache``) and reused.
    """

    device: str = "cpu"
    backend: str = DEFAULT_BACKEND

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        # Fails at resource construction (definitions load), not at the first embed of a run.
        return check_backend(value)

    @model_validator(mode="after")
    def _exportable(self) -> "LocalEmbedder":
        if self.backend != "torch":
            from rag_ingest.core.text.export import check_exportable

            check_exportable(self.spec, self.backend)
        return self

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
        vectors = self._encoder().encode(texts)
        batches = -(-len(texts) // self.batch_size)
        label = f"local/{self.backend}"
        stats = EmbedStats(label, len(texts), batches, time.perf_counter() - started)
        return vectors, stats

    def embed_query(self, queries: list[str]) -> np.ndarray:
        return self._encoder().encode_query(queries)

    def _encoder(self) -> Encoder:
        return shared_encoder(self.device, self.batch_size, self.backend, spec=self.spec)
