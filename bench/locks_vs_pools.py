"""What the project's locks cost against Dagster's op-level pools (issue 18 item 0).

Two runs of the real daemon and run launcher, started together, each over one shard of
``--docs`` small Markdown documents, with the local CPU embedder. ``--code`` is the project
tree the daemon's run workers import: this tree (locks, no pools in the instance) or an export
of a commit that still declared ``pool="embedder"``/``pool="qdrant"`` (``--pools`` writes
``pools: default_limit: 1`` into the instance, as both dagster.yaml files did). Wall time is
from the first run's start to the last run's end, as Dagster records them.

    git archive de78e37 rag_ingest pyproject.toml | tar -x -C /tmp/pools-code
    python -m bench.locks_vs_pools --code /tmp/pools-code --pools --label pools
    python -m bench.locks_vs_pools --label locks

Prints one Markdown table row per repeat.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path

import dagster as dg

from rag_ingest.core.config import Settings
from rag_ingest.core.keys import document_id
from rag_ingest.core.storage.s3 import make_client
from rag_ingest.testing import REPO
from rag_ingest.testing.daemon import start_daemon, stop_daemon
from rag_ingest.testing.s3 import moto_server

INSTANCE = """\
telemetry:
  enabled: false
concurrency:
  runs:
    max_concurrent_runs: 2
{pools}run_monitoring:
  enabled: true
  start_timeout_seconds: 300
  poll_interval_seconds: 5
"""
POOLS = "  pools:\n    granularity: op\n    default_limit: 1\n"
WORKSPACE = """\
load_from:
  - python_module:
      module_name: rag_ingest.definitions
      location_name: bench
"""
WORDS = ["shard", "key", "space", "run", "lock", "pool", "slot", "daemon", "worker"]


def _two_shard_keys(bucket: str, settings: Settings, docs: int) -> list[str]:
    """``docs`` keys in each of two shards far apart (not bridged into one run)."""
    layout = settings.shard_layout
    wanted = {layout.key(2): [], layout.key(12): []}
    i = 0
    while any(len(v) < docs for v in wanted.values()):
        key = f"bench/{i}.md"
        shard = layout.of(document_id(bucket, key))
        if shard in wanted and len(wanted[shard]) < docs:
            wanted[shard].append(key)
        i += 1
    return [k for keys in wanted.values() for k in keys]


def _between_steps(instance: dg.DagsterInstance, run_id: str) -> float:
    """Seconds a run spent between one step's success and the next step's start: where a
    step blocked on a pool slot waits (a lock is waited for inside the step)."""
    starts: list[float] = []
    successes: list[float] = []
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is not None and event.event_type_value == "STEP_START":
            starts.append(entry.timestamp)
        elif event is not None and event.event_type_value == "STEP_SUCCESS":
            successes.append(entry.timestamp)
    starts.sort()
    successes.sort()
    return sum(max(0.0, b - a) for a, b in zip(successes, starts[1:], strict=False))


def once(
    code: Path, pools: bool, docs: int, paragraphs: int, deadline_s: float = 900.0
) -> dict[str, float]:
    rng = random.Random(docs)
    with moto_server() as endpoint, tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        home = root / "home"
        home.mkdir()
        (home / "dagster.yaml").write_text(INSTANCE.format(pools=POOLS if pools else ""))
        (root / "workspace.yaml").write_text(WORKSPACE)
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")  # moto takes any
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
        client = make_client(endpoint, "us-east-1", max_attempts=2)
        bucket = "bench"
        client.create_bucket(Bucket=bucket)
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
        env.update(
            DAGSTER_HOME=str(home),
            DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS="true",
            PYTHONPATH=str(code),
            AWS_ACCESS_KEY_ID="bench",
            AWS_SECRET_ACCESS_KEY="bench",
            RAG_S3_BUCKET=bucket,
            RAG_S3_ENDPOINT_URL=endpoint,
            RAG_DATA_DIR=str(root / "data"),
            RAG_SHARDS="16",
            RAG_DOCUMENTS_PER_RUN=str(docs),
            RAG_SENSOR_INTERVAL_SECONDS="2",
            RAG_EXTRACT_WORKERS="1",
        )
        settings = Settings.from_env(env)
        for key in _two_shard_keys(bucket, settings, docs):
            body = "\n\n".join(
                " ".join(rng.choice(WORDS) for _ in range(120)) + "." for _ in range(paragraphs)
            )
            client.put_object(Bucket=bucket, Key=key, Body=f"# {key}\n\n{body}".encode())
        with dg.DagsterInstance.from_config(str(home)):  # tables exist before the daemon
            pass
        log = (root / "daemon.log").open("w")
        daemon = start_daemon(root, env, log)
        try:
            deadline = time.monotonic() + deadline_s
            while time.monotonic() < deadline:
                time.sleep(2)
                with dg.DagsterInstance.from_config(str(home)) as instance:
                    records = instance.get_run_records(dg.RunsFilter(job_name="ingest_documents"))
                    if len(records) >= 2 and all(r.dagster_run.is_finished for r in records):
                        assert all(r.dagster_run.is_success for r in records), "a run failed"
                        starts = [r.start_time or 0.0 for r in records]
                        ends = [r.end_time or 0.0 for r in records]
                        return {
                            "wall": max(ends) - min(starts),
                            "longest": max(e - s for s, e in zip(starts, ends, strict=True)),
                            "between_steps": max(
                                _between_steps(instance, r.dagster_run.run_id) for r in records
                            ),
                        }
            with dg.DagsterInstance.from_config(str(home)) as instance:
                runs = instance.get_runs(dg.RunsFilter(job_name="ingest_documents"))
                storage = instance.event_log_storage
                pool_info = {
                    key: (
                        f"slots {i.slot_count}, active {i.active_slot_count}, pending "
                        f"{i.pending_step_count}, assigned {i.assigned_step_count}"
                    )
                    for key in storage.get_concurrency_keys()
                    for i in [storage.get_concurrency_info(key)]
                }
            raise TimeoutError(
                f"the two runs did not finish in {deadline_s:.0f} s: runs "
                f"{[r.status.value for r in runs]}, pools {pool_info}; daemon log ends: "
                + (root / "daemon.log").read_text()[-3000:]
            )
        finally:
            stop_daemon(daemon, home)
            log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="locks vs pools: two concurrent runs")
    parser.add_argument("--code", type=Path, default=REPO)
    parser.add_argument("--pools", action="store_true")
    parser.add_argument("--docs", type=int, default=20, help="documents per run")
    parser.add_argument("--paragraphs", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--label", default="")
    parser.add_argument("--deadline", type=float, default=900.0, help="seconds per repeat")
    args = parser.parse_args()
    for i in range(args.repeat):
        result = once(args.code, args.pools, args.docs, args.paragraphs, args.deadline)
        print(
            f"| {args.label} | {i + 1} | {args.docs} | {result['wall']:.1f} | "
            f"{result['longest']:.1f} | {result['between_steps']:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
