"""One sensor per watched S3 prefix: keep partitions and runs in step with the bucket.

A tick lists the prefix (all pages) and compares it with the registry:

* new objects (oldest first, capped per tick) become registry rows and dynamic partitions —
  straight through the instance, which adds 20k keys in ~0.3 s, where
  ``SensorResult.dynamic_partitions_requests`` costs ~3.3 ms per key in the daemon;
* changed objects (new ETag, or back after a delete) are re-queued, and their partitions move
  to the end of the partition order so that re-runs form contiguous ranges too;
* every document to (re-)ingest goes into one run per contiguous range of at most
  ``partitions_per_run`` partitions;
* deleted objects are marked ``deleting`` and handed to the ``remove_documents`` job; once it
  has removed their points, a later tick deletes their partitions and rows.

The cursor is a single integer: the registry change number already requested. Partitions that
bound an in-flight run's range are never moved or deleted, so queued runs stay valid.
"""

import hashlib
import re
import time

import dagster as dg

from rag_ingest.core.config import Settings
from rag_ingest.core.ranges import contiguous_ranges
from rag_ingest.core.registry import Registry
from rag_ingest.core.s3 import list_objects
from rag_ingest.core.sync import plan_tick
from rag_ingest.jobs import ingest_job
from rag_ingest.partitions import DOCUMENTS_PARTITION
from rag_ingest.removal import remove_documents_job
from rag_ingest.resources import DocumentRegistry, S3Source

# Dagster's own backfill daemon launches multi-partition runs with these run tags.
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
PREFIX_TAG = "rag_ingest/prefix"
REMOVALS_PER_RUN = 1000
PARTITIONS_PER_ADD = 5000
_ACTIVE = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def sensor_name(prefix: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "_", prefix).strip("_").lower()
    return f"s3_sensor_{slug or 'bucket_root'}"


def _cursor(raw: str | None) -> int:
    try:
        return int(raw or 0)
    except ValueError:
        return 0


def active_range_boundaries(instance: dg.DagsterInstance) -> set[str]:
    """Partition keys that start or end the range of a queued or running run."""
    runs = instance.get_runs(filters=dg.RunsFilter(statuses=_ACTIVE))
    return {
        run.tags[tag] for run in runs for tag in (RANGE_START_TAG, RANGE_END_TAG) if tag in run.tags
    }


def _settle_partitions(
    instance: dg.DagsterInstance, ingest_ids: list[str], pinned: set[str]
) -> list[str]:
    """Make every id a partition; move re-queued ones to the end. Returns the new order."""
    ordered = instance.get_dynamic_partitions(DOCUMENTS_PARTITION)
    present = set(ordered)
    move = [doc_id for doc_id in ingest_ids if doc_id in present and doc_id not in pinned]
    for doc_id in move:
        instance.delete_dynamic_partition(DOCUMENTS_PARTITION, doc_id)
    moved = set(move)
    add = [doc_id for doc_id in ingest_ids if doc_id not in present or doc_id in moved]
    # In slices: Dagster builds one parameter row per key, ~80 MB for a 100k-object burst.
    for start in range(0, len(add), PARTITIONS_PER_ADD):
        instance.add_dynamic_partitions(
            DOCUMENTS_PARTITION, add[start : start + PARTITIONS_PER_ADD]
        )
    return list(instance.get_dynamic_partitions(DOCUMENTS_PARTITION) if add else ordered)


def _drop_removed(
    instance: dg.DagsterInstance, registry: Registry, doc_ids: list[str], pinned: set[str]
) -> int:
    """Delete partitions and rows of removed documents, except partitions runs still need."""
    done = [doc_id for doc_id in doc_ids if doc_id not in pinned]
    present = set(instance.get_dynamic_partitions(DOCUMENTS_PARTITION)) if done else set()
    for doc_id in done:
        if doc_id in present:
            instance.delete_dynamic_partition(DOCUMENTS_PARTITION, doc_id)
    registry.forget(done)
    return len(done)


def evaluate_tick(
    context: dg.SensorEvaluationContext,
    source: S3Source,
    registry: Registry,
    prefix: str,
    max_new_per_tick: int,
    partitions_per_run: int,
) -> dg.SensorResult:
    """The body of a prefix sensor's tick (a plain function, so tests can call it)."""
    started = time.perf_counter()
    instance = context.instance
    cursor = _cursor(context.cursor)
    plan = plan_tick(
        list_objects(source.client, source.bucket, prefix),
        registry.known(source.bucket, prefix),
        max_new_per_tick,
    )
    registry.register(plan.new)
    registry.requeue(plan.changed)
    registry.mark_deleting(plan.gone)
    wanted = registry.requested_after(cursor, source.bucket, prefix)
    pinned = active_range_boundaries(instance) if wanted or plan.changed else set()
    ingest_ids = [doc_id for doc_id, _, status in wanted if status == "pending"]
    delete_ids = [doc_id for doc_id, _, status in wanted if status == "deleting"]
    run_requests: list[dg.RunRequest] = []
    if ingest_ids:
        ordered = _settle_partitions(instance, ingest_ids, pinned)
        seq_of = {doc_id: seq for doc_id, seq, _ in wanted}
        position = {key: i for i, key in enumerate(ordered)}
        for first, last, _n in contiguous_ranges(ordered, ingest_ids, partitions_per_run):
            span = ordered[position[first] : position[last] + 1]
            run_requests.append(
                dg.RunRequest(
                    run_key=f"{first}..{last}@{max(seq_of[k] for k in span)}",
                    job_name=ingest_job.name,
                    tags={RANGE_START_TAG: first, RANGE_END_TAG: last, PREFIX_TAG: prefix},
                )
            )
    for i in range(0, len(delete_ids), REMOVALS_PER_RUN):
        batch = delete_ids[i : i + REMOVALS_PER_RUN]
        digest = hashlib.sha256("\n".join(batch).encode()).hexdigest()[:16]
        run_requests.append(
            dg.RunRequest(
                run_key=f"remove:{digest}",
                job_name=remove_documents_job.name,
                run_config={"ops": {"remove_deleted_documents": {"config": {"doc_ids": batch}}}},
                tags={PREFIX_TAG: prefix},
            )
        )
    removed = registry.removed(source.bucket, prefix)
    dropped = _drop_removed(instance, registry, removed, pinned) if removed else 0
    if wanted:
        cursor = max(seq for _, seq, _ in wanted)
    context.log.info(
        f"s3://{source.bucket}/{prefix}: listed {plan.listed}, new {len(plan.new)} "
        f"(deferred {plan.deferred}), changed {len(plan.changed)}, deleted {len(plan.gone)}, "
        f"unchanged {plan.unchanged}; {len(ingest_ids)} to ingest, {len(delete_ids)} to remove, "
        f"{dropped} partition(s) dropped; {len(run_requests)} run(s) requested in "
        f"{time.perf_counter() - started:.2f}s"
    )
    return dg.SensorResult(run_requests=run_requests, cursor=str(cursor))


def build_s3_sensor(prefix: str, settings: Settings) -> dg.SensorDefinition:
    """A running-by-default sensor for ``prefix`` (stopped when no bucket is configured)."""

    @dg.sensor(
        name=sensor_name(prefix),
        jobs=[ingest_job, remove_documents_job],
        minimum_interval_seconds=settings.sensor_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING
        if settings.bucket_configured
        else dg.DefaultSensorStatus.STOPPED,
        description=f"Keeps documents under prefix {prefix!r} in step with S3 (new, changed, "
        "deleted) and requests batched runs.",
    )
    def _sensor(
        context: dg.SensorEvaluationContext, s3_source: S3Source, registry: DocumentRegistry
    ) -> dg.SensorResult:
        return evaluate_tick(
            context,
            s3_source,
            registry.registry,
            prefix,
            settings.max_new_per_tick,
            settings.partitions_per_run,
        )

    return _sensor
