"""Nearest chunks to a query vector, with where they came from."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rag_ingest.core.vectorstore.base import VectorStore


@dataclass(frozen=True)
class Hit:
    score: float
    source: str
    text: str
    page: int | None
    heading: str | None
    chunk_index: int
    chunk_count: int


def search_collection(store: VectorStore, collection: str, vector: np.ndarray, k: int) -> list[Hit]:
    """The ``k`` best chunks by cosine similarity; empty when the collection does not exist."""
    if k < 1:
        raise ValueError("k must be at least 1")
    hits = []
    for point in store.search(collection, vector, k):
        meta = point.payload.get("metadata", {})
        hits.append(
            Hit(
                score=float(point.score),
                source=str(meta.get("source", "")),
                text=str(point.payload.get("page_content", "")),
                page=meta.get("page"),
                heading=meta.get("heading"),
                chunk_index=int(meta.get("chunk_index", 0)),
                chunk_count=int(meta.get("chunk_count", 0)),
            )
        )
    return hits
