"""The seed's approach, for comparison: one document at a time, everything from scratch.

Per document it fetches and extracts the object (the project's own code, so only the batching
differs), loads the model fresh, embeds the document's chunks in one call, and recreates the
Qdrant collection before upserting. It runs on a small subset; the harness extrapolates.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qdrant_client import QdrantClient, models

from rag_ingest.core import s3
from rag_ingest.core.chunking import chunk_blocks
from rag_ingest.core.encoder import DIMENSION, MAX_SEQ_LENGTH, model_dir
from rag_ingest.core.extract import extract


@dataclass(frozen=True)
class SeedMeasure:
    documents: int
    chunks: int
    seconds: float
    model_load_seconds: float

    @property
    def seconds_per_document(self) -> float:
        return self.seconds / self.documents if self.documents else float("nan")


def run_seed(client: Any, bucket: str, keys: Sequence[str], workdir: Path) -> SeedMeasure:
    from sentence_transformers import SentenceTransformer

    workdir.mkdir(parents=True, exist_ok=True)
    qdrant = QdrantClient(path=str(workdir / "qdrant"))
    chunks = 0
    load_seconds = 0.0
    started = time.perf_counter()
    try:
        for key in keys:
            fetched = s3.fetch(client, bucket, key, 64 * 1024 * 1024)
            doc = extract(key, fetched.body, fetched.content_type, fetched.content_encoding)
            texts = [c.text for c in chunk_blocks(doc.blocks)]
            loading = time.perf_counter()
            model = SentenceTransformer(str(model_dir()), device="cpu")
            model.max_seq_length = MAX_SEQ_LENGTH
            load_seconds += time.perf_counter() - loading
            vectors = model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
            if qdrant.collection_exists("documents"):
                qdrant.delete_collection("documents")
            qdrant.create_collection(
                "documents",
                vectors_config=models.VectorParams(size=DIMENSION, distance=models.Distance.COSINE),
            )
            qdrant.upsert(
                "documents",
                points=[
                    models.PointStruct(id=i, vector=v.tolist(), payload={"page_content": t})
                    for i, (t, v) in enumerate(zip(texts, vectors, strict=True))
                ],
                wait=True,
            )
            chunks += len(texts)
    finally:
        qdrant.close()
    return SeedMeasure(len(keys), chunks, time.perf_counter() - started, load_seconds)
