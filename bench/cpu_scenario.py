"""CPU scenario: the real all-MiniLM-L6-v2 on this machine's CPU, through the same sensor →
runs → Qdrant Edge path as the GPU-speed scenario, against embedding alone.

The embedding-only floor is the same texts encoded by the same (already loaded) encoder, once
before the cold ingest and once after it: one encode of a few thousand texts varies by 10–20%
from one minute to the next on a shared machine, so the floor is the mean of the two, and
neither side gets the warmer process. The texts of the first pass are made from the bucket by
the project's own extract and chunk functions (outside every timing) and must equal, as a
multiset, the texts the pipeline's embedder was asked for (it records them); sentence-
transformers sorts a call's texts by length, so the order does not change the work. The model
is loaded and warmed before anything is timed (a run process loads it once; both sides would
pay it equally).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag_ingest.core.documents.extract import extract
from rag_ingest.core.storage import s3
from rag_ingest.core.text.chunking import chunk_blocks
from rag_ingest.core.text.encoder import shared_encoder
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
    floor_before_seconds: float
    floor_after_seconds: float

    @property
    def embedding_only_seconds(self) -> float:
        return (self.floor_before_seconds + self.floor_after_seconds) / 2

    @property
    def ratio(self) -> float:
        """Cold pipeline wall / embedding-only of the same texts (target ≤ 1.15)."""
        if not self.embedding_only_seconds:
            return float("nan")
        return self.pipeline.wall / self.embedding_only_seconds


def corpus_texts(endpoint: str, bucket: str, max_tokens: int, overlap: int) -> list[str]:
    """The chunk texts of every object in ``bucket``, by the pipeline's extract and chunk."""
    client = s3.make_client(endpoint, "us-east-1")
    texts: list[str] = []
    for obj in s3.list_objects(client, bucket, ""):
        fetched = s3.fetch(client, bucket, obj.key, 1 << 26)
        doc = extract(obj.key, fetched.body, fetched.content_type, fetched.content_encoding)
        texts += [c.text for c in chunk_blocks(doc.blocks, max_tokens, overlap)]
    return texts


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
    from rag_ingest.testing.harness import make_settings

    defaults = make_settings(bucket, workdir)
    before = corpus_texts(
        endpoint, bucket, defaults.chunk_max_tokens, defaults.chunk_overlap_tokens
    )
    with Stopwatch() as floor_before:
        encoder.encode(before)
    say(f"cpu: embedding-only before the ingest: {len(before)} texts, {floor_before.seconds:.1f}s")
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
    if sorted(texts) != sorted(before):
        raise AssertionError(
            f"the pipeline embedded {len(texts)} texts, the floor's corpus has {len(before)}: "
            "the floor would not measure the same work"
        )
    with Stopwatch() as floor_after:
        encoder.encode(texts)
    say(
        f"cpu: {len(texts)} texts, cold {pipeline.wall:.1f}s, embedding-only "
        f"{floor_before.seconds:.1f}s before / {floor_after.seconds:.1f}s after"
    )
    return CpuResult(
        pipeline, loading.seconds, len(texts), floor_before.seconds, floor_after.seconds
    )
