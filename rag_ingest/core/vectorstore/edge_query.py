"""Qdrant Edge requests for :class:`~rag_ingest.core.vectorstore.edge.EdgeStore`: the filters
its deletes, counts and scrolls use, the points it writes, and its dense, sparse and hybrid
queries."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import qdrant_edge as qe

from rag_ingest.core.text.sparse import SparseVector
from rag_ingest.core.vectorstore.base import (
    DOC_ID_FIELD,
    KEY_HASH_FIELD,
    RRF_K,
    KeyHashRange,
    ScoredPoint,
    prefetch_limit,
)


def doc_match(doc_ids: Sequence[str]) -> qe.FieldCondition:
    return qe.FieldCondition(DOC_ID_FIELD, match=qe.MatchAny(list(doc_ids)))


def points_filter(
    doc_ids: Sequence[str] | None, key_hashes: KeyHashRange | None
) -> qe.Filter | None:
    must: list[Any] = []
    if doc_ids is not None:
        must.append(doc_match(doc_ids))
    if key_hashes is not None:
        low, high = key_hashes
        must.append(qe.FieldCondition(KEY_HASH_FIELD, range=qe.RangeFloat(gte=low, lte=high)))
    return qe.Filter(must=must) if must else None


def point_vectors(
    dense: list[float], sparse_name: str | None, bm25: SparseVector | None
) -> qe.Vector:
    if sparse_name is None or bm25 is None:
        return dense
    return {"": dense, sparse_name: qe.SparseVector(indices=bm25.indices, values=bm25.values)}


def scored(hits: Sequence[Any]) -> list[ScoredPoint]:
    return [
        ScoredPoint(id=str(h.id), score=float(h.score), payload=dict(h.payload or {})) for h in hits
    ]


def search_request(vector: np.ndarray, k: int, params: qe.SearchParams | None) -> qe.SearchRequest:
    query = qe.Query.Nearest(np.asarray(vector, dtype=np.float32).tolist())
    return qe.SearchRequest(query=query, limit=k, with_payload=True, params=params)


def query_request(
    k: int,
    dense: np.ndarray | None,
    dense_params: qe.SearchParams | None,
    sparse: SparseVector | None,
    sparse_name: str | None,
) -> qe.QueryRequest:
    """A dense or sparse query, or both fused by RRF over a prefetch of each."""
    stages: list[tuple[qe.Query, qe.SearchParams | None]] = []
    if dense is not None:
        vector = np.asarray(dense, dtype=np.float32).tolist()
        stages.append((qe.Query.Nearest(vector, using=""), dense_params))
    if sparse is not None:
        assert sparse_name is not None
        bm25 = qe.SparseVector(indices=sparse.indices, values=sparse.values)
        stages.append((qe.Query.Nearest(bm25, using=sparse_name), None))
    if not stages:
        raise ValueError("a query needs a dense or a sparse vector")
    if len(stages) == 1:
        query, params = stages[0]
        return qe.QueryRequest(limit=k, query=query, params=params, with_payload=True)
    limit = prefetch_limit(k)
    return qe.QueryRequest(
        limit=k,
        # The stub lists Fusion but not its Rrf variant, which the engine takes.
        query=qe.Fusion.Rrf(k=RRF_K),  # pyright: ignore[reportArgumentType]
        prefetches=[qe.Prefetch(limit=limit, query=q, params=p) for q, p in stages],
        with_payload=True,
    )
