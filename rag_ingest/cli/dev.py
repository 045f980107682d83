"""`make dev` (``rag-ingest dev``): a local S3 with the sample corpus (unless one is
configured), then `dagster dev` on the code location workspace.yaml names.

Everything it starts stops on Ctrl-C or SIGTERM: ``dagster dev`` runs in its own process group
(a backgrounded ``dagster dev`` ignores SIGTERM otherwise) and the whole group is signalled.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from rag_ingest.cli.devstate import (
    DEV_CREDENTIALS,
    FolderMirror,
    documents_folder,
    pick_s3_port,
    port_is_free,
    seed_documents,
    state_file,
    write_env_file,
    write_state,
)
from rag_ingest.testing import REPO, SAMPLE_CORPUS
from rag_ingest.testing.s3 import moto_server

SAMPLE_BUCKET = "rag-ingest-sample"
# The code location as workspace.yaml names it, which is also how `dg dev` and a plain
# `dagster dev` name it ([tool.dg.project] in pyproject.toml): schedule and sensor state is
# keyed by location name, so any other name would lose it when switching between them.
WORKSPACE = REPO / "workspace.yaml"
# Dagster's own switches, for every Dagster process of the project (daemon, webserver, run
# workers); docs/deployment.md asks a deployment for the same (test_postgres checks the two agree).
DAGSTER_ENV: dict[str, str] = {
    # One planned event per asset and run instead of one per shard: run creation drops from
    # hundreds of ms to about ten per shard (bench/RESULTS.md). The cost: Dagster no longer marks
    # a failed run's shards as failed; the registry records each document's failure and the
    # sensor requests the shard again, so nothing is lost.
    "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "true",
    # A step's per-shard materializations reach the event storage as batches: PostgreSQL's
    # writes each batch in one statement, which is most of a bridged idle shard's bookkeeping
    # (bench/results/event-batch.md); SQLite's storage writes them one by one as before.
    "DAGSTER_EVENT_BATCH_SIZE": "1000",
}


def dagster_command(host: str, port: str) -> list[str]:
    """``dagster dev`` on ``host:port`` with the project's one code location."""
    return [
        sys.executable,
        "-m",
        "dagster",
        "dev",
        "-h",
        host,
        "-p",
        port,
        "-w",
        str(WORKSPACE),
        # The UI and daemon at WARNING: at INFO they print a line per sensor evaluation and
        # queue check, the same lines every few seconds. Runs log at the instance's level
        # (dagster_home/dagster.yaml: INFO), and the [dev] lines report progress.
        "--log-level",
        "warning",
    ]


def _runs_in_flight(dagster_home: str) -> int:
    """Runs of the dev instance that are queued or not finished yet."""
    import dagster as dg

    from rag_ingest.defs.ingestion.sensors import ACTIVE_RUN_STATUSES

    instance = dg.DagsterInstance.from_config(dagster_home)
    try:
        return instance.get_runs_count(dg.RunsFilter(statuses=ACTIVE_RUN_STATUSES))
    finally:
        instance.dispose()


def _watch(expected: int | None, done: threading.Event, stop: threading.Event) -> None:
    """Print registry progress; set ``done`` once ``expected`` documents are registered, none
    has work left in the collection the pipeline writes now, and no run is still going.

    A document counts as done only in the target (Qdrant location + collection) it was
    ingested into, so a registry left by an earlier setup (another engine or fingerprint)
    is not mistaken for a finished ingestion. Runs record their documents' outcomes before
    they verify, promote and report their shards: stopping then would interrupt the last run.

    The registry and the vector store's location are the code location's own resources, read
    from this process's environment, which is the one ``dagster dev`` inherits.
    """
    from rag_ingest.cli.resources import resources
    from rag_ingest.core.config import Settings
    from rag_ingest.core.registry import GONE_STATUSES

    settings = Settings.from_env()
    last: tuple[dict[str, int], int] | None = None
    announced: tuple[dict[str, int], int] | None = None
    reported: set[str] = set()
    with resources(settings, "registry", "vectors") as res:
        registry = res.registry.registry
        location = res.vectors.location
        while not stop.wait(3.0):
            counts = registry.status_counts(settings.scope)
            target = registry.target(location, settings.physical_collection)
            waiting = registry.work_count(settings.scope, target.id if target else None)
            live = sum(n for status, n in counts.items() if status not in GONE_STATUSES)
            # Final outcomes other than points: failed, unsupported, empty, unreadable, ...
            recorded = {
                status: n
                for status, n in counts.items()
                if status not in GONE_STATUSES and status not in ("ok", "pending")
            }
            if (counts, waiting) != last:
                detail = ", ".join(f"{n} {status}" for status, n in sorted(recorded.items()))
                print(
                    f"[dev] {counts.get('ok', 0)} of {live} documents ingested"
                    f"{f' ({detail})' if detail else ''}; {waiting} to do",
                    flush=True,
                )
                last = (counts, waiting)
            settled = target is not None and not waiting
            if settled and announced != last and not _runs_in_flight(os.environ["DAGSTER_HOME"]):
                announced = last
                print(_all_ingested(registry, settings, live, recorded, reported), flush=True)
                if expected is not None and live >= expected:
                    done.set()


def _all_ingested(
    registry: Any, settings: Any, live: int, recorded: dict[str, int], reported: set[str]
) -> str:
    """The line that says everything known is ingested, with each document that has no points
    and its reason (those not in ``reported`` yet, which it then holds)."""
    line = f"[dev] all {live} known documents are ingested or recorded"
    if not recorded:
        return line + '; try `rag-ingest search "…"`'
    total = sum(recorded.values())
    shown = [
        r
        for r in registry.by_status(
            sorted(recorded), limit=10 + len(reported), scope=settings.scope
        )
        if r.key not in reported
    ][:10]
    reported.update(r.key for r in shown)
    reasons = "".join(f"\n[dev]   {r.key}: {r.status}: {r.reason}" for r in shown)
    more = f"\n[dev]   … and {total - len(reported)} more" if total > len(reported) else ""
    return f"{line}, {total} without points{':' if shown else ' (reasons above)'}{reasons}{more}"


def _local_s3(stack: contextlib.ExitStack, stop: threading.Event, port: int | None) -> int:
    """Start moto's S3 on a stable port, fill the dev bucket from the documents folder (seeded
    with the sample corpus the first time), keep mirroring the folder while dev runs, point this
    process's environment at it and record it in ``data/dev.json``; returns how many documents
    the folder holds."""
    from rag_ingest.core.storage.s3 import make_client

    for name, value in DEV_CREDENTIALS.items():
        os.environ.setdefault(name, value)
    port = port or pick_s3_port(os.environ.get("RAG_DEV_S3_PORT"))
    endpoint = stack.enter_context(moto_server(port))
    client = make_client(endpoint, "us-east-1")
    client.create_bucket(Bucket=SAMPLE_BUCKET)
    folder = documents_folder(REPO)
    if seed_documents(folder, SAMPLE_CORPUS):
        print(
            f"[dev] created {folder} from the sample corpus: add or remove files there", flush=True
        )
    mirror = FolderMirror(client, SAMPLE_BUCKET, folder)
    count, _ = mirror.sync()
    threading.Thread(target=mirror.watch, args=(stop,), daemon=True).start()
    print(
        f"[dev] local S3 at {endpoint}: s3://{SAMPLE_BUCKET}/ mirrors {folder} ({count} files)",
        flush=True,
    )
    os.environ["RAG_S3_ENDPOINT_URL"] = endpoint
    os.environ["RAG_S3_BUCKET"] = SAMPLE_BUCKET
    return count


def _dev_bucket_port(env: Any) -> int | None:
    """The port of a local dev S3 the environment names (exported from an earlier `make dev`)
    when nothing serves it now: dev then starts it again there instead of pointing the sensors
    at a dead endpoint."""
    if env.get("RAG_S3_BUCKET") != SAMPLE_BUCKET:
        return None
    found = re.fullmatch(r"http://127\.0\.0\.1:(\d+)/?", env.get("RAG_S3_ENDPOINT_URL", ""))
    if found is None or not port_is_free(int(found.group(1))):
        return None
    return int(found.group(1))


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
    with contextlib.ExitStack() as stack:
        return _run(args, stack)


def _run(args: argparse.Namespace, stack: contextlib.ExitStack) -> int:
    # This process's environment is the one `dagster dev` inherits: the watcher reads the same
    # settings and resources as the code location.
    env = os.environ
    if "DAGSTER_HOME" not in env:
        # The project's instance: `dg dev` and `dagster dev` run here find it through .env.
        env["DAGSTER_HOME"] = str(REPO / "dagster_home")
        write_env_file(REPO, REPO / "dagster_home", DAGSTER_ENV)
    env.setdefault("RAG_DATA_DIR", str(REPO / "data"))
    for name, value in DAGSTER_ENV.items():
        env.setdefault(name, value)
    Path(env["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
    # Libraries' progress bars and download chatter: nothing a dev terminal needs.
    env.setdefault("TQDM_DISABLE", "1")
    env.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    env.setdefault("TRANSFORMERS_VERBOSITY", "error")
    stopping = threading.Event()
    expected: int | None = None
    restart_port = _dev_bucket_port(env)
    if restart_port is not None:
        expected = _local_s3(stack, stopping, restart_port)
    elif env.get("RAG_S3_ENDPOINT_URL") or env.get("RAG_S3_BUCKET"):
        if not env.get("RAG_S3_BUCKET"):
            print("[dev] RAG_S3_ENDPOINT_URL is set: set RAG_S3_BUCKET too", file=sys.stderr)
            return 2
        print(
            f"[dev] using configured S3: bucket {env['RAG_S3_BUCKET']} "
            f"endpoint {env.get('RAG_S3_ENDPOINT_URL') or 'AWS'}",
            flush=True,
        )
    else:
        expected = _local_s3(stack, stopping, None)
    write_state(
        Path(env["RAG_DATA_DIR"]),
        {
            name: env[name]
            for name in (*DEV_CREDENTIALS, "RAG_S3_BUCKET", "RAG_S3_ENDPOINT_URL", "DAGSTER_HOME")
            if env.get(name)
        }
        | {"RAG_DATA_DIR": env["RAG_DATA_DIR"]},
    )

    port = env.get("RAG_WEBSERVER_PORT", "3000")
    host = env.get("RAG_WEBSERVER_HOST", "127.0.0.1")
    print(
        f"[dev] starting Dagster UI + daemon on http://{host}:{port} "
        f"(DAGSTER_HOME={env['DAGSTER_HOME']})",
        flush=True,
    )
    proc = subprocess.Popen(dagster_command(host, port), cwd=REPO, start_new_session=True)
    stack.callback(state_file(Path(env["RAG_DATA_DIR"])).unlink, missing_ok=True)

    done = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        print(f"[dev] signal {signum}: stopping", flush=True)
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    watcher = threading.Thread(target=_watch, args=(expected, done, stopping), daemon=True)
    watcher.start()
    deadline = time.monotonic() + args.timeout if args.timeout else None
    code = 0
    ui = f"http://{host}:{port}"
    loaded = False
    try:
        while proc.poll() is None and not stopping.is_set():
            # A restart can find everything ingested at once: stopping Dagster's processes while
            # they still load the code location aborts them mid-import, tracebacks and all.
            loaded = loaded or (args.exit_when_ingested and done.is_set() and _loaded(ui))
            if loaded:
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
    return code


_LOCATIONS_QUERY = (
    b'{"query": "{ workspaceOrError { ... on Workspace { locationEntries { loadStatus } } } }"}'
)


def _loaded(ui: str) -> bool:
    """Whether the Dagster UI at ``ui`` answers and every code location has finished loading."""
    import json
    import urllib.request

    request = urllib.request.Request(
        f"{ui}/graphql", data=_LOCATIONS_QUERY, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            answer = json.loads(response.read())
    except (OSError, ValueError):
        return False
    entries = (answer.get("data") or {}).get("workspaceOrError", {}).get("locationEntries")
    return bool(entries) and all(e.get("loadStatus") == "LOADED" for e in entries)


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
