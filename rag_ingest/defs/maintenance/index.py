"""``index_maintenance``: build the vector index of the live and current collections outside
the ingestion runs, which only write.

Qdrant Edge indexes only when asked (``core.index.maintenance``). The sensor here requests a
run once a collection's unindexed backlog, as its writers last recorded it, reaches the
indexing threshold; the daily monitoring job runs the asset too. While it builds, writers wait
on the store's folder lock (``lock_wait_seconds``); Edge's segment cap bounds each build.
"""

import dagster as dg

from rag_ingest.core.config import Settings
from rag_ingest.core.index.maintenance import build_index, index_wanted, live_and_current
from rag_ingest.resources import VectorStoreResource

GROUP = "maintenance"
ASSET = "index_maintenance"
JOB = "build_vector_index"
# A build in one of these: the sensor requests no second one.
ACTIVE_RUN_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def build_index_maintenance(settings: Settings) -> dg.AssetsDefinition:
    @dg.asset(
        name=ASSET,
        group_name=GROUP,
        kinds={"qdrant"},
        deps=["qdrant_collection"],
        description="The live and current collections' vector index, built outside the "
        "ingestion runs (Qdrant Edge; nothing to do on a server).",
    )
    def index_maintenance(
        context: dg.AssetExecutionContext, vectors: VectorStoreResource
    ) -> dg.MaterializeResult:
        with vectors.open() as store:
            names = (
                store.resolve(settings.collection),
                store.resolve(settings.physical_collection),
            )
            builds = [build_index(store, name) for name in dict.fromkeys(n for n in names if n)]
        for b in builds:
            context.log.info(
                f"{b.collection}: {b.points_indexed} points indexed in {b.seconds:.1f} s "
                f"(backlog {b.backlog_before} → {b.backlog_after}, {b.segments} segments)"
            )
        return dg.MaterializeResult(
            metadata={
                "qdrant": vectors.engine,
                "collections": dg.MetadataValue.json([b.collection for b in builds]),
                "backlog_before": dg.MetadataValue.int(sum(b.backlog_before for b in builds)),
                "backlog_after": dg.MetadataValue.int(sum(b.backlog_after for b in builds)),
                "points_indexed": dg.MetadataValue.int(sum(b.points_indexed for b in builds)),
                "segments": dg.MetadataValue.int(sum(b.segments for b in builds)),
                "seconds": dg.MetadataValue.float(round(sum(b.seconds for b in builds), 3)),
            }
        )

    return index_maintenance


def build_index_sensor(settings: Settings) -> dg.SensorDefinition:
    @dg.sensor(
        name="index_backlog_sensor",
        job_name=JOB,
        minimum_interval_seconds=settings.sensor_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Requests an index build when the live or current collection's unindexed "
        "backlog reaches the indexing threshold (Qdrant Edge; read without the store's lock).",
    )
    def index_backlog_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        engine, path = settings.qdrant_engine, settings.qdrant_path
        names = live_and_current(engine, path, settings.collection, settings.physical_collection)
        wanted, seen = index_wanted(engine, path, names)
        if not wanted:
            shown = ", ".join(f"{b.collection}: {b.unindexed}" for b in seen) or "none recorded"
            return dg.SensorResult(skip_reason=f"no index build wanted (backlog {shown})")
        active = context.instance.get_run_records(
            dg.RunsFilter(job_name=JOB, statuses=ACTIVE_RUN_STATUSES), limit=1
        )
        if active:
            return dg.SensorResult(skip_reason="an index build is queued or running")
        key = ",".join(f"{b.collection}:{b.points}:{b.unindexed}" for b in wanted)
        return dg.SensorResult(run_requests=[dg.RunRequest(run_key=f"index:{key}")])

    return index_backlog_sensor
