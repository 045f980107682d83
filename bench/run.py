"""One command for the benchmark; writes a markdown report.

    python -m bench.run [--docs 20000] [--burst-keys 100000] [--cpu-docs 200] [--repeats 1]
        [--skip cpu,burst,cost] [--postgres] [--out bench/RESULTS.md]

Scenarios (each on fresh temp dirs: Dagster instance, registry, Parquet store, Qdrant Edge):

* ``gpu``: ``--docs`` small documents (2–5 KB) through the real sensor → runs → Qdrant Edge
  path with the BENCH-ONLY hashing embedder (``bench.gpu_speed``), then a bare threaded GET
  loop over the same objects from the same S3 server (its own rate, for comparison).
* ``cost``: Dagster's run creation and submission as the sensor daemon does it, launching a
  few runs, and the bookkeeping floor of runs over 1, 16 and 256 shards, with and without
  ``DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS`` (``bench.dagster_cost``).
* ``burst``: ``--burst-keys`` new objects, one listing tick in a child process of its own
  (``bench.burst``): its seconds with the listing timed apart, its peak RSS, the runs it asks.
* ``cpu``: ``--cpu-docs`` documents with the real MiniLM on CPU against embedding alone
  (``bench.cpu_scenario``).

S3 is a moto server in a child process (``bench.s3server``), populated in its own backend.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from . import common
from .common import REPO, s3_client
from .results_model import Results

SCENARIOS = ("gpu", "cost", "ui", "burst", "cpu")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.run", description=(__doc__ or "").split("\n")[0]
    )
    p.add_argument("--docs", type=int, default=20_000, help="small documents (gpu scenario)")
    p.add_argument("--repeats", type=int, default=1, help="repeats of the gpu scenario")
    p.add_argument("--shards", type=int, default=256, help="shard layout")
    p.add_argument("--documents-per-run", type=int, default=2000)
    p.add_argument("--get-threads", type=int, default=8, help="bare GET loop threads")
    p.add_argument("--burst-keys", type=int, default=100_000)
    p.add_argument(
        "--burst-moto",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time the burst tick with moto's own (O(n²)) listing",
    )
    p.add_argument("--cpu-docs", type=int, default=200, help="documents (cpu scenario)")
    p.add_argument("--launch-sample", type=int, default=2, help="runs really launched (cost)")
    p.add_argument("--floor-shards", default="1,16,256", help="shards per floor run (cost)")
    p.add_argument(
        "--cost-full-run",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also create one run over every shard (about a minute on SQLite)",
    )
    p.add_argument("--postgres", action="store_true", help="cost scenario on PostgreSQL too")
    p.add_argument("--ui-loads", type=int, default=3, help="timed loads of each UI page")
    p.add_argument("--seed", type=int, default=7, help="corpus seed")
    p.add_argument(
        "--a10g-chunks-per-second",
        type=float,
        default=3000.0,
        help="ASSUMED MiniLM rate of one A10G (no GPU is measured)",
    )
    p.add_argument("--a10g-dollars-per-hour", type=float, default=1.10)
    p.add_argument("--skip", default="", help=f"comma-separated, of: {', '.join(SCENARIOS)}")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "RESULTS.md")
    args = p.parse_args(argv)
    args.floor_shards = tuple(int(n) for n in args.floor_shards.split(",") if n.strip())
    args.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if unknown := args.skip - set(SCENARIOS):
        p.error(f"unknown --skip {sorted(unknown)}; choose from {', '.join(SCENARIOS)}")
    if "gpu" in args.skip:
        # The cost scenario replays the gpu scenario's run requests; the UI reads its instance.
        args.skip |= {"cost", "ui"}
    return args


def _gpu_and_cost(args: argparse.Namespace, res: Results, tmp: Path) -> None:
    from .corpus import small_key
    from .gpu_speed import bare_get_rate, run_gpu_speed
    from .s3server import s3_server

    with s3_server("bench-small", small_docs=args.docs, seed=args.seed) as info:
        res.s3_populate = info
        _say(
            f"s3: {info.small_docs} objects, {info.bytes_stored:,} bytes, generated in "
            f"{info.generate_seconds:.1f}s, stored in {info.populate_seconds:.1f}s"
        )
        keys = [small_key(args.seed, i) for i in range(args.docs)]
        client = s3_client(info.endpoint)
        for r in range(args.repeats):
            gpu = run_gpu_speed(
                info.endpoint,
                info.bucket,
                args.docs,
                tmp / f"gpu-{r}",
                shards=args.shards,
                documents_per_run=args.documents_per_run,
                say=_say,
            )
            res.gpu.append(gpu)
            _say(
                f"gpu-speed: {gpu.documents} documents in {gpu.wall:.1f}s "
                f"({gpu.docs_per_second:.1f}/s), Dagster {gpu.dagster:.1f}s"
            )
            # Same objects, same server, right after: moto's own GET rate.
            rate = bare_get_rate(client, info.bucket, keys, args.get_threads)
            res.get_rates.append(rate)
            _say(
                f"bare GET: {rate.objects} objects in {rate.seconds:.1f}s "
                f"({rate.per_second:.1f}/s, {rate.threads} threads)"
            )
        if "ui" not in args.skip:
            _guarded(res, "ui", lambda: _ui(args, res, info.endpoint, info.bucket, tmp))
        if "cost" not in args.skip:
            _guarded(res, "cost", lambda: _cost(args, res, info.endpoint, info.bucket, tmp))


def _cost(args: argparse.Namespace, res: Results, endpoint: str, bucket: str, tmp: Path) -> None:
    from .dagster_cost import run_dagster_cost

    last = res.gpu[-1]
    res.cost = run_dagster_cost(
        last.requests, Path(last.data_dir), endpoint, bucket, tmp / "cost",
        launch_sample=args.launch_sample, postgres=args.postgres, say=_say,
        floor_shards=args.floor_shards, full_run=args.cost_full_run, shards=args.shards,
    )  # fmt: skip


def _guarded(res: Results, name: str, step: Callable[[], None]) -> None:
    """Run one scenario; a failure is recorded in the report (with the traceback's tail) and
    the others still run, so an hour of measurements is not lost to one late error."""
    try:
        step()
    except Exception:
        res.errors[name] = traceback.format_exc()[-3000:]
        _say(f"{name}: FAILED\n{res.errors[name]}")
    # The report so far, after every scenario: a killed run still leaves its numbers.
    from .report import write_report

    write_report(res)


def _ui(args: argparse.Namespace, res: Results, endpoint: str, bucket: str, tmp: Path) -> None:
    from rag_ingest.testing.harness import make_settings

    from .ui import run_ui

    last = res.gpu[-1]
    settings = make_settings(bucket, Path(last.data_dir), shards=args.shards)
    res.ui = run_ui(Path(last.home), settings, endpoint, tmp / "ui", args.ui_loads, say=_say)


def _burst(args: argparse.Namespace, res: Results, tmp: Path) -> None:
    from .burst import run_burst
    from .s3server import s3_server

    with s3_server("bench-burst", empty_keys=args.burst_keys) as info:
        res.burst = run_burst(
            info.endpoint, info.bucket, args.burst_keys, tmp / "burst", args.burst_moto
        )
    _say(f"burst: {args.burst_keys} keys, {res.burst.file}")


def _cpu(args: argparse.Namespace, res: Results, tmp: Path) -> None:
    from .cpu_scenario import run_cpu
    from .s3server import s3_server

    with s3_server("bench-cpu", small_docs=args.cpu_docs, seed=args.seed + 1) as info:
        res.cpu = run_cpu(
            info.endpoint, info.bucket, args.cpu_docs, tmp / "cpu",
            documents_per_run=args.documents_per_run, shards=args.shards, say=_say,
        )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Request logs of the local S3 server are not what we measure.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    from .report import write_report

    command = "python -m bench.run " + shlex.join(sys.argv[1:] if argv is None else argv)
    res = Results(args, common.machine_info(), command)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rag-bench-") as tmpdir:
        tmp = Path(tmpdir)
        if "gpu" not in args.skip:
            _guarded(res, "gpu", lambda: _gpu_and_cost(args, res, tmp))
        if "burst" not in args.skip:
            _guarded(res, "burst", lambda: _burst(args, res, tmp))
        if "cpu" not in args.skip:
            _guarded(res, "cpu", lambda: _cpu(args, res, tmp))
    res.total_seconds = time.perf_counter() - started
    write_report(res)
    _say(f"wrote {args.out}")
    return 1 if res.errors else 0


def _say(line: str) -> None:
    print(f"[bench] {line}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
