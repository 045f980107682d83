"""`make dev`: a local S3 with the sample corpus (unless one is configured), then `dagster dev`.

Everything it starts stops on Ctrl-C or SIGTERM: ``dagster dev`` runs in its own process group
(a backgrounded ``dagster dev`` ignores SIGTERM otherwise) and the whole group is signalled.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SAMPLE_BUCKET = "rag-ingest-sample"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_local_s3(corpus: Path) -> tuple[Any, str]:
    """moto's S3 server on 127.0.0.1 holding ``corpus`` in bucket ``rag-ingest-sample``."""
    import logging

    from moto.server import ThreadedMotoServer

    from rag_ingest.core.storage.s3 import make_client

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request

    port = int(os.environ.get("RAG_DEV_S3_PORT") or _free_port())
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    client = make_client(endpoint, "us-east-1")
    client.create_bucket(Bucket=SAMPLE_BUCKET)
    files = sorted(p for p in corpus.rglob("*") if p.is_file())
    for path in files:
        client.put_object(
            Bucket=SAMPLE_BUCKET, Key=path.relative_to(corpus).as_posix(), Body=path.read_bytes()
        )
    print(
        f"[dev] local S3 at {endpoint}: {len(files)} sample objects in s3://{SAMPLE_BUCKET}/",
        flush=True,
    )
    return server, endpoint


def _runs_in_flight(dagster_home: str) -> int:
    """Runs of the dev instance that are queued or not finished yet."""
    import dagster as dg

    instance = dg.DagsterInstance.from_config(dagster_home)
    try:
        return instance.get_runs_count(
            dg.RunsFilter(
                statuses=[
                    dg.DagsterRunStatus.QUEUED,
                    dg.DagsterRunStatus.NOT_STARTED,
                    dg.DagsterRunStatus.STARTING,
                    dg.DagsterRunStatus.STARTED,
                    dg.DagsterRunStatus.CANCELING,
                ]
            )
        )
    finally:
        instance.dispose()


def _watch(
    env: dict[str, str], expected: int | None, done: threading.Event, stop: threading.Event
) -> None:
    """Print registry progress; set ``done`` once ``expected`` documents are registered, none
    has work left in the collection the pipeline writes now, and no run is still going.

    A document counts as done only in the target (Qdrant location + collection) it was
    ingested into, so a registry left by an earlier setup (another engine or fingerprint)
    is not mistaken for a finished ingestion. Runs record their documents' outcomes before
    they verify, promote and report their shards: stopping then would interrupt the last run.
    """
    from rag_ingest.core.config import Settings
    from rag_ingest.core.registry import GONE_STATUSES, Registry, default_url
    from rag_ingest.resources import VectorStoreResource

    settings = Settings.from_env(env)
    location = VectorStoreResource(
        engine=settings.qdrant_engine,
        url=env.get("RAG_QDRANT_URL") or None,
        path=str(settings.qdrant_path),
    ).location
    registry = Registry(env.get("RAG_REGISTRY_URL") or default_url(settings.data_dir))
    last: tuple[dict[str, int], int] | None = None
    try:
        while not stop.wait(3.0):
            counts = registry.status_counts(settings.scope)
            target = registry.target(location, settings.physical_collection)
            waiting = registry.work_count(settings.scope, target.id if target else None)
            if (counts, waiting) != last:
                print(
                    f"[dev] documents by status: {dict(sorted(counts.items()))}; "
                    f"{waiting} with work left in {settings.physical_collection}",
                    flush=True,
                )
                last = (counts, waiting)
            live = sum(n for status, n in counts.items() if status not in GONE_STATUSES)
            if (
                expected is not None
                and not done.is_set()
                and live >= expected
                and target is not None
                and not waiting
                and not _runs_in_flight(env["DAGSTER_HOME"])
            ):
                done.set()
    finally:
        registry.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rag-ingest dev", description=__doc__)
    parser.add_argument(
        "--exit-when-ingested",
        action="store_true",
        help="stop once every sample document is ingested or recorded as failed",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=0,
        help="with --exit-when-ingested: give up after this many seconds",
    )
    args = parser.parse_args(argv)

    env = os.environ.copy()
    env.setdefault("DAGSTER_HOME", str(REPO / "dagster_home"))
    env.setdefault("RAG_DATA_DIR", str(REPO / "data"))
    # One planned event per asset and run instead of one per shard: run creation drops from
    # hundreds of ms to about ten per shard (bench/RESULTS.md). The cost: Dagster no longer marks
    # a failed run's shards as failed; the registry records each document's failure and the
    # sensor requests the shard again, so nothing is lost. docs/deployment.md says the same.
    env.setdefault("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", "true")
    Path(env["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
    server = None
    expected: int | None = None
    if env.get("RAG_S3_ENDPOINT_URL") or env.get("RAG_S3_BUCKET"):
        if not env.get("RAG_S3_BUCKET"):
            print("[dev] RAG_S3_ENDPOINT_URL is set: set RAG_S3_BUCKET too", file=sys.stderr)
            return 2
        print(
            f"[dev] using configured S3: bucket {env['RAG_S3_BUCKET']} "
            f"endpoint {env.get('RAG_S3_ENDPOINT_URL') or 'AWS'}",
            flush=True,
        )
    else:
        for name, value in (
            ("AWS_ACCESS_KEY_ID", "dev"),
            ("AWS_SECRET_ACCESS_KEY", "dev"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
        ):
            env.setdefault(name, value)
            os.environ.setdefault(name, value)
        corpus = REPO / "sample_corpus"
        server, endpoint = start_local_s3(corpus)
        env["RAG_S3_ENDPOINT_URL"] = endpoint
        env["RAG_S3_BUCKET"] = SAMPLE_BUCKET
        expected = sum(1 for p in corpus.rglob("*") if p.is_file())

    port = env.get("RAG_WEBSERVER_PORT", "3000")
    host = env.get("RAG_WEBSERVER_HOST", "127.0.0.1")
    command = [
        sys.executable,
        "-m",
        "dagster",
        "dev",
        "-h",
        host,
        "-p",
        port,
        "-m",
        "rag_ingest.definitions",
    ]
    print(
        f"[dev] starting Dagster UI + daemon on http://{host}:{port} "
        f"(DAGSTER_HOME={env['DAGSTER_HOME']})",
        flush=True,
    )
    proc = subprocess.Popen(command, env=env, cwd=REPO, start_new_session=True)

    stopping = threading.Event()
    done = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        print(f"[dev] signal {signum}: stopping", flush=True)
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    watcher = threading.Thread(target=_watch, args=(env, expected, done, stopping), daemon=True)
    watcher.start()
    deadline = time.monotonic() + args.timeout if args.timeout else None
    code = 0
    try:
        while proc.poll() is None and not stopping.is_set():
            if args.exit_when_ingested and done.is_set():
                print("[dev] every sample document is ingested or recorded: stopping", flush=True)
                break
            if deadline and time.monotonic() > deadline:
                print("[dev] timed out waiting for ingestion", file=sys.stderr, flush=True)
                code = 1
                break
            time.sleep(0.5)
        if proc.poll() is not None and not stopping.is_set():
            code = proc.returncode or 1
    finally:
        stopping.set()
        _stop_group(proc)
        if server is not None:
            server.stop()
    return code


def _group_alive(pgid: int) -> bool:
    """Whether any live (non-zombie) process is still in process group ``pgid``."""
    proc_root = Path("/proc")
    if not proc_root.is_dir():  # not Linux: a signal-0 probe (counts zombies as alive)
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for entry in proc_root.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # Fields after the parenthesised command: state, ppid, pgrp, ...
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """Signal ``dagster dev``'s whole process group and wait until every member has exited.

    Run workers outlive ``dagster dev`` by a few seconds while they record their interruption;
    returning before they exit would leave them writing to the data folder after we claim to
    have stopped.
    """
    pgid = proc.pid
    for sig, wait in ((signal.SIGTERM, 60.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            proc.poll()  # reap our own child so it does not count as alive
            if not _group_alive(pgid):
                break
            time.sleep(0.2)
        else:
            continue
        break
    proc.poll()


if __name__ == "__main__":
    sys.exit(main())
