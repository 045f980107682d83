"""Dagster's batched event writes for a run over many shards, side by side (issue 22).

    python -m bench.event_batch --repeats 3 --out bench/results/event-batch.md

A run over N shards writes one materialization per shard and asset (4 per shard). Dagster
1.13 can hand a step's per-partition materializations to the event storage as one batch when
``DAGSTER_EVENT_BATCH_SIZE`` is above 0; PostgreSQL's storage then inserts them in one
statement, SQLite's loops over single writes. This measures the bookkeeping floor of one run
over every shard of an empty corpus (``bench.dagster_cost``'s floor: wall minus the four asset
bodies) with the variable unset and set, alternating which goes first, on SQLite and on a
throwaway PostgreSQL cluster, each configuration on a fresh instance after one warm-up run.
Also counts the materializations the timed run recorded, so a batch that lost events shows.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from .common import env_vars, machine_info

BATCH_ENV = "DAGSTER_EVENT_BATCH_SIZE"
ASSETS = 4


@dataclass
class Sample:
    storage: str
    batch: str | None
    repeat: int
    wall: float
    bodies: float
    materializations: int

    @property
    def dagster(self) -> float:
        return self.wall - self.bodies


@dataclass
class Result:
    shards: int
    samples: list[Sample] = field(default_factory=list)


def _one(
    storage: str,
    batch: str | None,
    repeat: int,
    workdir: Path,
    endpoint: str,
    bucket: str,
    shards: int,
    pg_url: str | None,
) -> Sample:
    import dagster as dg

    from rag_ingest.defs.ingestion.sensors import RANGE_END_TAG, RANGE_START_TAG
    from rag_ingest.testing.harness import make_resources, make_settings

    from .dagster_cost import _home, _wipe_postgres
    from .gpu_speed import Pipeline, Timers
    from .hashing_embedder import HashingEmbedder

    tag = f"{storage}-{batch or 'off'}-{repeat}"
    home = _home(workdir / f"home-{tag}", storage)
    if pg_url:
        _wipe_postgres(pg_url)
    data = Path(tempfile.mkdtemp(dir=workdir, prefix=f"data-{tag}-"))
    settings = make_settings(bucket, data, shards=shards)
    resources = make_resources(endpoint, settings, embedder=HashingEmbedder())
    keys = settings.shard_layout.keys()
    with env_vars(**{BATCH_ENV: batch}):
        pipeline = Pipeline(home, settings, resources)
        try:
            warm = {RANGE_START_TAG: keys[0], RANGE_END_TAG: keys[0]}
            pipeline.execute(dg.RunRequest(job_name="ingest_documents", tags=warm), Timers())
            tags = {RANGE_START_TAG: keys[0], RANGE_END_TAG: keys[-1]}
            request = dg.RunRequest(job_name="ingest_documents", tags=tags)
            timing = pipeline.execute(request, Timers())
            if not timing.success:
                raise RuntimeError(f"{tag}: the timed run failed")
            records = pipeline.instance.get_records_for_run(
                timing.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION, limit=100_000
            ).records
        finally:
            pipeline.close()
    return Sample(storage, batch, repeat, timing.wall, timing.bodies, len(records))


def run_event_batch(
    repeats: int,
    shards: int,
    batch_size: str,
    postgres: bool,
    say: Callable[[str], None] = print,
) -> Result:
    from .dagster_cost import _postgres
    from .s3server import s3_server

    result = Result(shards)
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        info = stack.enter_context(s3_server("bench-event-batch", 0))
        pg_url = stack.enter_context(_postgres()) if postgres else None
        if postgres and pg_url is None:
            say("no PostgreSQL cluster could start: SQLite only")
        storages = ["sqlite"] + (["postgres"] if pg_url else [])
        for storage in storages:
            for repeat in range(repeats):
                order: list[str | None] = [None, batch_size]
                if repeat % 2:
                    order.reverse()
                for batch in order:
                    url = pg_url if storage == "postgres" else None
                    with env_vars(BENCH_DAGSTER_PG_URL=url):
                        sample = _one(
                            storage, batch, repeat, workdir, info.endpoint, info.bucket, shards, url
                        )
                    result.samples.append(sample)
                    say(
                        f"{storage} batch={batch or 'off'} repeat {repeat + 1}: wall "
                        f"{sample.wall:.1f}s dagster {sample.dagster:.1f}s "
                        f"materializations {sample.materializations}"
                    )
    return result


def render(result: Result, command: str, machine: dict[str, str], batch_size: str) -> str:
    lines = [
        f"# Batched event writes, one run over {result.shards} shards of an empty corpus",
        "",
        f"`{command}`. Machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()) + ".",
        "Dagster = the run's wall seconds minus its four asset bodies; medians over the repeats "
        "(alternating which variant goes first). One machine, possibly shared.",
        "",
        f"| storage | `{BATCH_ENV}` | repeats | wall s | Dagster s | Dagster per shard ms | "
        "materializations (expected) |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    medians: dict[tuple[str, str | None], float] = {}
    for storage in dict.fromkeys(s.storage for s in result.samples):
        for batch in (None, batch_size):
            group = [s for s in result.samples if s.storage == storage and s.batch == batch]
            if not group:
                continue
            dagster = statistics.median(s.dagster for s in group)
            medians[(storage, batch)] = dagster
            counts = sorted({s.materializations for s in group})
            lines.append(
                f"| {storage} | {batch or 'unset'} | {len(group)} | "
                f"{statistics.median(s.wall for s in group):.1f} | {dagster:.1f} | "
                f"{1000 * dagster / result.shards:.0f} | "
                f"{', '.join(map(str, counts))} ({ASSETS * result.shards}) |"
            )
    lines += ["", "Ratios (set ÷ unset, Dagster seconds, medians):", ""]
    for storage in dict.fromkeys(s.storage for s in result.samples):
        off, on = medians.get((storage, None)), medians.get((storage, batch_size))
        if off and on:
            lines.append(f"- {storage}: {on / off:.2f}")
    lines += ["", "Every sample:", "", "| storage | batch | repeat | wall s | Dagster s |"]
    lines.append("|---|---|---:|---:|---:|")
    for s in result.samples:
        lines.append(
            f"| {s.storage} | {s.batch or 'unset'} | {s.repeat + 1} | {s.wall:.1f} | "
            f"{s.dagster:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from rag_ingest.cli.dev import DAGSTER_ENV

    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--shards", type=int, default=256)
    p.add_argument("--batch-size", default=DAGSTER_ENV[BATCH_ENV])
    p.add_argument("--no-postgres", action="store_true")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    for name, value in DAGSTER_ENV.items():
        if name != BATCH_ENV:  # the one compared here, on and off
            os.environ.setdefault(name, value)
    command = "python -m bench.event_batch " + shlex.join(sys.argv[1:] if argv is None else argv)
    result = run_event_batch(
        args.repeats,
        args.shards,
        args.batch_size,
        not args.no_postgres,
        say=lambda line: print(line, flush=True),
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(result, command, machine_info(), args.batch_size))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
