"""CPU scenario: the real all-MiniLM-L6-v2 on this machine's CPU, through the same sensor →
runs → Qdrant Edge path as the GPU-speed scenario, against embedding alone.

The pipeline's embedder records every text it is asked to embed; after the cold ingest the
same texts, in the same order, are encoded once more by the same (already loaded) encoder:
that is the embedding-only floor the cold wall is compared with. The model is loaded and
warmed before either is timed (a run process loads it once; both sides would pay it equally).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag_ingest.core.encoder import shared_encoder
from rag_ingest.resources.embedders import EmbedStats, LocalEmbedder

from .common import Stopwatch
from .gpu_speed import GpuSpeedResult, run_gpu_speed

# Module level, not a field: resources are frozen pydantic models, copied when Dagster binds
# them, so an instance attribute would not be the list this module reads back.
_RECORDED: list[str] = []


class RecordingEmbedder(LocalEmbedder):
    """The project's LocalEmbedder, unchanged, that also keeps the texts it embedded."""

    def embed(self, texts: list[str]) -> tuple[np.ndarray, EmbedStats]:
        _RECORDED.extend(texts)
        return super().embed(texts)


@dataclass
class CpuResult:
    pipeline: GpuSpeedResult
    model_load_seconds: float
    texts: int
    embedding_only_seconds: float

    @property
    def ratio(self) -> float:
        """Cold pipeline wall / embedding-only of the same texts (target ≤ 1.15)."""
        if not self.embedding_only_seconds:
            return float("nan")
        return self.pipeline.wall / self.embedding_only_seconds

    @property
    def chunks_per_second(self) -> float:
        s = self.embedding_only_seconds
        return self.texts / s if s else float("nan")


def run_cpu(
    endpoint: str,
    bucket: str,
    documents: int,
    workdir: Path,
    documents_per_run: int = 2000,
    shards: int = 256,
    say: Callable[[str], None] = print,
) -> CpuResult:
    embedder = RecordingEmbedder()
    with Stopwatch() as loading:
        encoder = shared_encoder(embedder.device, embedder.batch_size, embedder.backend)
        encoder.encode(["warm-up"])
    _RECORDED.clear()
    pipeline = run_gpu_speed(
        endpoint,
        bucket,
        documents,
        workdir,
        documents_per_run=documents_per_run,
        shards=shards,
        say=say,
        embedder=embedder,
        label="cpu",
    )
    texts = list(_RECORDED)
    _RECORDED.clear()
    with Stopwatch() as floor:
        encoder.encode(texts)
    say(f"cpu: {len(texts)} texts, cold {pipeline.wall:.1f}s, embedding-only {floor.seconds:.1f}s")
    return CpuResult(pipeline, loading.seconds, len(texts), floor.seconds)
