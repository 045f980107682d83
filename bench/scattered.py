"""Scattered changes: how long a few changes spread over the key space take to be searchable,
against the cold ingest of the same bucket with the same (BENCH-ONLY hashing) embedder.

    python -m bench.scattered [--docs 20000] [--batches 15,150] [--postgres] [--events]
        [--variant-idle-shard-seconds S] --out bench/results/scattered-20k.md

1. Cold: the gpu-speed scenario (``bench.gpu_speed.run_gpu_speed``: the real sensor → runs path
   in process, the corpus in a moto server of its own) ingests ``--docs`` documents.
2. Each batch: ``n`` changes (``bench.scattered_changes``: modified, deleted and added objects in
   turn, evenly spread over the key space) are made through S3; then sensor ticks and every
   run they request, on the same instance, registry and vector store, until a point lookup by
   document id shows every change. Tick-to-searchable runs from the start of the tick that
   sees the changes to the end of that lookup.
3. With ``--variant-idle-shard-seconds``: the same batch sizes again (other objects), the
   sensor planning with that ``idle_shard_seconds`` (so it bridges fewer idle shards): side by
   side on the same state.
   With ``--events``: the same batch sizes again (other objects), announced by S3 → SQS
   notifications on the same moto server and picked up by the event sensor's tick instead of
   the listing's (the deployment's way for large buckets, docs/deployment.md).
4. Floors: one run over a single idle shard and one over every shard, no work in either: a
   run's fixed cost and each idle shard's, to split the batches' run time.
"""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from .common import REGION, Stopwatch, env_vars, machine_info, notify, s3_client
from .gpu_speed import (
    INSTANCE_YAML,
    Pipeline,
    Timers,
    instrumented,
    run_gpu_speed,
    scenario_settings,
)
from .scattered_changes import KINDS, Change, ChangeMaker, pending
from .scattered_model import Batch, ScatteredResult

MAX_TICKS = 5
EVENTS_VARIANT = "events"


def _events(pipeline: Pipeline, run_id: str) -> dict[str, int]:
    logs = pipeline.instance.all_logs(run_id)
    return dict(Counter(e.dagster_event.event_type_value for e in logs if e.dagster_event))


def measure_batch(
    pipeline: Pipeline,
    changes: Sequence[Change],
    label: str,
    timers: Timers,
    events: bool = False,
) -> Batch:
    """Tick (the event sensor's tick when ``events``, else the listing sensor's) and run until
    a lookup shows every change (at most ``MAX_TICKS`` ticks)."""
    settings = pipeline.settings
    batch = Batch(
        label,
        len(changes),
        {k: sum(c.kind == k for c in changes) for k in KINDS},
        len({c.shard for c in changes}),
        settings.bridge_shards,
        made=list(changes),
        load=os.getloadavg()[0],
    )
    started = time.perf_counter()
    for _ in range(MAX_TICKS):
        sensor_result, tick = pipeline.tick(timers, events)
        batch.ticks.append(tick)
        for request in sensor_result.run_requests or []:
            batch.runs.append(pipeline.execute(request, timers))
        batch.last_run_end = time.perf_counter() - started
        with Stopwatch() as lookup, pipeline.harness.store() as store:
            collection = store.resolve(settings.collection)
            left = pending(store, collection, changes) if collection else list(changes)
        batch.lookup_seconds += lookup.seconds
        batch.left = len(left)
        if not left:
            batch.searchable = time.perf_counter() - started
            break
    batch.events = [_events(pipeline, r.run_id) for r in batch.runs]
    return batch


def event_queue(client: Any, endpoint: str, bucket: str) -> Any:
    """A queue on the S3 server's endpoint that the bucket's notifications now reach, as the
    event sensor's resource (the deployment's: docs/deployment.md)."""
    import boto3

    from rag_ingest.resources.sqs import S3EventsQueue

    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name=REGION)
    url = sqs.create_queue(QueueName=f"{bucket}-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    notify(client, bucket, arn["QueueArn"])
    return S3EventsQueue(queue_url=url, endpoint_url=endpoint, region_name=REGION)


def _floors(pipeline: Pipeline, timers: Timers, result: ScatteredResult) -> None:
    import dagster as dg

    from rag_ingest.defs.ingestion.sensors import RANGE_END_TAG, RANGE_START_TAG

    keys = pipeline.settings.shard_layout.keys()
    for first, last in ((keys[0], keys[0]), (keys[0], keys[-1])):
        request = dg.RunRequest(tags={RANGE_START_TAG: first, RANGE_END_TAG: last})
        run = pipeline.execute(request, timers)
        result.floors.append(run)
        result.floor_events.append(_events(pipeline, run.run_id))


def run_scattered(
    endpoint: str,
    bucket: str,
    documents: int,
    workdir: Path,
    seed: int,
    batches: Sequence[int] = (15, 150),
    shards: int = 256,
    documents_per_run: int = 2000,
    storage: str = "sqlite",
    instance_yaml: str = INSTANCE_YAML,
    variant_idle_shard_seconds: float | None = None,
    variant_first: bool = False,
    events: bool = False,
    say: Callable[[str], None] = print,
) -> ScatteredResult:
    from rag_ingest.testing.harness import make_resources

    from .hashing_embedder import HashingEmbedder

    cold = run_gpu_speed(
        endpoint,
        bucket,
        documents,
        workdir,
        shards,
        documents_per_run,
        say=say,
        label="cold",
        instance_yaml=instance_yaml,
    )
    say(f"cold: {cold.wall:.1f}s over {len(cold.runs)} run(s), work left {cold.work_left}")
    result = ScatteredResult(documents, shards, storage, cold)
    settings = scenario_settings(bucket, workdir / "data", shards, documents_per_run)
    variants = [("default", settings)]
    if variant_idle_shard_seconds is not None:
        slower = settings.replace(idle_shard_seconds=variant_idle_shard_seconds)
        variants.append((f"idle_shard_seconds={variant_idle_shard_seconds:g}", slower))
    if events:
        variants.append((EVENTS_VARIANT, settings))
    if variant_first:
        variants.reverse()  # the machine's load drifts: the order is part of the comparison
    client = s3_client(endpoint)
    maker = ChangeMaker(client, bucket, seed, documents, settings.shard_layout)
    timers = Timers()
    for name, chosen in variants:
        queue = event_queue(client, endpoint, bucket) if name == EVENTS_VARIANT else None
        if queue is not None:
            chosen = chosen.replace(events_queue_url=queue.queue_url)
        # The cold ingest's instance, registry and store, as a restarted code location sees them.
        resources = make_resources(endpoint, chosen, embedder=HashingEmbedder())
        if queue is not None:
            resources["events_queue"] = queue
        pipeline = Pipeline(workdir / "home", chosen, resources)
        try:
            with instrumented(timers):
                for n in batches:
                    changes = maker.apply(n)
                    batch = measure_batch(
                        pipeline, changes, f"{n} changes, {name}", timers, queue is not None
                    )
                    result.batches.append(batch)
                    say(
                        f"{batch.label}: {batch.searchable:.1f}s to searchable, "
                        f"{len(batch.runs)} run(s) over {batch.shards_run} shard(s), "
                        f"{batch.left} change(s) not shown"
                    )
                if name == "default":
                    _floors(pipeline, timers, result)
        finally:
            pipeline.close()
            if queue is not None:  # later variants' changes go unannounced
                notify(client, bucket, None)
    result.load_after = os.getloadavg()
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    p.add_argument("--docs", type=int, default=20_000)
    p.add_argument("--batches", default="15,150", help="changes per batch, comma-separated")
    p.add_argument("--shards", type=int, default=256)
    p.add_argument("--documents-per-run", type=int, default=2000)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--postgres", action="store_true", help="Dagster's storage on PostgreSQL")
    p.add_argument("--variant-idle-shard-seconds", type=float, default=None)
    p.add_argument("--variant-first", action="store_true", help="measure the variant first")
    p.add_argument(
        "--events",
        action="store_true",
        help="then the same batch sizes through S3 → SQS notifications and the event sensor",
    )
    p.add_argument("--workdir", type=Path, default=None, help="kept afterwards when given")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--save", type=Path, default=None, help="pickle the measurements here")
    p.add_argument("--render", type=Path, default=None, help="only re-render a --save file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    import pickle
    import shlex
    import sys
    import tempfile

    from rag_ingest.cli.dev import DAGSTER_ENV

    from .dagster_cost import POSTGRES_YAML
    from .dagster_cost import _postgres as postgres_url
    from .s3server import s3_server
    from .scattered_report import render

    args = parse_args(argv)
    if args.render is not None:
        command, machine, result = pickle.loads(args.render.read_bytes())
        args.out.write_text(render(result, command, machine))
        return 0
    # As deployed (docs/deployment.md): one planned event per run and asset, not per shard, and
    # batched materializations; a value set by the caller wins (DAGSTER_EVENT_BATCH_SIZE=0: off).
    machine = machine_info()
    for name, value in DAGSTER_ENV.items():
        os.environ.setdefault(name, value)
        machine[name] = os.environ[name] or "unset"
    command = "python -m bench.scattered " + shlex.join(sys.argv[1:] if argv is None else argv)
    with ExitStack() as stack:
        workdir = args.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        instance_yaml = INSTANCE_YAML
        if args.postgres:
            url = stack.enter_context(postgres_url())
            if url is None:
                raise SystemExit("--postgres: no PostgreSQL server could be started")
            stack.enter_context(env_vars(BENCH_DAGSTER_PG_URL=url))
            instance_yaml += POSTGRES_YAML
        info = stack.enter_context(s3_server("bench-scattered", args.docs, args.seed))
        result = run_scattered(
            info.endpoint,
            info.bucket,
            args.docs,
            workdir,
            args.seed,
            [int(n) for n in args.batches.split(",") if n],
            args.shards,
            args.documents_per_run,
            "postgres" if args.postgres else "sqlite",
            instance_yaml,
            args.variant_idle_shard_seconds,
            args.variant_first,
            args.events,
            say=lambda line: print(line, flush=True),
        )
    if args.save is not None:
        args.save.write_bytes(pickle.dumps((command, machine, result)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(result, command, machine))
    print(f"wrote {args.out}")
    return 0 if all(b.left == 0 for b in result.batches) else 1


if __name__ == "__main__":
    raise SystemExit(main())
