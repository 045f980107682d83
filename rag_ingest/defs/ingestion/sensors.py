"""Sensors: one per watched S3 prefix, keeping the registry in step with the bucket and
requesting reconcile runs over the shards that have work.

A tick lists the next part of its prefix (a pass over the prefix spans as many ticks as
its size needs, each bounded in keys and seconds, so a tick stays well inside Dagster's 60-s
sensor timeout; the sensor cursor says where the pass stands) and compares that key range with
the registry: new objects are registered, changed ones re-queued (never by an older listing
than what is registered), deleted ones marked for removal, unless the delete guard holds a
pass that would delete too much of the prefix. It then asks the registry which shards have
work in the current target and requests runs over contiguous shard ranges of about
``documents_per_run`` documents, skipping shards a run in flight already covers. A lost
or reset cursor only starts a new pass: a reset Dagster instance, a failed run or a reset
registry all converge on the next pass.
"""

import hashlib
import re
import time

import dagster as dg

from rag_ingest.core.config import Settings
from rag_ingest.core.index.presence import check_target
from rag_ingest.core.keys import source_uri
from rag_ingest.core.planning.listing import ListingCursor
from rag_ingest.core.planning.listing_pass import listing_tick
from rag_ingest.core.planning.run_requests import decide
from rag_ingest.core.planning.shards import Shards
from rag_ingest.core.registry import Registry, Target
from rag_ingest.resources import DocumentRegistry, S3Source, VectorStoreResource

# Dagster's own backfill daemon launches multi-partition runs with these run tags.
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
PARTITION_TAG = "dagster/partition"
TRIGGER_TAG = "rag_ingest/trigger"
INGEST_JOB = "ingest_documents"
FULL_RECONCILE_COUNTER = "full_reconcile_at"
# When a tick last asked for a verification pass because the collection held too few points.
LOST_CHECK_COUNTER = "collection_short_at"
# A run in one of these may still materialize its shards: they are not requested again.
ACTIVE_RUN_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def sensor_names(prefixes: tuple[str, ...]) -> dict[str, str]:
    """A distinct, valid sensor name per prefix; prefixes whose readable names collide
    (``a-b/`` and ``a_b/``) get a short hash of the prefix appended."""
    slugs = {
        p: re.sub(r"[^A-Za-z0-9]+", "_", p).strip("_").lower() or "bucket_root" for p in prefixes
    }
    names = {}
    for prefix, slug in slugs.items():
        if list(slugs.values()).count(slug) > 1:
            slug = f"{slug}_{hashlib.sha256(prefix.encode()).hexdigest()[:6]}"
        names[prefix] = f"s3_sensor_{slug}"
    return names


def shards_in_flight(instance: dg.DagsterInstance, layout: Shards) -> set[int]:
    """Shards covered by a queued or running run of the ingestion assets (sensor runs and UI
    backfills alike)."""
    covered: set[int] = set()
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=ACTIVE_RUN_STATUSES)):
        first = run.tags.get(RANGE_START_TAG) or run.tags.get(PARTITION_TAG)
        last = run.tags.get(RANGE_END_TAG) or first
        try:
            covered.update(range(layout.index(first), layout.index(last) + 1))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue  # not a shard run (monitoring, maintenance)
    return covered


def unmaterialized_shards(instance: dg.DagsterInstance, layout: Shards) -> set[int]:
    """Shards whose collection partition was never materialized (empty ones included): the
    only idle shards worth reaching the key space's edges for."""
    done = instance.get_materialized_partitions(dg.AssetKey("qdrant_collection"))
    return {i for i in range(layout.count) if layout.key(i) not in done}


def request_runs(
    context: dg.SensorEvaluationContext,
    reg: Registry,
    settings: Settings,
    location: str,
    trigger: str,
    vectors: VectorStoreResource | None = None,
) -> tuple[list[dg.RunRequest], str]:
    """Run requests for the shards with work in the current target, and a one-line summary.

    With ``vectors``, the current target's collection is checked first (``check_lost``)."""
    layout = settings.shard_layout
    target = reg.target(location, settings.physical_collection)
    target, lost = check_lost(context, reg, settings, target, vectors)
    work = reg.work_by_hash_bucket(settings.scope, target.id if target else None, layout.width)
    now = time.time()
    last_full = reg.counter(FULL_RECONCILE_COUNTER)
    if not last_full:
        # A new registry: every document is work anyway; the first full pass comes a period
        # later instead of holding every shard in one run now.
        reg.set_counter(FULL_RECONCILE_COUNTER, int(now))
        last_full = int(now)
    full = lost or (
        settings.full_reconcile_hours > 0
        and now - last_full >= settings.full_reconcile_hours * 3600
    )
    decision = decide(
        layout,
        work,
        reg.shard_requests(layout.count),
        shards_in_flight(context.instance, layout),
        now,
        settings.retry_backoff_seconds,
        settings.documents_per_run,
        full,
        max_bytes=settings.bytes_per_run,
        max_gap=settings.bridge_shards,
        # Asked only when something has work: the instance reads its event log for it.
        unmaterialized=unmaterialized_shards(context.instance, layout) if work else set(),
    )
    if full:
        reg.set_counter(FULL_RECONCILE_COUNTER, int(now))
    reg.save_shard_requests(layout.count, decision.requests)
    requests = [
        dg.RunRequest(
            run_key=run.run_key,
            job_name=INGEST_JOB,
            tags={
                RANGE_START_TAG: run.range.first,
                RANGE_END_TAG: run.range.last,
                TRIGGER_TAG: trigger,
                "rag_ingest/documents": str(run.range.documents),
                "rag_ingest/bytes": str(run.range.bytes),
            },
        )
        for run in decision.runs
    ]
    pending = sum(w.documents for w in work.values())
    summary = (
        f"{pending} document(s) with work in {len(work)} shard(s); {len(requests)} run(s) "
        f"requested{' (full reconcile)' if full else ''}"
        + (f"; {len(decision.waiting)} shard(s) backing off" if decision.waiting else "")
    )
    return requests, summary


def check_lost(
    context: dg.SensorEvaluationContext,
    reg: Registry,
    settings: Settings,
    target: Target | None,
    vectors: VectorStoreResource | None,
) -> tuple[Target | None, bool]:
    """The target to plan against, and whether to verify every shard now: a collection gone
    by hand ends its target (every document is work); one holding fewer points than recorded
    asks for a verification pass (at most one per back-off period)."""
    if vectors is None or target is None:
        return target, False
    check = check_target(vectors.open, reg, target, settings.scope)
    if check.state == "missing":
        context.log.warning(check.describe(target))
        reg.set_target_state(target.id, "dropped")
        return None, False
    now = time.time()
    if (
        check.state != "short"
        or now - reg.counter(LOST_CHECK_COUNTER) < settings.retry_backoff_seconds
    ):
        return target, False
    context.log.warning(check.describe(target))
    reg.set_counter(LOST_CHECK_COUNTER, int(now))
    return target, True


def evaluate_listing_tick(
    context: dg.SensorEvaluationContext,
    source: S3Source,
    reg: Registry,
    settings: Settings,
    prefix: str,
    location: str,
    vectors: VectorStoreResource | None = None,
) -> dg.SensorResult:
    """The body of a prefix sensor's tick (a plain function, so tests can call it): the next
    part of the listing pass the cursor names, then run requests as every tick."""
    started = time.perf_counter()
    tick = listing_tick(
        source.client,
        reg,
        source.bucket,
        prefix,
        ListingCursor.from_json(context.cursor),
        max_keys=settings.listing_keys_per_tick,
        max_seconds=settings.listing_seconds_per_tick,
        max_new=settings.max_new_per_tick,
        guard=settings.delete_guard,
    )
    uri = source_uri(source.bucket, prefix)
    if tick.held:
        context.log.warning(
            f"{uri}: DELETIONS HELD: this listing pass would mark "
            f"{tick.hold.would_delete if tick.hold else tick.held} of "
            f"{tick.cursor.registered or (tick.hold.registered if tick.hold else 0)} registered "
            f"document(s) deleted (more than {settings.delete_guard_percent:g}%; "
            "RAG_DELETE_GUARD_PERCENT). Nothing was marked deleted. If the objects really are "
            f"gone, run `rag-ingest confirm-deletes --prefix {prefix!r}`; otherwise check the "
            "bucket, the prefix and the credentials' permissions."
        )
    elif tick.hold is not None and tick.pass_done:
        context.log.warning(f"{tick.hold.describe()}")
    requests, summary = request_runs(context, reg, settings, location, f"listing:{prefix}", vectors)
    line = f"{uri}: {tick.summary()}; {summary} in {time.perf_counter() - started:.2f}s"
    # A tick that found nothing to do says so at DEBUG: at INFO it would repeat every interval.
    idle = not (requests or tick.plan.new or tick.plan.changed or tick.deleted or tick.held)
    (context.log.debug if idle else context.log.info)(line)
    return dg.SensorResult(run_requests=requests, cursor=tick.cursor.to_json())


def build_listing_sensor(prefix: str, name: str, settings: Settings) -> dg.SensorDefinition:
    """A running-by-default sensor for ``prefix`` (stopped when no bucket is configured)."""

    @dg.sensor(
        name=name,
        job_name=INGEST_JOB,
        minimum_interval_seconds=settings.sensor_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING
        if settings.bucket_configured
        else dg.DefaultSensorStatus.STOPPED,
        description=f"Keeps documents under prefix {prefix!r} in step with S3 (new, changed, "
        "deleted) and requests reconcile runs over the shards with work.",
    )
    def _sensor(
        context: dg.SensorEvaluationContext,
        s3_source: S3Source,
        registry: DocumentRegistry,
        vectors: VectorStoreResource,
    ) -> dg.SensorResult:
        return evaluate_listing_tick(
            context, s3_source, registry.registry, settings, prefix, vectors.location, vectors
        )

    return _sensor
