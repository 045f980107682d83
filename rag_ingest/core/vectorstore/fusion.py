"""What a query asks of either engine: its stages (dense, sparse, or both fused), how the two
are fused, how many points to fetch, and how the answer is cut to ``k``.

Both engines translate one :class:`QueryPlan` into their own request types, so the limits, the
fusion and the order of the answer are the same whichever engine holds the points.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from rag_ingest.core.text.sparse import SparseVector

# Reciprocal rank fusion's constant: Qdrant's default, which LangChain's hybrid mode gets.
RRF_K = 2


@dataclass(frozen=True)
class ScoredPoint:
    id: str
    score: float
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Fusion:
    """How a hybrid query fuses its dense and sparse prefetches: Qdrant's reciprocal rank
    fusion (``rrf``, with constant ``rrf_k``) or distribution-based score fusion (``dbsf``);
    each side ranks ``max(prefetch_factor * k, prefetch_floor)`` candidates first."""

    method: Literal["rrf", "dbsf"] = "rrf"
    rrf_k: int = RRF_K
    prefetch_factor: int = 4
    prefetch_floor: int = 40
    # RRF's weight of the sparse (BM25) ranking against the dense one's 1.
    sparse_weight: float = 1.0

    def __post_init__(self) -> None:
        if not self.sparse_weight > 0:
            raise ValueError(f"sparse_weight must be above 0, got {self.sparse_weight}")
        if self.method == "dbsf" and self.sparse_weight != 1:
            raise ValueError("sparse_weight applies to RRF; Qdrant's DBSF takes no weights")

    def prefetch_limit(self, k: int) -> int:
        """Candidates each side ranks before fusion: a point found by one side only still
        makes the fused top ``k`` when it ranks high there."""
        return max(self.prefetch_factor * k, self.prefetch_floor)

    @property
    def label(self) -> str:
        method = f"RRF k={self.rrf_k}" if self.method == "rrf" else "DBSF"
        if self.method == "rrf" and self.sparse_weight != 1:
            method += f", sparse weight {self.sparse_weight:g}"
        return f"{method}, prefetch max({self.prefetch_factor}k, {self.prefetch_floor})"

    def rrf_weights(self, stages: Sequence[Stage]) -> list[float] | None:
        """Per prefetch, in ``stages``' order, its RRF weight; None when all are equal (the
        engines' plain RRF, which older Qdrant servers also take)."""
        if self.sparse_weight == 1:
            return None
        return [self.sparse_weight if isinstance(s.vector, SparseVector) else 1.0 for s in stages]


DEFAULT_FUSION = Fusion()


def fetch_limit(k: int) -> int:
    """Points asked of the engine for an answer of ``k``: more than ``k``, so points tied at
    the ``k``-th place are all seen and the cut is made by id, not by the engine's order
    (fused scores tie often, and Qdrant's fusion leaves ties in hash-map order)."""
    return k + max(k, 10)


def cut(points: Iterable[ScoredPoint], k: int) -> list[ScoredPoint]:
    """The best ``k`` points, ties broken by point id: the same answer on every call."""
    return sorted(points, key=lambda p: (-p.score, p.id))[:k]


@dataclass(frozen=True)
class Stage:
    """One side of a query: the vector and the name of the stored vector it is compared with
    (``""``: the unnamed dense vector)."""

    using: str
    vector: list[float] | SparseVector


@dataclass(frozen=True)
class QueryPlan:
    k: int
    stages: list[Stage]
    fusion: Fusion

    @property
    def limit(self) -> int:
        """Points the engine returns (then :meth:`cut` to ``k``)."""
        return fetch_limit(self.k)

    @property
    def prefetch_limit(self) -> int:
        return max(self.fusion.prefetch_limit(self.k), self.limit)

    @property
    def fused(self) -> bool:
        return len(self.stages) > 1

    def cut(self, points: Iterable[ScoredPoint]) -> list[ScoredPoint]:
        return cut(points, self.k)


def plan_query(
    collection: str,
    k: int,
    dense: np.ndarray | None,
    sparse: SparseVector | None,
    sparse_name: Callable[[], str | None],
    fusion: Fusion | None = None,
) -> QueryPlan:
    """The stages of a query; ``sparse_name()`` names the collection's sparse vector (None:
    it has none) and is asked only for a sparse query.

    Raises:
        ValueError: ``k`` below 1, neither vector, or a sparse query on a collection without
            a sparse vector.
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    stages: list[Stage] = []
    if dense is not None:
        stages.append(Stage("", np.asarray(dense, dtype=np.float32).tolist()))
    if sparse is not None:
        name = sparse_name()
        if name is None:
            raise ValueError(f"collection {collection!r} has no sparse vector")
        stages.append(Stage(name, sparse))
    if not stages:
        raise ValueError("a query needs a dense or a sparse vector")
    return QueryPlan(k, stages, fusion or DEFAULT_FUSION)
