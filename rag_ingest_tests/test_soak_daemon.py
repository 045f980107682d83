"""A soak of the real daemon and run launcher: sensor ticks, concurrent run workers, the
project's locks (``defs/locks.py``), run retries and run monitoring, over a seeded walk of adds,
modifies (two writes in one LastModified second too), deletes, delete → re-create → delete,
failed runs, killed runs and an emptied collection. After quiescence the vector store equals S3
exactly.

A second scenario runs many short runs three at a time, in waves: every run must end within a
bound and no step may be left waiting. Dagster 1.13.27's op-level pools lost a slot that way
under ``make dev`` (a step pending beside a free slot, its run ``STARTED`` for good), which the
walk above, two runs at a time, never showed.

``RAG_SOAK_DAEMON_STEPS`` lengthens the walk; ``RAG_SOAK_SEED`` changes it;
``RAG_SOAK_SHORT_WAVES`` repeats the short runs more often.
"""

import contextlib
import os
import random
import re
import signal
import time
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from rag_ingest.cli.dev import DAGSTER_ENV
from rag_ingest.core.config import Settings
from rag_ingest.core.keys import document_id
from rag_ingest.core.registry import Registry, default_url
from rag_ingest.core.vectorstore import open_vector_store
from rag_ingest.defs.ingestion.sensors import ACTIVE_RUN_STATUSES, FULL_RECONCILE_COUNTER
from rag_ingest.testing import REPO
from rag_ingest.testing.daemon import start_daemon, stop_daemon
from rag_ingest_tests.soak_location import FAULT_FLAG_ENV
from rag_ingest_tests.sync_oracle import expected_versions, text

INSTANCE = """\
telemetry:
  enabled: false
concurrency:
  runs:
    max_concurrent_runs: {max_runs}
run_retries:
  enabled: true
  max_retries: 1
run_monitoring:
  enabled: true
  start_timeout_seconds: 120
  poll_interval_seconds: 5
"""
WORKSPACE = """\
load_from:
  - python_module:
      module_name: rag_ingest_tests.soak_location
      location_name: soak
"""


def _stored(settings: Settings) -> set[tuple[str, str, int]]:
    """(doc_id, etag, chunk_index) of every point readers see (waits for the store's lock)."""
    with open_vector_store("edge", path=settings.qdrant_path, lock_wait_seconds=300) as store:
        live = store.resolve(settings.collection)
        if live is None:
            return set()
        return {
            (
                p.payload["metadata"]["doc_id"],
                p.payload["metadata"]["etag"],
                p.payload["metadata"]["chunk_index"],
            )
            for p in store.scroll(live)
        }


def _worker_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    """The pid of a run's worker, from the engine event it logs when steps start."""
    for entry in instance.all_logs(run_id):
        match = re.search(r"Executing steps in process \(pid: (\d+)\)", entry.message or "")
        if match:
            return int(match.group(1))
    return None


class Soak:
    def __init__(self, client: Any, bucket: str, home: Path, settings: Settings, flag: Path):
        self.client, self.bucket, self.home = client, bucket, home
        self.settings, self.flag = settings, flag
        self.killed = 0

    def instance(self) -> dg.DagsterInstance:
        return dg.DagsterInstance.from_config(str(self.home))

    def active_runs(self) -> list[dg.DagsterRun]:
        with self.instance() as instance:
            return list(instance.get_runs(dg.RunsFilter(statuses=ACTIVE_RUN_STATUSES)))

    def kill_a_run(self, within: float = 120.0) -> bool:
        """SIGKILL the worker of the first run seen executing its steps."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            with self.instance() as instance:
                started = instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
                pids = [_worker_pid(instance, run.run_id) for run in started]
            for pid in pids:
                if pid is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                        self.killed += 1
                        return True
            time.sleep(0.5)
        return False

    def full_reconcile_due(self) -> None:
        """What a day of time does: the next tick reconciles (and verifies) every shard."""
        registry = Registry(default_url(self.settings.data_dir))
        try:
            registry.set_counter(FULL_RECONCILE_COUNTER, 1)
        finally:
            registry.close()

    def work_left(self) -> int:
        registry = Registry(default_url(self.settings.data_dir))
        try:
            location = f"edge:{self.settings.qdrant_path}"
            target = registry.target(location, self.settings.physical_collection)
            return registry.work_count(self.settings.scope, target.id if target else None)
        finally:
            registry.close()

    def quiescent(self, timeout: float) -> set[tuple[str, str, int]]:
        """Wait until the registry has no work left and the store equals S3, twice in a row.

        Periodic full reconciles keep verify-only runs coming, so "no run active" is not the
        criterion: the data being at rest is.
        """
        expected = expected_versions(self.client, self.bucket)
        deadline = time.monotonic() + timeout
        stable = 0
        stored: set[tuple[str, str, int]] = set()
        while time.monotonic() < deadline:
            time.sleep(3)
            if self.work_left():
                stable = 0
                continue
            stored = _stored(self.settings)
            stable = stable + 1 if stored == expected else 0
            if stable >= 2:
                return stored
        missing, extra = expected - stored, stored - expected
        registry = Registry(default_url(self.settings.data_dir))
        states = {
            (r.key, r.status, r.target_id)
            for r in registry.lookup({doc for doc, _, _ in missing}).values()
        }
        registry.close()
        raise AssertionError(
            f"not converged after {timeout}s: {len(missing)} missing, {len(extra)} extra; "
            f"work left {self.work_left()}, active runs {len(self.active_runs())}; missing "
            f"documents in the registry: {sorted(states)[:10]}"
        )


@pytest.mark.slow
@pytest.mark.timeout(3000)
def test_the_daemon_converges_over_a_seeded_walk_with_faults(
    s3_endpoint: str, s3_client: Any, bucket: str, tmp_path: Path
) -> None:
    steps = int(os.environ.get("RAG_SOAK_DAEMON_STEPS", "6"))
    rng = random.Random(int(os.environ.get("RAG_SOAK_SEED", "20261130")))
    home, data = tmp_path / "home", tmp_path / "data"
    home.mkdir()
    (home / "dagster.yaml").write_text(INSTANCE.format(max_runs=2))
    (tmp_path / "workspace.yaml").write_text(WORKSPACE)
    flag = tmp_path / "embedder-outage"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(
        DAGSTER_HOME=str(home),
        **DAGSTER_ENV,  # as deployed (deployment.md)
        PYTHONPATH=str(REPO),
        RAG_S3_BUCKET=bucket,
        RAG_S3_ENDPOINT_URL=s3_endpoint,
        RAG_DATA_DIR=str(data),
        RAG_SHARDS="16",
        RAG_DOCUMENTS_PER_RUN="10",
        RAG_SENSOR_INTERVAL_SECONDS="2",
        RAG_EXTRACT_WORKERS="1",
        **{FAULT_FLAG_ENV: str(flag)},
    )
    settings = Settings.from_env(env)
    soak = Soak(s3_client, bucket, home, settings, flag)
    log = (tmp_path / "daemon.log").open("w")
    daemon = start_daemon(tmp_path, env, log)
    live: set[str] = set()
    gone: set[str] = set()

    def put(key: str, paragraphs: int = 2) -> None:
        s3_client.put_object(Bucket=bucket, Key=key, Body=text(rng, paragraphs).encode())
        live.add(key)
        gone.discard(key)

    def delete(key: str) -> None:
        s3_client.delete_object(Bucket=bucket, Key=key)
        live.discard(key)
        gone.add(key)

    try:
        for i in range(8):
            put(f"soak/base-{i}.md")
        soak.quiescent(timeout=420)
        for step in range(steps):
            event = ["faults", "kill", "burst", "same-second", "flip", "empty"][step % 6]
            for _ in range(rng.randint(2, 4)):
                op = rng.choice(["add", "modify", "delete"]) if live else "add"
                if op == "add":
                    put(f"soak/{step}-{rng.randint(0, 999)}.md")
                elif op == "modify":
                    put(rng.choice(sorted(live)), rng.randint(1, 4))
                else:
                    delete(rng.choice(sorted(live)))
            if event == "faults":  # runs fail (and their retries) until the outage ends
                flag.touch()
                time.sleep(15)
                flag.unlink()
            elif event == "kill":
                assert soak.kill_a_run(), "no run was started to kill"
            elif event == "burst":
                for j in range(10):
                    put(f"soak/burst-{step}-{j}.md")
            elif event == "same-second":  # two versions inside one LastModified second
                key = rng.choice(sorted(live))
                put(key, 3)
                put(key, 1)
            elif event == "flip":  # delete → re-create → delete
                key = rng.choice(sorted(live))
                delete(key)
                time.sleep(3)
                put(key)
                time.sleep(3)
                delete(key)
            else:  # the collection is emptied behind the pipeline's back
                soak.quiescent(timeout=420)
                with open_vector_store(
                    "edge", path=settings.qdrant_path, lock_wait_seconds=300
                ) as store:
                    live_collection = store.resolve(settings.collection)
                    assert live_collection is not None
                    store.delete_documents(
                        live_collection, list(store.points_per_document(live_collection))
                    )
                # Nothing in S3 changed; the daily full reconcile notices and repairs it.
                soak.full_reconcile_due()
            print(f"step {step}: {event}", flush=True)
            stored = soak.quiescent(timeout=600)
            assert stored == expected_versions(s3_client, bucket), f"step {step} ({event})"
        with soak.instance() as instance:
            runs = instance.get_runs()
            statuses = [r.status for r in runs]
        assert dg.DagsterRunStatus.FAILURE in statuses  # the faults really happened
        assert soak.killed >= 1 or steps < 2
        assert len(runs) >= 8
    finally:
        if flag.exists():
            flag.unlink()
        stop_daemon(daemon, home)
        log.close()


# Runs per wave; two waves by default: 12 short runs, three at a time.
SHORT_RUNS = 6
# Generous: a short run takes seconds once its worker has loaded torch; three start at once on
# two cores. A step left waiting for a lost pool slot never ends at all.
RUN_BOUND_SECONDS = 240.0


def _keys_in_distinct_shards(bucket: str, settings: Settings, n: int, tag: str) -> list[str]:
    """``n`` keys, each in a shard of its own: with one document per run, ``n`` runs."""
    layout, keys, shards = settings.shard_layout, [], set()
    i = 0
    while len(keys) < n:
        key = f"short/{tag}-{i}.md"
        shard = layout.of(document_id(bucket, key))
        if shard not in shards:
            shards.add(shard)
            keys.append(key)
        i += 1
    return keys


def _waiting_steps(instance: dg.DagsterInstance) -> dict[str, str]:
    """Concurrency keys (pools) with a step pending or a slot claimed: none must be left."""
    storage = instance.event_log_storage
    left = {}
    for key in storage.get_concurrency_keys():
        info = storage.get_concurrency_info(key)
        if info.pending_step_count or info.active_slot_count:
            left[key] = (
                f"slots {info.slot_count}, active {info.active_slot_count}, pending "
                f"{info.pending_step_count}, assigned {info.assigned_step_count}"
            )
    return left


def _overlap(runs: list[tuple[float, float]]) -> int:
    """The most runs executing at one moment."""
    edges = sorted([(start, 1) for start, _ in runs] + [(end, -1) for _, end in runs])
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_many_short_concurrent_runs_each_end_and_leave_no_step_waiting(
    s3_endpoint: str, s3_client: Any, bucket: str, tmp_path: Path
) -> None:
    waves = int(os.environ.get("RAG_SOAK_SHORT_WAVES", "2"))
    rng = random.Random(int(os.environ.get("RAG_SOAK_SEED", "20261130")))
    home, data = tmp_path / "home", tmp_path / "data"
    home.mkdir()
    (home / "dagster.yaml").write_text(INSTANCE.format(max_runs=3))
    (tmp_path / "workspace.yaml").write_text(WORKSPACE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(
        DAGSTER_HOME=str(home),
        **DAGSTER_ENV,
        PYTHONPATH=str(REPO),
        RAG_S3_BUCKET=bucket,
        RAG_S3_ENDPOINT_URL=s3_endpoint,
        RAG_DATA_DIR=str(data),
        RAG_SHARDS="16",
        RAG_DOCUMENTS_PER_RUN="1",  # a shard per run: one short run per document
        RAG_SENSOR_INTERVAL_SECONDS="2",
        RAG_EXTRACT_WORKERS="1",
        **{FAULT_FLAG_ENV: str(tmp_path / "no-outage")},
    )
    settings = Settings.from_env(env)
    soak = Soak(s3_client, bucket, home, settings, tmp_path / "no-outage")
    keys = _keys_in_distinct_shards(bucket, settings, SHORT_RUNS, "doc")
    with soak.instance():  # the instance's tables exist before the daemon and we both open it
        pass
    log = (tmp_path / "daemon.log").open("w")
    daemon = start_daemon(tmp_path, env, log)
    try:
        for wave in range(waves):
            for key in keys:  # new documents, then a new version of each
                s3_client.put_object(Bucket=bucket, Key=key, Body=text(rng, 1).encode())
            expected = expected_versions(s3_client, bucket)
            deadline = time.monotonic() + RUN_BOUND_SECONDS + 60 * SHORT_RUNS
            while soak.work_left() or soak.active_runs() or _stored(settings) != expected:
                with soak.instance() as instance:
                    now = time.time()
                    records = instance.get_run_records(
                        dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])
                    )
                    late = {
                        r.dagster_run.run_id: round(now - r.start_time)
                        for r in records
                        if r.start_time and now - r.start_time > RUN_BOUND_SECONDS
                    }
                    assert not late, f"wave {wave}: runs past {RUN_BOUND_SECONDS}s: {late}; " + (
                        f"pools: {_waiting_steps(instance)}"
                    )
                assert time.monotonic() < deadline, (
                    f"wave {wave}: not done; work {soak.work_left()}"
                )
                time.sleep(2)
            print(f"wave {wave}: done", flush=True)
        with soak.instance() as instance:
            records = instance.get_run_records(dg.RunsFilter(job_name="ingest_documents"))
            assert len(records) >= SHORT_RUNS * waves
            statuses = {r.dagster_run.status for r in records}
            assert statuses == {dg.DagsterRunStatus.SUCCESS}, statuses
            spans = [(r.start_time or 0.0, r.end_time or 0.0) for r in records]
            durations = sorted(end - start for start, end in spans)
            assert durations[-1] <= RUN_BOUND_SECONDS, durations
            assert _overlap(spans) >= 2  # runs really ran side by side, under the locks
            assert _waiting_steps(instance) == {}
            waits = [
                float(m.asset_materialization.metadata["run_lock_wait_seconds"].value)  # type: ignore[union-attr, arg-type]
                for m in instance.fetch_materializations(
                    dg.AssetKey("qdrant_collection"), 1000
                ).records
                if m.asset_materialization is not None
            ]
        print(
            f"{len(records)} runs, longest {durations[-1]:.1f}s, median "
            f"{durations[len(durations) // 2]:.1f}s, most at once {_overlap(spans)}, longest "
            f"qdrant lock wait {max(waits, default=0.0):.1f}s",
            flush=True,
        )
    finally:
        stop_daemon(daemon, home)
        log.close()
