"""``collection_health``: the live collection against S3 and the registry, vector sanity, drift
and which index version serves readers. Every figure is numeric metadata, so the asset's page
plots its trend; the checks say what needs attention.
"""

import time
from datetime import UTC, datetime

import dagster as dg
from pydantic import Field

from rag_ingest.core.config import Settings
from rag_ingest.core.index.audit import audit_collection, live_documents
from rag_ingest.core.index.health import Drift, VectorSample, drift, norm_outliers
from rag_ingest.core.storage.blobstore import BlobNotFound
from rag_ingest.defs.locks import QDRANT_LOCK, step_lock
from rag_ingest.defs.metadata import ERROR, WARN, examples_json, result
from rag_ingest.defs.monitoring import GROUP
from rag_ingest.resources import (
    DocumentRegistry,
    Embedder,
    IntermediateStore,
    S3Source,
    VectorStoreResource,
)

BASELINE_PATH = "monitoring/embedding_baseline.json"


HEALTH_CHECKS = [
    dg.AssetCheckSpec(
        "points_match_recorded_chunks",
        asset="collection_health",
        description="The collection holds, per document, as many points as the registry "
        "records chunks, and every ingested document has points (WARN).",
    ),
    dg.AssetCheckSpec(
        "no_orphan_points",
        asset="collection_health",
        description="No points of documents whose S3 object no longer exists (WARN; the "
        "reconcile of their shards removes them).",
    ),
    dg.AssetCheckSpec(
        "vectors_are_sane",
        asset="collection_health",
        description="The collection's and the sampled vectors' dimension is the embedder's, and "
        "every sampled vector has unit norm.",
    ),
    dg.AssetCheckSpec(
        "embedding_drift_within_threshold",
        asset="collection_health",
        description="Recently ingested vectors have not moved from the stored baseline "
        "(centroid distance, spread change) by more than the threshold (WARN).",
    ),
    dg.AssetCheckSpec(
        "live_version_is_current",
        asset="collection_health",
        description="The alias serves the collection of the current pipeline fingerprint.",
    ),
    dg.AssetCheckSpec(
        "no_held_deletions",
        asset="collection_health",
        description="No listing pass is held by the delete guard (a prefix's listing missing "
        "more than RAG_DELETE_GUARD_PERCENT of its documents); a held prefix waits for "
        "`rag-ingest confirm-deletes --prefix P` or for its listing to recover (WARN).",
    ),
]


class HealthConfig(dg.Config):
    sample_documents: int = Field(
        default=200,
        description="Most recently ingested documents whose vectors are sampled for sanity "
        "and drift.",
    )
    max_sample_vectors: int = Field(
        default=2000, description="Upper bound on the vectors read for the sample."
    )
    drift_threshold: float = Field(
        default=0.1,
        description="Largest drift score (the larger of centroid distance and spread change "
        "against the baseline) that passes.",
    )
    reset_baseline: bool = Field(
        default=False,
        description="Make this run's sample the new drift baseline (after a deliberate model "
        "or corpus change).",
    )


def _drift(
    storage: IntermediateStore, sample: VectorSample | None, reset: bool
) -> tuple[Drift | None, VectorSample | None]:
    """Drift of ``sample`` against the stored baseline; the first sample becomes the baseline
    (and so does the first of another model or dimension)."""
    baseline: VectorSample | None = None
    if not reset:
        try:
            baseline = VectorSample.from_json(storage.store.read(BASELINE_PATH))
        except BlobNotFound:
            baseline = None
    if sample is None:
        return None, baseline
    if baseline is None or (baseline.dimension, baseline.model) != (sample.dimension, sample.model):
        storage.store.write(BASELINE_PATH, sample.to_json())
        baseline = sample
    return drift(baseline, sample), baseline


def build_collection_health(settings: Settings) -> dg.AssetsDefinition:
    @dg.asset(
        group_name=GROUP,
        kinds={"qdrant", "s3"},
        deps=["qdrant_collection"],
        check_specs=HEALTH_CHECKS,
        description="The live collection vs S3 and the registry, vector sanity, embedding "
        "drift and index versions; scheduled.",
    )
    def collection_health(
        context: dg.AssetExecutionContext,
        config: HealthConfig,
        vectors: VectorStoreResource,
        registry: DocumentRegistry,
        s3_source: S3Source,
        storage: IntermediateStore,
        embedder: Embedder,
    ) -> dg.MaterializeResult:
        started = time.perf_counter()
        reg = registry.registry
        current = settings.physical_collection
        # Listed before the store is opened: neither the deployment's qdrant lock nor an
        # embedded store's folder lock is held through it. Under the qdrant lock no run writes
        # meanwhile, so the comparison sees one state.
        listed = live_documents(s3_source.client, settings.scope.bucket, settings.scope.prefixes)
        with (
            step_lock(context, reg, QDRANT_LOCK, vectors.lock_wait_seconds) as waited,
            vectors.open() as store,
        ):
            live = store.resolve(settings.collection)
            collection = live or current
            target = reg.target(store.location, collection)
            audit = audit_collection(
                s3_source.client,
                settings.scope,
                reg,
                store,
                collection,
                target,
                config.sample_documents,
                config.max_sample_vectors,
                live=listed,
            )
            building = reg.target(store.location, current)
        waiting = reg.work_count(settings.scope, building.id if building else None)
        holds = [h for h in reg.delete_holds(settings.bucket) if h.prefix in settings.prefixes]
        sync, vectors_sample = audit.sync, audit.sample
        mismatched = audit.mismatched_documents
        now = datetime.now(UTC).isoformat()
        model = f"{embedder.model_name} {embedder.vector_space}"
        sample = VectorSample.of(vectors_sample, model, now) if len(vectors_sample) else None
        moved, baseline = _drift(storage, sample, config.reset_baseline)
        outliers = norm_outliers(vectors_sample)
        dimension = audit.collection_dimension
        dims_ok = dimension in (None, embedder.dimension) and (
            sample is None or sample.dimension == embedder.dimension
        )
        score = moved.score if moved else 0.0
        checks = [
            result(
                "points_match_recorded_chunks",
                sync.points - sync.orphan_points == sync.chunks_recorded and not mismatched,
                WARN,
                points=sync.points,
                chunks_recorded=sync.chunks_recorded,
                documents_with_other_point_counts=examples_json(mismatched),
                ingested_documents_without_points=examples_json(sync.live_documents_missing),
            ),
            result(
                "no_orphan_points",
                sync.orphan_points == 0,
                WARN,
                orphan_points=sync.orphan_points,
                orphan_documents=examples_json(sync.orphan_documents),
            ),
            result(
                "vectors_are_sane",
                dims_ok and outliers == 0,
                ERROR,
                collection_dimension=dimension or 0,
                model_dimension=embedder.dimension,
                sampled_vectors=len(vectors_sample),
                non_unit_vectors=outliers,
            ),
            result(
                "embedding_drift_within_threshold",
                score <= config.drift_threshold,
                WARN,
                drift_score=score,
                threshold=config.drift_threshold,
                baseline_created_at=baseline.created_at if baseline else "",
            ),
            result(
                "live_version_is_current",
                live == current,
                WARN,
                live_collection=live or "",
                current_collection=current,
                current_documents_waiting=waiting,
            ),
            result(
                "no_held_deletions",
                not holds,
                WARN,
                held_prefixes=len(holds),
                held_deletions=sum(h.would_delete for h in holds),
                holds=examples_json([h.describe() for h in holds]),
            ),
        ]
        for check in checks:
            if not check.passed:
                context.log.warning(f"health check {check.check_name} failed: {check.metadata}")
        return dg.MaterializeResult(
            metadata={
                "alias": settings.collection,
                "live_collection": live or "",
                "current_collection": current,
                "current_documents_waiting": waiting,
                "held_deletions": sum(h.would_delete for h in holds),
                "points": sync.points,
                "documents_in_collection": sync.documents_in_collection,
                "chunks_recorded": sync.chunks_recorded,
                "live_objects": audit.live_objects,
                "orphan_points": sync.orphan_points,
                "ingested_documents_without_points": len(sync.live_documents_missing),
                "documents_with_other_point_counts": len(mismatched),
                **{f"documents_{status}": n for status, n in sorted(audit.status_counts.items())},
                "vector_dimension": dimension or 0,
                "sampled_vectors": len(vectors_sample),
                "non_unit_vectors": outliers,
                "drift_score": dg.MetadataValue.float(score),
                "drift_centroid_distance": dg.MetadataValue.float(
                    moved.centroid_distance if moved else 0.0
                ),
                "drift_spread_change": dg.MetadataValue.float(
                    moved.spread_change if moved else 0.0
                ),
                "baseline_created_at": baseline.created_at if baseline else "",
                "lock_wait_seconds": round(waited, 3),
                "seconds": round(time.perf_counter() - started, 3),
            },
            check_results=checks,
        )

    return collection_health
