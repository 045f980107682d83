"""One sensor per watched S3 prefix: register new objects, request batched runs.

A tick lists the prefix (all pages), registers unseen objects (oldest first, capped per tick)
in the registry and as dynamic partitions — straight through the instance, which adds 20k keys
in ~0.3 s, where ``SensorResult.dynamic_partitions_requests`` costs ~3.3 ms per key in the
daemon — and requests one run per contiguous range of at most ``partitions_per_run`` new
partitions. The cursor is a single integer: the registry change number already requested.
"""

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
from rag_ingest.resources import DocumentRegistry, S3Source

# Dagster's own backfill daemon launches multi-partition runs with these run tags.
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
PREFIX_TAG = "rag_ingest/prefix"


def sensor_name(prefix: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "_", prefix).strip("_").lower()
    return f"s3_sensor_{slug or 'bucket_root'}"


def _cursor(raw: str | None) -> int:
    try:
        return int(raw or 0)
    except ValueError:
        return 0


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
    wanted = registry.requested_after(cursor, source.bucket, prefix)
    run_requests: list[dg.RunRequest] = []
    if wanted:
        wanted_ids = [doc_id for doc_id, _ in wanted]
        ordered = instance.get_dynamic_partitions(DOCUMENTS_PARTITION)
        present = set(ordered)
        missing = [doc_id for doc_id in wanted_ids if doc_id not in present]
        if missing:
            instance.add_dynamic_partitions(DOCUMENTS_PARTITION, missing)
            ordered = instance.get_dynamic_partitions(DOCUMENTS_PARTITION)
        seq_of = dict(wanted)
        position = {key: i for i, key in enumerate(ordered)}
        for first, last, _count in contiguous_ranges(ordered, wanted_ids, partitions_per_run):
            top = max(seq_of[k] for k in ordered[position[first] : position[last] + 1])
            run_requests.append(
                dg.RunRequest(
                    run_key=f"{first}..{last}@{top}",
                    tags={RANGE_START_TAG: first, RANGE_END_TAG: last, PREFIX_TAG: prefix},
                )
            )
        cursor = max(seq_of.values())
    context.log.info(
        f"s3://{source.bucket}/{prefix}: listed {plan.listed}, new {len(plan.new)} "
        f"(deferred {plan.deferred}), unchanged {plan.unchanged}, changed {plan.changed}, "
        f"gone {plan.gone}; {len(run_requests)} run(s) for {len(wanted)} document(s) "
        f"in {time.perf_counter() - started:.2f}s"
    )
    return dg.SensorResult(run_requests=run_requests, cursor=str(cursor))


def build_s3_sensor(prefix: str, settings: Settings) -> dg.SensorDefinition:
    """A running-by-default sensor for ``prefix`` (stopped when no bucket is configured)."""

    @dg.sensor(
        name=sensor_name(prefix),
        job=ingest_job,
        minimum_interval_seconds=settings.sensor_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING
        if settings.bucket_configured
        else dg.DefaultSensorStatus.STOPPED,
        description=f"Registers new objects under prefix {prefix!r} and requests batched runs.",
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
