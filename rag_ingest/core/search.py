"""Nearest chunks to a query vector, with where they came from."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from qdrant_client import QdrantClient


@dataclass(frozen=True)
class Hit:
    score: float
    source: str
    text: str
    page: int | None
    heading: str | None
    chunk_index: int
    chunk_count: int


def search_collection(
    client: QdrantClient, collection: str, vector: np.ndarray, k: int
) -> list[Hit]:
    """The ``k`` best chunks by cosine similarity; empty when the collection does not exist."""
    if k < 1:
        raise ValueError("k must be at least 1")
    if not client.collection_exists(collection):
        return []
    response = client.query_points(
        collection, query=vector.astype(float).tolist(), limit=k, with_payload=True
    )
    hits = []
    for point in response.points:
        payload = point.payload or {}
        meta = payload.get("metadata", {})
        hits.append(
            Hit(
                score=float(point.score),
                source=str(meta.get("source", "")),
                text=str(payload.get("page_content", "")),
                page=meta.get("page"),
                heading=meta.get("heading"),
                chunk_index=int(meta.get("chunk_index", 0)),
                chunk_count=int(meta.get("chunk_count", 0)),
            )
        )
    return hits
