"""Best chunks for a query, by the dense vector, BM25, or both fused, with where they came from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from rag_ingest.core.text.sparse import SparseVector
from rag_ingest.core.vectorstore.base import VectorStore
from rag_ingest.core.vectorstore.fusion import Fusion

Mode = Literal["dense", "sparse", "hybrid"]
MODES: tuple[str, ...] = get_args(Mode)


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
    store: VectorStore,
    collection: str,
    vector: np.ndarray | None,
    k: int,
    sparse: SparseVector | None = None,
    fusion: Fusion | None = None,
) -> list[Hit]:
    """The ``k`` best chunks by cosine similarity to ``vector``, by BM25 for ``sparse``, or by
    both fused by Qdrant (``fusion``: plain RRF unless given) when both are given; empty when
    the collection does not exist."""
    if k < 1:
        raise ValueError("k must be at least 1")
    if sparse is None:
        if vector is None:
            raise ValueError("a search needs a dense or a sparse query vector")
        points = store.search(collection, vector, k)
    else:
        points = store.query(collection, k, dense=vector, sparse=sparse, fusion=fusion)
    hits = []
    for point in points:
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
