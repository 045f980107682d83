"""Dagster's own cost with shard partitions: run creation and submission as the daemon does
it, launching a run, and the bookkeeping floor of a run over N shards with nothing to do.

* **Creation + submission**: the runs a burst requested (the GPU-speed scenario's first tick)
  go through ``dagster._daemon.sensor._submit_run_request`` — the sensor daemon's own function
  ("Creating new run" … "Launching run") — against a managed gRPC code server loading
  ``rag_ingest.definitions`` (``create_test_daemon_workspace_context``, the daemon's workspace),
  into an instance with the ``QueuedRunCoordinator``; with and without
  ``DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS``, on SQLite and (when PostgreSQL binaries
  are installed) on PostgreSQL. Also one full-reconcile run over every shard.
* **Launch**: a few of those runs are dequeued by ``QueuedRunCoordinatorDaemon.run_iteration``
  (``DefaultRunLauncher``: the code server starts a run worker process), then followed to
  RUN_START and to their end. They reconcile shards whose documents are all ingested already
  (the GPU-speed scenario's registry and Qdrant), so they do the bookkeeping and the shard
  verification but fetch and embed nothing.
* **Floor**: in-process runs of the ingest job over 1, 16 and 256 shards of an empty corpus
  (and all 16 shards of a 16-shard layout): Dagster's share is the run's wall time minus its
  four asset bodies.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .common import REPO, Stopwatch, env_vars

SUBSET_ENV = "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"
SENSOR = "s3_sensor_bucket_root"
QUEUED_YAML = """\
run_coordinator:
  module: dagster._core.run_coordinator
  class: QueuedRunCoordinator
concurrency:
  runs:
    max_concurrent_runs: 1
telemetry:
  enabled: false
"""
POSTGRES_YAML = """\
storage:
  postgres:
    postgres_url:
      env: BENCH_DAGSTER_PG_URL
"""


@dataclass
class Submission:
    """Per run: seconds in ``_submit_run_request`` (creation: execution plan over gRPC and
    ``create_run`` with its planned events; then ``submit_run``: enqueue)."""

    shards: int
    seconds: float
    submit_seconds: float


@dataclass
class Launch:
    shards: int
    launch_seconds: float  # run_launcher.launch_run (code server starts the worker)
    to_start_seconds: float  # submit_run returned → RUN_START stored (worker up, code loaded)
    to_end_seconds: float  # → RUN_SUCCESS / RUN_FAILURE
    status: str


@dataclass
class Floor:
    layout: int
    shards: int
    wall: float
    bodies: float

    @property
    def dagster(self) -> float:
        return self.wall - self.bodies


@dataclass
class StorageCost:
    storage: str
    subset: bool
    submissions: list[Submission] = field(default_factory=list)
    full_run: Submission | None = None
    launches: list[Launch] = field(default_factory=list)
    floors: list[Floor] = field(default_factory=list)
    workspace_seconds: float = 0.0

    @property
    def submit_total(self) -> float:
        return sum(s.seconds for s in self.submissions)


@dataclass
class DagsterCost:
    results: list[StorageCost] = field(default_factory=list)
    postgres_note: str = ""
    requests: int = 0
    documents: int = 0


@contextmanager
def _postgres() -> Iterator[str | None]:
    """A throwaway PostgreSQL cluster (the tests' helper); None when none can start."""
    try:
        from rag_ingest.testing.ports import free_port
        from rag_ingest.testing.postgres import PostgresUnavailable, local_cluster, scratch_database
    except ImportError:
        yield None
        return
    with ExitStack() as stack:
        try:
            server = stack.enter_context(local_cluster(free_port()))
            db = stack.enter_context(scratch_database(server, own=True))
        except (PostgresUnavailable, RuntimeError) as exc:
            logging.getLogger(__name__).warning("no PostgreSQL: %s", exc)
            yield None
            return
        yield db.url


def _home(root: Path, storage: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    text = QUEUED_YAML + (POSTGRES_YAML if storage == "postgres" else "")
    (root / "dagster.yaml").write_text(text)
    return root


def _wipe_postgres(url: str) -> None:
    """Empty Dagster's tables between configurations (one scratch database for all)."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            names = [
                r[0]
                for r in conn.execute(
                    sa.text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
                )
            ]
            if names:
                conn.execute(sa.text(f"DROP TABLE {', '.join(names)} CASCADE"))
    finally:
        engine.dispose()


def _requests(saved: list[dict[str, Any]]) -> list[Any]:
    import dagster as dg

    return [
        dg.RunRequest(run_key=r["run_key"], job_name="ingest_documents", tags=r["tags"])
        for r in saved
    ]


def _shards(tags: dict[str, str], layout: Any) -> int:
    from rag_ingest.defs.ingestion.sensors import RANGE_END_TAG, RANGE_START_TAG

    return layout.index(tags[RANGE_END_TAG]) - layout.index(tags[RANGE_START_TAG]) + 1


def _daemon_path(
    home: Path,
    cost: StorageCost,
    requests: list[Any],
    full: Any,
    launch_sample: int,
    layout: Any,
    say: Callable[[str], None],
) -> None:
    """Create + submit every request as the sensor daemon does; launch a few."""
    import dagster as dg
    from dagster._core.test_utils import create_test_daemon_workspace_context
    from dagster._core.utils import make_new_run_id
    from dagster._core.workspace.load_target import ModuleTarget
    from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import (
        QueuedRunCoordinatorDaemon,
    )
    from dagster._daemon.sensor import _submit_run_request

    logger = logging.getLogger("bench.daemon")
    logger.setLevel(logging.WARNING)
    instance = dg.DagsterInstance.from_config(str(home))
    target = ModuleTarget("rag_ingest.definitions", "defs", str(REPO), "rag_ingest")
    try:
        with Stopwatch() as loading:
            stack = ExitStack()
            context = stack.enter_context(create_test_daemon_workspace_context(target, instance))
            location = next(iter(context.create_request_context().code_locations))
            repo = next(iter(location.get_repositories().values()))
            sensor = repo.get_sensor(SENSOR)
        cost.workspace_seconds = loading.seconds
        submit_seconds: list[float] = []
        real_submit = instance.submit_run

        def timed_submit(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return real_submit(*args, **kwargs)
            finally:
                submit_seconds.append(time.perf_counter() - started)

        instance.submit_run = timed_submit  # type: ignore[method-assign]

        def submit(request: Any) -> tuple[Submission, str]:
            run_id = make_new_run_id()
            with Stopwatch() as sw:
                out = _submit_run_request(run_id, request, context, sensor, {}, logger, None)
            if out.error_info is not None:
                raise RuntimeError(out.error_info.to_string())
            return Submission(_shards(request.tags, layout), sw.seconds, submit_seconds[-1]), run_id

        with stack:
            for i, request in enumerate(requests):
                sub, _ = submit(request)
                cost.submissions.append(sub)
                if i % 10 == 0:
                    say(
                        f"dagster-cost ({cost.storage}, subset={cost.subset}): run {i + 1}/"
                        f"{len(requests)} created + submitted in {sub.seconds:.2f}s"
                    )
            if full is not None:
                cost.full_run, _ = submit(full)
                say(
                    f"dagster-cost ({cost.storage}, subset={cost.subset}): full run over "
                    f"{cost.full_run.shards} shards created + submitted in "
                    f"{cost.full_run.seconds:.1f}s"
                )
            # The queue now holds every run: cancel them, then launch a sample one at a time.
            for run in instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED])):
                instance.report_run_canceled(run)
            daemon = QueuedRunCoordinatorDaemon(interval_seconds=1)
            for request in requests[:launch_sample]:
                sub, run_id = submit(request)
                queued_at = time.perf_counter()
                with Stopwatch() as launching:
                    list(daemon.run_iteration(context))
                cost.launches.append(
                    _follow(instance, run_id, sub.shards, launching.seconds, queued_at)
                )
                say(f"dagster-cost: launched run over {sub.shards} shards: {cost.launches[-1]}")
            daemon.__exit__(None, None, None)
    finally:
        instance.dispose()


def _follow(
    instance: Any, run_id: str, shards: int, launch: float, queued_at: float, timeout: float = 900
) -> Launch:
    import dagster as dg

    started_at = ended_at = None
    status = "?"
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        run = instance.get_run_by_id(run_id)
        status = run.status.value if run else "?"
        now = time.perf_counter()
        if (
            started_at is None
            and run
            and run.status
            in (
                dg.DagsterRunStatus.STARTED,
                dg.DagsterRunStatus.SUCCESS,
                dg.DagsterRunStatus.FAILURE,
            )
        ):
            started_at = now
        if run and run.is_finished:
            ended_at = now
            break
        time.sleep(0.1)
    return Launch(
        shards,
        launch,
        (started_at or float("nan")) - queued_at,
        (ended_at or float("nan")) - queued_at,
        status,
    )


def _floors(
    home: Path,
    cost: StorageCost,
    workdir: Path,
    endpoint: str,
    bucket: str,
    spans: tuple[int, ...] = (1, 16, 256),
    shards: int = 256,
) -> None:
    """In-process runs over N shards of an empty corpus; Dagster = wall − asset bodies."""
    import dagster as dg

    from rag_ingest.defs.ingestion.sensors import RANGE_END_TAG, RANGE_START_TAG
    from rag_ingest.testing.harness import make_resources, make_settings

    from .gpu_speed import Pipeline, Timers
    from .hashing_embedder import HashingEmbedder

    layouts = [(shards, tuple(n for n in spans if n <= shards))]
    if shards != 16:
        layouts.append((16, (16,)))  # the whole of a small layout, for comparison
    for layout_count, counts in layouts:
        data = Path(tempfile.mkdtemp(dir=workdir, prefix=f"floor-{layout_count}-"))
        settings = make_settings(bucket, data, shards=layout_count)
        resources = make_resources(endpoint, settings, embedder=HashingEmbedder())
        pipeline = Pipeline(home, settings, resources)
        try:
            keys = settings.shard_layout.keys()
            for n in counts:
                tags = {RANGE_START_TAG: keys[0], RANGE_END_TAG: keys[n - 1]}
                request = dg.RunRequest(run_key=None, job_name="ingest_documents", tags=tags)
                timing = pipeline.execute(request, Timers())
                cost.floors.append(Floor(layout_count, n, timing.wall, timing.bodies))
        finally:
            pipeline.close()


def run_dagster_cost(
    saved_requests: list[dict[str, Any]],
    gpu_data_dir: Path,
    endpoint: str,
    bucket: str,
    workdir: Path,
    launch_sample: int = 3,
    postgres: bool = True,
    say: Callable[[str], None] = print,
    floor_shards: tuple[int, ...] = (1, 16, 256),
    full_run: bool = True,
    shards: int = 256,
) -> DagsterCost:
    """Every measurement of the module on SQLite, then PostgreSQL when available."""
    from rag_ingest.core.planning.shards import Shards

    layout = Shards(shards)
    requests = _requests(saved_requests)
    keys = layout.keys()
    import dagster as dg

    full = dg.RunRequest(
        run_key="bench-full-reconcile",
        job_name="ingest_documents",
        tags={
            "dagster/asset_partition_range_start": keys[0],
            "dagster/asset_partition_range_end": keys[-1],
        },
    )
    result = DagsterCost(requests=len(requests))
    result.documents = sum(int(r["tags"].get("rag_ingest/documents", 0)) for r in saved_requests)
    # The code server reads its settings from the environment, as a deployment's does; its runs
    # reconcile the GPU-speed scenario's data (all ingested: no work, verification only).
    code_env = {
        "RAG_S3_BUCKET": bucket,
        "RAG_S3_ENDPOINT_URL": endpoint,
        "RAG_DATA_DIR": str(gpu_data_dir),
        "RAG_SHARDS": str(shards),
        "RAG_EXTRACT_WORKERS": "2",
        "RAG_FULL_RECONCILE_HOURS": "0",
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p),
    }
    with ExitStack() as stack:
        pg_url = stack.enter_context(_postgres()) if postgres else None
        if postgres and pg_url is None:
            result.postgres_note = "PostgreSQL binaries not found or the cluster did not start"
        storages = ["sqlite"] + (["postgres"] if pg_url else [])
        for storage in storages:
            for subset in (False, True):
                cost = StorageCost(storage, subset)
                result.results.append(cost)
                home = _home(workdir / f"home-{storage}-{int(subset)}", storage)
                if pg_url:
                    _wipe_postgres(pg_url)
                env = {**code_env, SUBSET_ENV: "true" if subset else None}
                if storage == "postgres":
                    env["BENCH_DAGSTER_PG_URL"] = pg_url
                with env_vars(**env):
                    _daemon_path(
                        home, cost, requests, full if full_run else None, launch_sample, layout, say
                    )
                    _floors(home, cost, workdir, endpoint, bucket, floor_shards, shards)
                say(
                    f"dagster-cost ({storage}, subset={subset}): floors "
                    + ", ".join(f"{f.shards}/{f.layout}: {f.dagster:.1f}s" for f in cost.floors)
                )
    return result
