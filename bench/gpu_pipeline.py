"""The gpu-speed scenario of ``bench.gpu_device``: the real model on the GPU, concurrent runs.

``bench.gpu_speed`` with two differences: the embedder is the project's ``LocalEmbedder`` on
``device`` (the real model, the same ``Encoder`` the Modal app runs) instead of the bench-only
hashing embedder, and the runs one listing tick requests execute ``concurrency`` at a time,
each in a worker process of its own (spawned, so CUDA starts cleanly in each) on the same
Dagster instance, registry and store, as a run launcher's run workers would. The project's
locks keep writers (and, ``LocalEmbedder.serializes_runs``, embedding) one run at a time; the
fetching, extraction and chunking of the runs overlap.

Each worker loads its definitions and the model before the wall starts (a deployed worker is
warm); the wall runs from the first tick to the last run's end. A run whose turn comes after
``deadline`` is not started (counted in ``runs_skipped``); a run still going at
``deadline + grace`` is ended with its worker (``terminated``).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .gpu_speed import (
    INSTANCE_YAML,
    GpuSpeedResult,
    Pipeline,
    RunTiming,
    Timers,
    _final_check,
    chosen_settings,
    instrumented,
)


@dataclass(frozen=True)
class Setup:
    """What every process needs to build the same settings and resources."""

    endpoint: str
    bucket: str
    workdir: str
    documents: int
    shards: int
    documents_per_run: int
    extract_workers: int
    device: str
    batch_size: int
    model: str  # "" for the packaged default, else a model folder


@dataclass
class ConcurrentResult:
    pipeline: GpuSpeedResult
    concurrency: int
    extract_workers: int
    device: str
    batch_size: int
    worker_start_seconds: float = 0.0
    runs_requested: int = 0
    runs_skipped: int = 0
    terminated: bool = False
    stopped_by_budget: bool = False
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Request:
    tags: dict[str, str]
    run_key: str | None


def _build(setup: Setup, home_config: str | None) -> Pipeline:
    from rag_ingest.core.config import Settings
    from rag_ingest.core.text.model import DEFAULT_MODEL
    from rag_ingest.resources import VectorStoreResource
    from rag_ingest.resources.embedders import LocalEmbedder
    from rag_ingest.testing.harness import make_resources

    # harness.make_settings' values, built in one go: its defaults first would resolve the
    # packaged model, which a device without that package cannot.
    values: dict[str, Any] = {
        "bucket": setup.bucket,
        "data_dir": Path(setup.workdir) / "data",
        "full_reconcile_hours": 0,
        "shards": setup.shards,
        "documents_per_run": setup.documents_per_run,
        "extract_workers": setup.extract_workers,
        "sensor_interval_seconds": 30,
        "retry_backoff_seconds": 30,
        "embed_model": setup.model or DEFAULT_MODEL,
    }
    settings = Settings(**{**values, **chosen_settings()})
    embedder = LocalEmbedder(
        device=setup.device, batch_size=setup.batch_size, model=setup.model or DEFAULT_MODEL
    )
    resources = make_resources(setup.endpoint, settings, embedder=embedder)
    # Runs wait for each other's store lock here: the deployment's own wait, not the tests' 5 s.
    resources["vectors"] = VectorStoreResource(
        engine=settings.qdrant_engine, path=str(settings.qdrant_path)
    )
    return Pipeline(Path(setup.workdir) / "home", settings, resources, home_config)


# One per worker process, set by _init (a pool's tasks cannot carry the loaded pipeline).
_WORKER: dict[str, Any] = {}


def _init(setup: Setup) -> None:
    timers = Timers()
    stack = ExitStack()
    stack.enter_context(instrumented(timers))
    pipeline = _build(setup, None)
    embedder = pipeline.harness.resources["embedder"]
    embedder.embed(["warm-up"])  # the model loaded and on the device before the wall
    _WORKER.update(pipeline=pipeline, timers=timers, stack=stack)


def _pid_after(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def _execute(request: Request, deadline: float) -> tuple[RunTiming | None, float, int]:
    """One run, unless its turn comes after ``deadline`` (wall clock: processes share it);
    returns the timing and this run's S3 GET seconds and count."""
    if time.time() >= deadline:
        return None, 0.0, 0
    timers: Timers = _WORKER["timers"]
    get_before = timers.seconds.get("get", 0.0), timers.seconds.get("gets", 0.0)
    timing = _WORKER["pipeline"].execute(request, timers)
    return (
        timing,
        timers.seconds.get("get", 0.0) - get_before[0],
        int(timers.seconds.get("gets", 0.0) - get_before[1]),
    )


def run_concurrent(
    setup: Setup,
    concurrency: int,
    deadline: float,
    grace: float = 60.0,
    max_ticks: int = 5,
    say: Callable[[str], None] = print,
) -> ConcurrentResult:
    """Ingest every object of ``setup.bucket``; ``deadline`` is wall-clock (``time.time()``)."""
    result = GpuSpeedResult(
        setup.documents, setup.shards, setup.documents_per_run, home=f"{setup.workdir}/home"
    )
    result.data_dir = f"{setup.workdir}/data"
    out = ConcurrentResult(
        result, concurrency, setup.extract_workers, setup.device, setup.batch_size
    )
    result.load_before = os.getloadavg()
    timers = Timers()
    pipeline = _build(setup, INSTANCE_YAML)
    pool_started = time.perf_counter()
    pool = mp.get_context("spawn").Pool(concurrency, initializer=_init, initargs=(setup,))
    try:
        # Every worker warm before the wall: a worker takes a task only once initialized.
        ready: set[int] = set()
        for _ in range(50):
            ready |= set(pool.map(_pid_after, [0.2] * concurrency, chunksize=1))
            if len(ready) >= concurrency:
                break
        out.worker_start_seconds = time.perf_counter() - pool_started
        say(f"gpu-pipeline: {concurrency} workers ready in {out.worker_start_seconds:.1f}s")
        with instrumented(timers):
            started = time.perf_counter()
            for _ in range(max_ticks):
                if time.time() >= deadline:
                    out.stopped_by_budget = True
                    break
                sensor_result, tick = pipeline.tick(timers)
                requests = [
                    Request(dict(r.tags), r.run_key) for r in sensor_result.run_requests or []
                ]
                say(
                    f"gpu-pipeline: tick {len(result.ticks) + 1}: {tick.seconds:.1f}s, "
                    f"{len(requests)} run(s) over {sum(tick.documents_requested)} document(s)"
                )
                if not requests:
                    result.confirm = tick
                    break
                result.ticks.append(tick)
                out.runs_requested += len(requests)
                pending = [pool.apply_async(_execute, (r, deadline)) for r in requests]
                for job in pending:
                    try:
                        timing, get_seconds, gets = job.get(
                            timeout=max(1.0, deadline + grace - time.time())
                        )
                    except mp.TimeoutError:
                        out.terminated = out.stopped_by_budget = True
                        out.notes.append("a run outlasted the budget's grace: workers ended")
                        break
                    if timing is None:
                        out.runs_skipped += 1
                        out.stopped_by_budget = True
                        continue
                    result.runs.append(timing)
                    result.get_seconds_threads += get_seconds
                    result.gets += gets
                    say(
                        f"gpu-pipeline: run {len(result.runs)} ({timing.documents} docs): "
                        f"{timing.wall:.1f}s, {'ok' if timing.success else 'FAILED'}"
                    )
                result.wall = time.perf_counter() - started
                if out.terminated or out.runs_skipped:
                    break
        if result.runs and not out.terminated:
            _final_check(pipeline, result)
    finally:
        if out.terminated:
            pool.terminate()
        else:
            pool.close()  # idle workers exit on their own: no signal mid-cleanup
        pool.join()
        pipeline.close()
        result.load_after = os.getloadavg()
    result.get_seconds_threads += timers.seconds.get("get", 0.0)
    result.gets += int(timers.seconds.get("gets", 0))
    return out
