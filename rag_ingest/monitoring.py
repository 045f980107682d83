"""Scheduled monitoring: collection health (sync, vector sanity, drift) and the cost report.

Both assets are unpartitioned; each materialization records numbers, so the UI plots their
trend over time on the asset's page.
"""

import time
from datetime import UTC, datetime

import dagster as dg

from rag_ingest.assets import embeddings, qdrant_collection
from rag_ingest.core.audit import audit_collection
from rag_ingest.core.blobstore import BlobNotFound
from rag_ingest.core.config import Settings
from rag_ingest.core.cost import PriceTable, price_workload, render_markdown
from rag_ingest.core.health import Drift, VectorSample, drift, norm_outliers
from rag_ingest.embedders import Embedder
from rag_ingest.materialization_checks import examples_json
from rag_ingest.resources import DocumentRegistry, IntermediateStore, QdrantResource, S3Source
from rag_ingest.usage import embedding_workload

GROUP = "monitoring"
BASELINE_PATH = "monitoring/embedding_baseline.json"
HEALTH_CHECKS = [
    dg.AssetCheckSpec("points_match_recorded_chunks", asset="collection_health"),
    dg.AssetCheckSpec("no_orphan_points", asset="collection_health"),
    dg.AssetCheckSpec("vectors_are_sane", asset="collection_health"),
    dg.AssetCheckSpec("embedding_drift_within_threshold", asset="collection_health"),
]


class HealthConfig(dg.Config):
    sample_documents: int = 200
    max_sample_vectors: int = 2000
    drift_threshold: float = 0.1
    reset_baseline: bool = False


def _check(
    name: str, passed: bool, severity: dg.AssetCheckSeverity, **metadata: object
) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=name,
        passed=passed,
        severity=severity,
        metadata=metadata,  # type: ignore[arg-type]
    )


def _drift(
    storage: IntermediateStore, sample: VectorSample | None, reset: bool
) -> tuple[Drift | None, VectorSample | None]:
    """Drift of ``sample`` against the stored baseline; the first sample becomes the baseline."""
    baseline: VectorSample | None = None
    if not reset:
        try:
            baseline = VectorSample.from_json(storage.store.read(BASELINE_PATH))
        except BlobNotFound:
            baseline = None
    if sample is None:
        return None, baseline
    if baseline is None or baseline.dimension != sample.dimension:
        storage.store.write(BASELINE_PATH, sample.to_json())
        baseline = sample
    return drift(baseline, sample), baseline


@dg.asset(
    group_name=GROUP,
    kinds={"qdrant", "s3"},
    deps=[qdrant_collection],
    pool="qdrant",
    check_specs=HEALTH_CHECKS,
    description="Collection vs S3 and registry, vector sanity and embedding drift; scheduled.",
)
def collection_health(
    context: dg.AssetExecutionContext,
    config: HealthConfig,
    qdrant: QdrantResource,
    registry: DocumentRegistry,
    s3_source: S3Source,
    storage: IntermediateStore,
    embedder: Embedder,
) -> dg.MaterializeResult:
    started = time.perf_counter()
    with qdrant.get_client() as client:
        audit = audit_collection(
            s3_source.client,
            s3_source.bucket,
            Settings.from_env().prefixes,
            registry.registry,
            client,
            qdrant.collection,
            config.sample_documents,
            config.max_sample_vectors,
        )
    sync, vectors, dimension = audit.sync, audit.sample, audit.collection_dimension
    mismatched = audit.mismatched_documents
    now = datetime.now(UTC).isoformat()
    sample = VectorSample.of(vectors, embedder.model_name, now) if len(vectors) else None
    moved, baseline = _drift(storage, sample, config.reset_baseline)
    outliers = norm_outliers(vectors)
    counts = audit.status_counts
    dims_ok = dimension in (None, embedder.dimension) and (
        sample is None or sample.dimension == embedder.dimension
    )
    score = moved.score if moved else 0.0
    checks = [
        _check(
            "points_match_recorded_chunks",
            sync.points - sync.orphan_points == sync.chunks_recorded and not mismatched,
            dg.AssetCheckSeverity.WARN,
            points=sync.points,
            chunks_recorded=sync.chunks_recorded,
            documents_with_other_point_counts=examples_json(mismatched),
            ingested_documents_without_points=examples_json(sync.live_documents_missing),
        ),
        _check(
            "no_orphan_points",
            sync.orphan_points == 0,
            dg.AssetCheckSeverity.WARN,
            orphan_points=sync.orphan_points,
            orphan_documents=examples_json(sync.orphan_documents),
        ),
        _check(
            "vectors_are_sane",
            dims_ok and outliers == 0,
            dg.AssetCheckSeverity.ERROR,
            collection_dimension=dimension or 0,
            model_dimension=embedder.dimension,
            sampled_vectors=len(vectors),
            non_unit_vectors=outliers,
        ),
        _check(
            "embedding_drift_within_threshold",
            score <= config.drift_threshold,
            dg.AssetCheckSeverity.WARN,
            drift_score=score,
            threshold=config.drift_threshold,
            baseline_created_at=baseline.created_at if baseline else "",
        ),
    ]
    for result in checks:
        if not result.passed:
            context.log.warning(f"health check {result.check_name} failed: {result.metadata}")
    return dg.MaterializeResult(
        metadata={
            "collection": qdrant.collection,
            "points": sync.points,
            "documents_in_collection": sync.documents_in_collection,
            "chunks_recorded": sync.chunks_recorded,
            "live_objects": audit.live_objects,
            "orphan_points": sync.orphan_points,
            "ingested_documents_without_points": len(sync.live_documents_missing),
            "documents_with_other_point_counts": len(mismatched),
            **{f"documents_{status}": n for status, n in sorted(counts.items())},
            "vector_dimension": dimension or 0,
            "sampled_vectors": len(vectors),
            "non_unit_vectors": outliers,
            "drift_score": dg.MetadataValue.float(score),
            "drift_centroid_distance": dg.MetadataValue.float(
                moved.centroid_distance if moved else 0.0
            ),
            "drift_spread_change": dg.MetadataValue.float(moved.spread_change if moved else 0.0),
            "baseline_created_at": baseline.created_at if baseline else "",
            "seconds": round(time.perf_counter() - started, 3),
        },
        check_results=checks,
    )


class CostConfig(dg.Config):
    window_hours: float = 24.0 * 30
    gpu: str = "A10G"
    assumed_tokens_per_gpu_second: float | None = None
    prices_file: str | None = None


@dg.asset(
    group_name=GROUP,
    kinds={"modal"},
    deps=[embeddings],
    description="Recorded embedding work priced on Modal per second vs always-on GPUs.",
)
def embedding_cost_report(
    context: dg.AssetExecutionContext, config: CostConfig
) -> dg.MaterializeResult:
    workload = embedding_workload(context.instance, config.window_hours)
    report = price_workload(
        workload,
        config.gpu,
        PriceTable.load(config.prices_file),
        config.assumed_tokens_per_gpu_second,
    )
    modal_usd = report.lines[0].usd
    return dg.MaterializeResult(
        metadata={
            "report": dg.MetadataValue.md(render_markdown(report)),
            "window_hours": config.window_hours,
            "embedding_runs": workload.runs,
            "chunks_embedded": workload.texts,
            "tokens_embedded": workload.tokens,
            "gpu_seconds": dg.MetadataValue.float(round(report.gpu_seconds, 3)),
            "gpu_seconds_source": report.gpu_seconds_source,
            "modal_usd": dg.MetadataValue.float(round(modal_usd, 6)),
            "gpu_utilisation": dg.MetadataValue.float(round(report.utilisation, 6)),
        }
    )


monitoring_assets = [collection_health, embedding_cost_report]
monitoring_job = dg.define_asset_job(
    "monitor_collection",
    selection=dg.AssetSelection.groups(GROUP),
    executor_def=dg.in_process_executor,
    description="Collection health, drift and the cost report.",
)


def build_monitoring_schedule(cron: str) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name="monitor_collection_schedule",
        job=monitoring_job,
        cron_schedule=cron,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Health, drift and cost of the collection (RAG_MONITOR_CRON).",
    )
