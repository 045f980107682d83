"""Checks evaluated by the ingestion assets on what they just wrote (one result per run).

``embeddings``' vector check is blocking: bad vectors never reach Qdrant. The Qdrant checks run
after the write (nothing is downstream to protect) and fail at ERROR severity.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import dagster as dg
import numpy as np

from rag_ingest.core.health import norm_outliers

EXAMPLES = 20
EMBEDDING_CHECKS = [
    dg.AssetCheckSpec(
        "vectors_match_chunks",
        asset="embeddings",
        blocking=True,
        description="One finite unit vector of the model's dimension per chunk, per document.",
    ),
    dg.AssetCheckSpec(
        "documents_with_zero_chunks",
        asset="embeddings",
        description="Documents of the run that produced no chunks (WARN; reasons listed).",
    ),
]
COLLECTION_CHECKS = [
    dg.AssetCheckSpec(
        "dimension_matches_collection",
        asset="qdrant_collection",
        description="The collection's vector size equals the embedder's dimension.",
    ),
    dg.AssetCheckSpec(
        "no_duplicate_point_ids",
        asset="qdrant_collection",
        description="Point ids written by the run are unique (one per document chunk).",
    ),
    dg.AssetCheckSpec(
        "points_match_chunks",
        asset="qdrant_collection",
        description="After the write, each document has exactly as many points as chunks.",
    ),
]


def examples_json(items: Sequence[str]) -> dg.MetadataValue:
    """The first :data:`EXAMPLES` items, as JSON metadata (lists can be 100k long)."""
    return dg.MetadataValue.json(list(items[:EXAMPLES]))


class EmbeddingAudit:
    """Accumulates per-document facts while ``embeddings`` writes, then reports its checks."""

    def __init__(self, dimension: int) -> None:
        self.dimension = dimension
        self.bad_documents: list[str] = []
        self.non_unit = 0
        self.zero_chunk: list[str] = []

    def add(self, key: str, chunk_count: int, vectors: np.ndarray, reason: str | None) -> None:
        shape_ok = vectors.shape == (chunk_count, self.dimension) or (
            chunk_count == 0 and len(vectors) == 0
        )
        outliers = norm_outliers(vectors) if shape_ok else chunk_count
        self.non_unit += outliers
        if not shape_ok or outliers:
            self.bad_documents.append(key)
        if chunk_count == 0:
            self.zero_chunk.append(f"{key}: {reason or 'no text'}")

    def results(self) -> list[dg.AssetCheckResult]:
        return [
            dg.AssetCheckResult(
                check_name="vectors_match_chunks",
                passed=not self.bad_documents,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={
                    "documents_failing": len(self.bad_documents),
                    "non_unit_or_missing_vectors": self.non_unit,
                    "dimension": self.dimension,
                    "examples": examples_json(self.bad_documents),
                },
            ),
            dg.AssetCheckResult(
                check_name="documents_with_zero_chunks",
                passed=not self.zero_chunk,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={
                    "documents": len(self.zero_chunk),
                    "examples": examples_json(self.zero_chunk),
                },
            ),
        ]


def dimension_result(collection_dim: int | None, model_dim: int) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name="dimension_matches_collection",
        passed=collection_dim in (None, model_dim),
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"collection_dimension": collection_dim or 0, "model_dimension": model_dim},
    )


def duplicate_ids_result(ids: Iterable[str]) -> dg.AssetCheckResult:
    seen: set[str] = set()
    duplicates: list[str] = []
    total = 0
    for point in ids:
        total += 1
        if point in seen:
            duplicates.append(point)
        seen.add(point)
    return dg.AssetCheckResult(
        check_name="no_duplicate_point_ids",
        passed=not duplicates,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "point_ids": total,
            "duplicates": len(duplicates),
            "examples": examples_json(duplicates),
        },
    )


def points_match_result(
    expected: Mapping[str, int], actual: Mapping[str, int]
) -> dg.AssetCheckResult:
    """Compare chunk counts written per document with the points Qdrant now holds."""
    wrong = sorted(
        f"{doc}: {actual.get(doc, 0)} points, {n} chunks"
        for doc, n in expected.items()
        if actual.get(doc, 0) != n
    )
    return dg.AssetCheckResult(
        check_name="points_match_chunks",
        passed=not wrong,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "documents_checked": len(expected),
            "documents_mismatched": len(wrong),
            "examples": examples_json(wrong),
        },
    )
