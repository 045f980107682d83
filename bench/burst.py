"""Burst: N new objects, one listing tick, in a child process of its own.

Each tick runs in ``python -m bench.burst`` so its peak RSS (``VmHWM``) is the tick's alone,
not the harness's. The child times the listing apart (time spent inside the listing
generator) from the tick's own work (registry read, diff, registration, run requests), and
reports what the tick requested: runs and documents per run. Modes:

* ``moto``: the real listing from the moto server (moto sorts the whole bucket for every
  1,000-key page: O(n²); S3 pages in constant time), on a fresh registry; it streams the
  listing to a file for the next mode.
* ``file``: the same listing streamed back from that local file, object by object, as S3's
  pages stream (the tick never holds more of the listing than the real one does), on a fresh
  registry: the first tick of a burst, then a steady tick (nothing new) on the same registry.

Neither mode keeps the listing in the child beyond what the tick itself keeps, so the peak RSS
is the tick's.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .common import REPO, proc_status_mb

INSTANCE_YAML = "telemetry:\n  enabled: false\n"


@dataclass
class TickResult:
    mode: str
    seconds: float
    listing_seconds: float
    rss_before_mb: float
    peak_rss_mb: float
    listed: int
    registered: int
    runs: int
    documents: list[int] = field(default_factory=list)
    steady_seconds: float = float("nan")
    steady_listing_seconds: float = float("nan")
    steady_runs: int = 0
    steady_peak_rss_mb: float = float("nan")

    @property
    def own_seconds(self) -> float:
        return self.seconds - self.listing_seconds

    @property
    def steady_own_seconds(self) -> float:
        return self.steady_seconds - self.steady_listing_seconds

    def per_run(self) -> tuple[int, float, int]:
        docs = self.documents or [0]
        return min(docs), statistics.median(docs), max(docs)


@dataclass
class BurstResult:
    keys: int
    moto: TickResult | None = None
    file: TickResult | None = None


def _child(args: list[str]) -> TickResult:
    cmd = [sys.executable, "-m", "bench.burst", *args]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"burst child {args[0]} failed:\n{done.stderr[-3000:]}")
    return TickResult(**json.loads(done.stdout.strip().splitlines()[-1]))


def run_burst(
    endpoint: str, bucket: str, keys: int, workdir: Path, moto: bool = True
) -> BurstResult:
    """The moto-listed first tick (optional: it costs moto's O(n²) listing), then the
    file-served first and steady ticks; each on a fresh registry and instance."""
    workdir.mkdir(parents=True, exist_ok=True)
    listing = workdir / "listing.pickle"
    result = BurstResult(keys)
    common = ["--endpoint", endpoint, "--bucket", bucket, "--listing", str(listing)]
    if moto or not listing.exists():
        result.moto = _child(["moto", "--workdir", str(workdir / "moto"), *common])
    result.file = _child(["file", "--workdir", str(workdir / "file"), *common])
    return result


def _timed_listing(objects: Iterator[Any], spent: list[float]) -> Iterator[Any]:
    while True:
        started = time.perf_counter()
        try:
            item = next(objects)
        except StopIteration:
            spent[0] += time.perf_counter() - started
            return
        spent[0] += time.perf_counter() - started
        yield item


def _tick(workdir: Path, endpoint: str, bucket: str, serve: Any) -> tuple[float, float, Any]:
    """One listing tick as the sensor runs it; returns (seconds, listing seconds, result)."""
    import dagster as dg

    from rag_ingest.defs.ingestion import sensors
    from rag_ingest.resources import S3Source
    from rag_ingest.testing.harness import make_settings

    home = workdir / "home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(INSTANCE_YAML)
    settings = make_settings(bucket, workdir / "data", shards=256, sensor_interval_seconds=30)
    from rag_ingest.core.registry import Registry

    registry = Registry(f"sqlite:///{settings.data_dir / 'registry.sqlite'}")
    source = S3Source(bucket=bucket, endpoint_url=endpoint, region_name="us-east-1")
    location = f"edge:{settings.qdrant_path}"
    spent = [0.0]
    from rag_ingest.core.planning import listing_pass
    from rag_ingest.core.storage.s3 import ListingPage, list_objects

    def whole_prefix(client: Any, bucket: str, prefix: str, *_: Any) -> ListingPage:
        # The burst as one tick: the whole listing in one page (a pass that fits one tick),
        # whatever RAG_LISTING_KEYS_PER_TICK says; paging is measured by bench.listing_pages.
        objects = list(_timed_listing(serve(list_objects, client, bucket, prefix), spent))
        return ListingPage(objects, objects[-1].key if objects else None, True, 0)

    real = listing_pass.list_page
    listing_pass.list_page = whole_prefix  # type: ignore[assignment]
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        with dg.build_sensor_context(instance=instance) as context:
            started = time.perf_counter()
            result = sensors.evaluate_listing_tick(
                context, source, registry, settings, "", location
            )
            seconds = time.perf_counter() - started
    finally:
        listing_pass.list_page = real  # type: ignore[assignment]
        instance.dispose()
    return seconds, spent[0], result


def _main(args: argparse.Namespace) -> None:
    import dagster as dg

    # What a code server holds before any tick: the project's modules and a warm botocore
    # model cache. "RSS before" is that; peak minus it is the tick's own memory.
    import rag_ingest.definitions  # noqa: F401
    from rag_ingest.core.registry import Registry
    from rag_ingest.core.storage.s3 import make_client

    make_client(args.endpoint, "us-east-1", 1)
    before = proc_status_mb("VmRSS")
    workdir = Path(args.workdir)
    listing_file = Path(args.listing)
    listed = [0]
    if args.mode == "moto":

        def serve(real: Any, *a: Any, **k: Any) -> Iterator[Any]:
            with listing_file.open("wb") as out:
                for obj in real(*a, **k):
                    pickle.dump(obj, out)
                    listed[0] += 1
                    yield obj

    else:

        def serve(real: Any, *a: Any, **k: Any) -> Iterator[Any]:
            listed[0] = 0
            with listing_file.open("rb") as stream:
                while True:
                    try:
                        obj = pickle.load(stream)
                    except EOFError:
                        return
                    listed[0] += 1
                    yield obj

    seconds, listing, result = _tick(workdir, args.endpoint, args.bucket, serve)
    peak = proc_status_mb("VmHWM")
    requests = [r for r in result.run_requests or [] if isinstance(r, dg.RunRequest)]
    registry = Registry(f"sqlite:///{workdir / 'data' / 'registry.sqlite'}")
    out: dict[str, Any] = {
        "mode": args.mode,
        "seconds": seconds,
        "listing_seconds": listing,
        "rss_before_mb": before,
        "peak_rss_mb": peak,
        "listed": listed[0],
        "registered": sum(registry.status_counts().values()),
        "runs": len(requests),
        "documents": [int(r.tags.get("rag_ingest/documents", 0)) for r in requests],
    }
    if args.mode != "moto":
        steady, steady_listing, steady_result = _tick(workdir, args.endpoint, args.bucket, serve)
        out |= {
            "steady_seconds": steady,
            "steady_listing_seconds": steady_listing,
            "steady_runs": len(steady_result.run_requests or []),
            "steady_peak_rss_mb": proc_status_mb("VmHWM"),
        }
    print(json.dumps(out))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["moto", "file"])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--listing", required=True)
    _main(parser.parse_args())
