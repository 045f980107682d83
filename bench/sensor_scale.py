"""The sensor at scale: N keys in S3, one tick's wall time and peak RSS, partitions and runs.

Ticks run in a child process (``python -m bench.sensor_scale tick ...``) so that their peak RSS
(``VmHWM``) is theirs alone, not the harness's with its model and corpus. The child reports its
memory before the tick too: imports (Dagster, boto3, the project) are a fixed floor.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .common import REGION, REPO, Stopwatch, env_vars, proc_status_mb

PREFIX = "scale/"
# Submitted runs wait in the queue; nothing executes them. This is what the daemon's sensor
# loop does with a RunRequest before the run coordinator dequeues it.
INSTANCE_YAML = """\
run_coordinator:
  module: dagster._core.run_coordinator
  class: QueuedRunCoordinator
telemetry:
  enabled: false
"""


@dataclass
class TickMeasure:
    seconds: float
    rss_before_mb: float
    peak_rss_mb: float
    listed: int
    cursor: str | None = None
    runs: list[dict[str, Any]] = field(default_factory=list)
    # "memory" mode only: the first tick's seconds (``seconds`` is then the steady tick's).
    first_seconds: float = 0.0


@dataclass
class ScaleMeasure:
    keys: int
    setup_seconds: float
    setup_method: str
    list_only: TickMeasure
    first_tick: TickMeasure
    steady_tick: TickMeasure
    register_seconds: float
    workspace_seconds: float
    submit_seconds: float
    submitted_runs: int
    requested_runs: int
    # The same number of further runs created with one planned event per asset (see
    # ``dagster_floor.SUBSET_PLANNED_ENV``).
    subset_submit_seconds: float = 0.0
    # Both ticks again on a fresh registry and instance, the listing served from memory: the
    # sensor's own work without moto's listing cost.
    memory: TickMeasure | None = None

    def submit_all_seconds(self, subset_planned: bool = False) -> float:
        """Extrapolated from the submitted sample to every requested run."""
        if not self.submitted_runs:
            return 0.0
        seconds = self.subset_submit_seconds if subset_planned else self.submit_seconds
        return seconds / self.submitted_runs * self.requested_runs


def populate(client: Any, bucket: str, n: int) -> str:
    """Put ``n`` empty objects; straight into moto's in-process backend when it is there."""
    keys = [f"{PREFIX}{i:07d}.txt" for i in range(n)]
    try:
        from moto.core.models import DEFAULT_ACCOUNT_ID
        from moto.s3.models import s3_backends

        backend = s3_backends[DEFAULT_ACCOUNT_ID]["global"]
        backend.get_bucket(bucket)  # raises if this server's state lives elsewhere
        for key in keys:
            backend.put_object(bucket, key, b"")
        return "moto backend, in process"
    except Exception:  # a moto server in another process: go through HTTP
        with ThreadPoolExecutor(max_workers=32) as pool:
            list(pool.map(lambda k: client.put_object(Bucket=bucket, Key=k, Body=b""), keys))
        return "put_object over HTTP, 32 threads"


def _child(mode: str, home: Path, endpoint: str, bucket: str, cursor: str | None) -> TickMeasure:
    cmd = [sys.executable, "-m", "bench.sensor_scale", mode, "--home", str(home)]
    cmd += ["--endpoint", endpoint, "--bucket", bucket, "--cursor", cursor or ""]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"sensor child {mode} failed:\n{done.stderr[-3000:]}")
    return TickMeasure(**json.loads(done.stdout.strip().splitlines()[-1]))


def run_scale(
    client: Any, endpoint: str, n: int, workdir: Path, max_submit: int = 5
) -> ScaleMeasure:
    """``max_submit``: runs actually created and submitted. Each one logs a planned event per
    asset and partition (~800 for 200 partitions), seconds apiece on SQLite, so the rest are
    extrapolated from this sample."""
    import dagster as dg
    from rag_ingest.partitions import DOCUMENTS_PARTITION

    bucket = "bench-sensor-scale"
    client.create_bucket(Bucket=bucket)
    with Stopwatch() as setup:
        method = populate(client, bucket, n)
    home = workdir / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(INSTANCE_YAML)
    list_only = _child("list", home, endpoint, bucket, None)
    first = _child("tick", home, endpoint, bucket, None)
    steady = _child("tick", home, endpoint, bucket, first.cursor)
    memory_home = workdir / "memory" / "dagster_home"
    memory_home.mkdir(parents=True, exist_ok=True)
    (memory_home / "dagster.yaml").write_text(INSTANCE_YAML)
    memory = _child("memory", memory_home, endpoint, bucket, None)

    (workdir / "fresh_home").mkdir(exist_ok=True)
    with dg.instance_for_test(temp_dir=str(workdir / "fresh_home")) as fresh:
        keys = [f"doc-{i:07d}~{i:016x}" for i in range(n)]
        with Stopwatch() as register:
            fresh.add_dynamic_partitions(DOCUMENTS_PARTITION, keys)
    instance = dg.DagsterInstance.from_config(str(home))
    sample = first.runs[:max_submit]
    subset_sample = first.runs[max_submit : 2 * max_submit]
    # The code location resolves its resources' EnvVars when planning a run, as a deployment
    # would with these set.
    try:
        with env_vars(RAG_S3_BUCKET=bucket, RAG_S3_ENDPOINT_URL=endpoint):
            workspace_seconds, seconds = submit_runs(instance, [sample, subset_sample])
    finally:
        instance.dispose()
    return ScaleMeasure(
        n, setup.seconds, method, list_only, first, steady, register.seconds, workspace_seconds,
        seconds[0], len(sample), len(first.runs),
        seconds[1] if len(subset_sample) == len(sample) else 0.0, memory,
    )  # fmt: skip


def submit_runs(instance: Any, samples: list[list[dict[str, Any]]]) -> tuple[float, list[float]]:
    """Create and submit (enqueue, not execute) one run per request, as the sensor daemon does
    (``dagster._daemon.sensor._create_sensor_run`` then ``instance.submit_run``); the second
    sample with one planned event per asset (``SUBSET_PLANNED_ENV``).

    Returns the seconds to load the code location (once per daemon process, so kept apart)
    and, per sample, the seconds to create and submit its runs.
    """
    from dagster._core.test_utils import in_process_test_workspace
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

    from .dagster_floor import SUBSET_PLANNED_ENV

    loading = time.perf_counter()
    origin = LoadableTargetOrigin(
        module_name="rag_ingest.definitions", attribute="defs", working_directory=str(REPO)
    )
    with in_process_test_workspace(instance, origin) as workspace:
        entry = next(iter(workspace.get_code_location_entries().values()))
        location = entry.code_location
        assert location is not None, entry.load_error
        repo = next(iter(location.get_repositories().values()))
        job = repo.get_full_job("ingest_documents")
        workspace_seconds = time.perf_counter() - loading
        seconds = []
        for i, sample in enumerate(samples):
            with env_vars(**{SUBSET_PLANNED_ENV: "true" if i else None}), Stopwatch() as sw:
                for request in sample:
                    plan = location.get_execution_plan(
                        job, {}, step_keys_to_execute=None, known_state=None, instance=instance
                    )
                    run = instance.create_run(
                        job_name=job.name,
                        run_id=None,
                        run_config={},
                        resolved_op_selection=job.resolved_op_selection,
                        step_keys_to_execute=None,
                        status=None,
                        op_selection=None,
                        root_run_id=None,
                        parent_run_id=None,
                        tags={**request["tags"], "dagster/run_key": request["run_key"]},
                        job_snapshot=job.job_snapshot,
                        execution_plan_snapshot=plan.execution_plan_snapshot,
                        parent_job_snapshot=job.parent_job_snapshot,
                        remote_job_origin=job.get_remote_origin(),
                        job_code_origin=job.get_python_origin(),
                        asset_selection=None,
                        asset_check_selection=None,
                        asset_graph=repo.asset_graph,
                    )
                    instance.submit_run(run.run_id, workspace)
            seconds.append(sw.seconds)
        return workspace_seconds, seconds


def _child_main(args: argparse.Namespace) -> None:
    """Runs in the child process: one listing or one sensor tick; prints a JSON line."""
    import dagster as dg
    from rag_ingest.sensors import evaluate_tick

    from rag_ingest.core.registry import Registry
    from rag_ingest.core.s3 import list_objects, make_client
    from rag_ingest.resources import S3Source

    before = proc_status_mb("VmRSS")
    result: dict[str, Any] = {"runs": []}
    if args.mode == "list":
        client = make_client(args.endpoint, REGION)
        started = time.perf_counter()
        listed = sum(1 for _ in list_objects(client, args.bucket, PREFIX))
        seconds = time.perf_counter() - started
    else:
        registry = Registry(f"sqlite:///{Path(args.home).parent / 'registry.sqlite'}")
        source = S3Source(bucket=args.bucket, endpoint_url=args.endpoint, region_name=REGION)
        instance = dg.DagsterInstance.from_config(args.home)
        cursor = args.cursor or None
        if args.mode == "memory":
            from rag_ingest import sensors

            listing = list(list_objects(source.client, args.bucket, PREFIX))
            sensors.list_objects = lambda *_args, **_kwargs: iter(listing)
            with dg.build_sensor_context(instance=instance) as context:
                started = time.perf_counter()
                cursor = evaluate_tick(context, source, registry, PREFIX, 10**9, 200).cursor
                result["first_seconds"] = time.perf_counter() - started
        with dg.build_sensor_context(instance=instance, cursor=cursor) as context:
            started = time.perf_counter()
            tick = evaluate_tick(context, source, registry, PREFIX, 10**9, 200)
            seconds = time.perf_counter() - started
        listed = len(registry.known(args.bucket, PREFIX))
        for request in tick.run_requests or []:
            assert isinstance(request, dg.RunRequest)
            result["runs"].append({"tags": dict(request.tags), "run_key": request.run_key})
        result["cursor"] = tick.cursor
    result |= {
        "seconds": seconds,
        "rss_before_mb": before,
        "peak_rss_mb": proc_status_mb("VmHWM"),
        "listed": listed,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["list", "tick", "memory"])
    parser.add_argument("--home", required=True)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--cursor", default="")
    _child_main(parser.parse_args())
