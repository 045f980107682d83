"""Qdrant Edge requests for :class:`~rag_ingest.core.vectorstore.edge.EdgeStore`: the filters
its deletes, counts and scrolls use, the points it writes, and its dense, sparse and hybrid
queries."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import qdrant_edge as qe

from rag_ingest.core.text.sparse import SparseVector
from rag_ingest.core.vectorstore.base import DOC_ID_FIELD, KEY_HASH_FIELD, KeyHashRange
from rag_ingest.core.vectorstore.fusion import QueryPlan, ScoredPoint, Stage


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


def query_request(plan: QueryPlan, dense_params: qe.SearchParams | None) -> qe.QueryRequest:
    """A dense or sparse query, or both fused (RRF or DBSF) over a prefetch of each."""

    def nearest(stage: Stage) -> tuple[qe.Query, qe.SearchParams | None]:
        v = stage.vector
        if not isinstance(v, SparseVector):
            return qe.Query.Nearest(v, using=stage.using), dense_params
        bm25 = qe.SparseVector(indices=v.indices, values=v.values)
        return qe.Query.Nearest(bm25, using=stage.using), None

    if not plan.fused:
        query, params = nearest(plan.stages[0])
        return qe.QueryRequest(limit=plan.limit, query=query, params=params, with_payload=True)
    limit = plan.prefetch_limit
    prefetches = [qe.Prefetch(limit=limit, query=q, params=p) for q, p in map(nearest, plan.stages)]
    fusion = plan.fusion
    weights = fusion.rrf_weights(plan.stages)
    fused = qe.Fusion.Dbsf() if fusion.method == "dbsf" else qe.Fusion.Rrf(fusion.rrf_k, weights)
    return qe.QueryRequest(
        limit=plan.limit,
        # The stub lists Fusion but not its variants, which the engine takes.
        query=fused,  # pyright: ignore[reportArgumentType]
        prefetches=prefetches,
        with_payload=True,
    )
