"""The ingestion assets' checks: specs, and the functions that build their results.

They are evaluated by the assets on what they just wrote (one result per run): ``embeddings``'
vector check is blocking, so bad vectors never reach Qdrant; the Qdrant checks run after the
write. The standalone check ``documents_not_ingested`` reads the registry.
"""

from collections.abc import Iterable, Mapping, Sequence

import dagster as dg
import numpy as np

from rag_ingest.core.config import Settings
from rag_ingest.core.index.health import norm_outliers
from rag_ingest.core.md_table import md_table
from rag_ingest.core.registry import FAILED_STATUSES
from rag_ingest.defs.metadata import ERROR, EXAMPLES, WARN, examples_json, result
from rag_ingest.resources import DocumentRegistry, VectorStoreResource

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
    dg.AssetCheckSpec(
        "shards_match_registry",
        asset="qdrant_collection",
        description="Each reconciled shard holds exactly the points the registry records "
        "(WARN; documents found missing are re-queued, orphans removed).",
    ),
]


class EmbeddingAudit:
    """Accumulates per-document facts while ``embeddings`` writes, then reports its checks."""

    def __init__(self, dimension: int) -> None:
        self.dimension = dimension
        self.bad_documents: list[str] = []
        self.non_unit = 0
        self.zero_chunk: list[str] = []

    def add(self, doc: str, chunk_count: int, vectors: np.ndarray, reason: str | None) -> None:
        shape_ok = vectors.shape == (chunk_count, self.dimension) or (
            chunk_count == 0 and len(vectors) == 0
        )
        outliers = norm_outliers(vectors) if shape_ok else chunk_count
        self.non_unit += outliers
        if not shape_ok or outliers:
            self.bad_documents.append(doc)
        if chunk_count == 0:
            self.zero_chunk.append(f"{doc}: {reason or 'no text'}")

    def results(self) -> list[dg.AssetCheckResult]:
        return [
            result(
                "vectors_match_chunks",
                not self.bad_documents,
                ERROR,
                documents_failing=len(self.bad_documents),
                non_unit_or_missing_vectors=self.non_unit,
                dimension=self.dimension,
                examples=examples_json(self.bad_documents),
            ),
            result(
                "documents_with_zero_chunks",
                not self.zero_chunk,
                WARN,
                documents=len(self.zero_chunk),
                examples=examples_json(self.zero_chunk),
            ),
        ]


def dimension_result(collection_dim: int | None, model_dim: int) -> dg.AssetCheckResult:
    """``collection_dim`` None: the collection does not exist yet and is created at the model's
    dimension (recorded as such, never as 0)."""
    created = collection_dim is None
    return result(
        "dimension_matches_collection",
        created or collection_dim == model_dim,
        ERROR,
        collection_dimension=model_dim if collection_dim is None else collection_dim,
        model_dimension=model_dim,
        collection_created=created,
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
    return result(
        "no_duplicate_point_ids",
        not duplicates,
        ERROR,
        point_ids=total,
        duplicates=len(duplicates),
        examples=examples_json(duplicates),
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
    return result(
        "points_match_chunks",
        not wrong,
        ERROR,
        documents_checked=len(expected),
        documents_mismatched=len(wrong),
        examples=examples_json(wrong),
    )


def shards_match_result(
    shards: int, mismatched: Sequence[str], requeued: int, orphans: int
) -> dg.AssetCheckResult:
    return result(
        "shards_match_registry",
        not mismatched,
        WARN,
        shards_checked=shards,
        shards_mismatched=len(mismatched),
        documents_requeued=requeued,
        orphan_points_removed=orphans,
        examples=examples_json(list(mismatched)),
    )


def build_registry_check(settings: Settings) -> dg.AssetChecksDefinition:
    """WARN when documents of the watched prefixes are recorded as not ingested."""

    @dg.asset_check(
        asset="qdrant_collection",
        name="documents_not_ingested",
        description="WARN when S3 objects are recorded as failed, unsupported, empty or missing.",
    )
    def documents_not_ingested(
        registry: DocumentRegistry, vectors: VectorStoreResource
    ) -> dg.AssetCheckResult:
        reg = registry.registry
        counts = reg.status_counts(settings.scope)
        bad = {status: counts.get(status, 0) for status in FAILED_STATUSES}
        examples = reg.by_status(FAILED_STATUSES, limit=EXAMPLES, scope=settings.scope)
        table = md_table(
            ["status", "object", "reason"],
            [(r.status, r.source, r.reason or "") for r in examples],
            sum(bad.values()),
        )
        return result(
            "documents_not_ingested",
            sum(bad.values()) == 0,
            WARN,
            **{f"documents_{status}": n for status, n in bad.items()},
            documents_ok=counts.get("ok", 0),
            documents_pending=counts.get("pending", 0),
            collection=settings.collection,
            examples=dg.MetadataValue.md(table),
        )

    return documents_not_ingested
