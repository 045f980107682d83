"""`make dev`'s runner with the real Dagster daemon, webserver and run launcher.

The runner starts moto with the sample corpus and ``dagster dev`` on a temporary DAGSTER_HOME
(a copy of ``dagster_home/dagster.yaml``) and data folder, never the repository's. Nothing is
ingested before the listing sensor's first tick: the tick registers the objects and requests
reconcile runs over the shards with work, which the daemon launches as separate processes.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from rag_ingest.cli.dev import SAMPLE_BUCKET, dagster_command
from rag_ingest.core.config import Settings
from rag_ingest.core.registry import Registry, default_url
from rag_ingest.core.vectorstore import open_vector_store
from rag_ingest.defs.ingestion.sensors import INGEST_JOB, sensor_names
from rag_ingest.testing import REPO, SAMPLE_CORPUS
from rag_ingest.testing.daemon import processes_with
from rag_ingest.testing.ports import free_port

SHARDS = 16
EXPECTED = sum(1 for p in SAMPLE_CORPUS.rglob("*") if p.is_file())
# What the sample corpus holds: four objects that cannot be ingested, for a reason.
STATUSES = {"ok": EXPECTED - 4, "failed": 2, "empty": 1, "unsupported": 1}


@dataclass
class Dev:
    """A running ``python -m rag_ingest.cli dev`` (what `make dev` runs) and its folders."""

    process: subprocess.Popen[bytes]
    home: Path
    data: Path
    port: int
    log: Path

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def settings(self) -> Settings:
        """The settings the runner's code location reads."""
        return Settings.from_env(
            {
                "RAG_S3_BUCKET": SAMPLE_BUCKET,
                "RAG_DATA_DIR": str(self.data),
                "RAG_SHARDS": str(SHARDS),
            }
        )

    def runs(self) -> list[dg.DagsterRun]:
        """The runs recorded in the dev instance, oldest first."""
        instance = dg.DagsterInstance.from_config(str(self.home))
        try:
            return list(reversed(instance.get_runs()))
        finally:
            # Not the context manager: its __exit__ leaks the state storage into later tests.
            instance.dispose()

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the runner did not exit within {timeout:.0f}s:\n{self.log_tail()}")


@contextmanager
def dev(tmp_path: Path, *args: str, log_name: str = "dev.log") -> Iterator[Dev]:
    """The runner in its own session, with temporary folders (kept across calls with the same
    ``tmp_path``: a restart); killed (group) if still up."""
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    data = tmp_path / "data"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "AWS_", "DAGSTER_"))}
    env.update(
        DAGSTER_HOME=str(home),
        RAG_DATA_DIR=str(data),
        RAG_WEBSERVER_PORT=str(port),
        RAG_SENSOR_INTERVAL_SECONDS="5",
        # 16 shards, as the other tests use: Dagster's cost of creating and bookkeeping a run
        # over all 256 default shards (the first tick's full reconcile) would double the
        # runtime on CI's two cores without testing the runner any better.
        RAG_SHARDS=str(SHARDS),
        RAG_DEV_DOCUMENTS=str(tmp_path / "documents"),
    )
    log = tmp_path / log_name
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "rag_ingest.cli", "dev", *args],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Dev(process, home, data, port, log)
    try:
        yield server
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        for pid in processes_with(str(data)):  # left behind by a failed test: ours, by id
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_make_dev_names_the_code_location_as_workspace_yaml_and_dg_do() -> None:
    """`make dev`, `dg dev`, a plain `dagster dev` and the deployed daemon name the code location
    alike: Dagster keys schedule and sensor state by location name."""
    import tomllib

    import yaml
    from dagster._core.workspace.load_target import PyProjectFileTarget, WorkspaceFileTarget

    command = dagster_command("127.0.0.1", "3000")
    assert "-m" not in command[3:], command  # `-m module` would name the location after it
    workspace = Path(command[command.index("-w") + 1])
    assert workspace == REPO / "workspace.yaml"
    (entry,) = yaml.safe_load(workspace.read_text())["load_from"]
    assert entry["python_module"] == {
        "module_name": "rag_ingest.definitions",
        "location_name": "rag_ingest",
    }
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["dg"]["project"]
    assert project["code_location_target_module"] == "rag_ingest.definitions"
    assert project["code_location_name"] == "rag_ingest"

    # What Dagster itself makes of them (no code is loaded to name the origins).
    def named(origins: Any) -> list[tuple[str, str | None]]:
        return [(o.location_name, o.loadable_target_origin.module_name) for o in origins]

    dev = named(WorkspaceFileTarget(paths=[str(workspace)]).create_origins())
    plain = named(PyProjectFileTarget(str(REPO / "pyproject.toml")).create_origins())
    assert dev == plain == [("rag_ingest", "rag_ingest.definitions")]


def _webserver_answers(port: int, within: float = 0.0) -> bool:
    deadline = time.monotonic() + within
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5) as r:
                return r.status == 200
        except OSError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(1)


def _assert_all_stopped(server: Dev) -> None:
    time.sleep(1)
    assert processes_with(str(server.data)) == [], server.log_tail()


@pytest.mark.slow
def test_dev_ingests_the_sample_corpus_and_exits_when_ingested(tmp_path: Path) -> None:
    started = time.monotonic()
    with dev(tmp_path, "--exit-when-ingested", "--timeout", "600") as server:
        answered = False
        while server.process.poll() is None and time.monotonic() - started < 660:
            answered = answered or _webserver_answers(server.port)
            time.sleep(2)
        code = server.wait(30)
        assert code == 0, server.log_tail()
        assert answered, f"the webserver never answered:\n{server.log_tail()}"
        assert "every sample document is ingested or recorded" in server.log.read_text()
        print(f"[dev timing] ingested and stopped in {time.monotonic() - started:.0f}s")
        # The runner stopped dagster dev's whole group, run workers included.
        _assert_all_stopped(server)

    # Every sample object is in the registry with its outcome, in the collection readers use.
    settings = server.settings()
    registry = Registry(default_url(server.data))
    try:
        assert registry.status_counts(settings.scope) == STATUSES, server.log_tail()
        with open_vector_store("edge", path=settings.qdrant_path, lock_wait_seconds=30) as store:
            target = registry.target(store.location, settings.physical_collection)
            assert target is not None and target.state == "live"
            assert registry.work_count(settings.scope, target.id) == 0
            assert store.resolve(settings.collection) == settings.physical_collection
            chunks = registry.ingested_chunks(target.id, scope=settings.scope)
            assert len(chunks) == STATUSES["ok"]
            assert store.count(settings.physical_collection) == sum(chunks.values()) > 0
    finally:
        registry.close()

    # The sensor's first tick requested the runs; the daemon ran them all to success.
    runs = [run for run in server.runs() if run.job_name == INGEST_JOB]
    assert runs, server.log_tail()
    sensor = sensor_names(settings.prefixes)[settings.prefixes[0]]
    assert {run.tags.get("dagster/sensor_name") for run in runs} == {sensor}
    assert [run.status for run in runs] == [dg.DagsterRunStatus.SUCCESS] * len(runs), [
        (run.run_id, run.status) for run in runs
    ]
    print(f"[dev timing] {len(runs)} ingestion run(s)", flush=True)


@pytest.mark.slow
def test_sigterm_stops_every_process_of_the_group_mid_run(tmp_path: Path) -> None:
    started = time.monotonic()
    with dev(tmp_path) as server:
        # Wait for a run worker to be busy: the hardest moment to stop cleanly.
        deadline = time.monotonic() + 300
        while True:
            assert server.process.poll() is None, server.log_tail()
            assert time.monotonic() < deadline, f"no run started:\n{server.log_tail()}"
            if (server.home / "storage").exists() and any(
                run.status == dg.DagsterRunStatus.STARTED for run in server.runs()
            ):
                break
            time.sleep(2)
        assert _webserver_answers(server.port, within=60), server.log_tail()
        stopping = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        code = server.wait(120)
        print(
            f"[dev timing] a run started after {stopping - started:.0f}s; SIGTERM stopped "
            f"everything in {time.monotonic() - stopping:.0f}s",
            flush=True,
        )
        assert code == 0, server.log_tail()
        _assert_all_stopped(server)
    # The interrupted run recorded its end: none is left looking as if it were still running.
    running = {dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED}
    assert not [(run.run_id, run.status) for run in server.runs() if run.status in running]


def repeated_share(text: str) -> float:
    """The share of a terminal's lines that repeat an earlier line once times, run ids and
    colours are taken out."""
    seen: set[str] = set()
    repeats = 0
    lines = [line for line in text.splitlines() if line.strip()]
    for line in lines:
        line = re.sub(r"\x1b\[[0-9;]*m", "", line)
        line = re.sub(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+0000 - ", "", line)
        line = re.sub(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", "<run>", line)
        repeats += line in seen
        seen.add(line)
    return repeats / max(len(lines), 1)


@pytest.mark.slow
def test_dropped_documents_survive_restarts_and_the_terminal_stays_quiet(tmp_path: Path) -> None:
    """The README's first hour: `make dev` ingests its documents folder; a file dropped there is
    ingested on the next start and still searchable after another restart; every terminal is
    quiet (few repeated lines, no DEBUG events, no progress bars) and ends on the line that says
    everything known is ingested."""
    from rag_ingest.query import Index

    logs = []
    for n, drop in enumerate((None, "zebra.md", None)):
        if drop:
            (tmp_path / "documents" / drop).write_text(
                "# Zebra migration\n\nThe quokka-zebra protocol ZX-7741 governs migrations.\n"
            )
        with dev(tmp_path, "--exit-when-ingested", "--timeout", "600", log_name=f"{n}.log") as s:
            assert s.wait(660) == 0, s.log_tail()
            logs.append(s.log.read_text(errors="replace"))
    assert (tmp_path / "documents").is_dir()  # seeded from the sample corpus by the first start
    for log in logs:
        assert "known documents are ingested or recorded" in log, log[-3000:]
        assert " - DEBUG - " not in log and "it/s]" not in log, log[-3000:]
        assert repeated_share(log) <= 0.05, log
    assert "1 put, 0 deleted" not in logs[2]  # nothing changed: the restart put the same files
    with Index(s.settings()) as index:
        hits = index.search("quokka zebra protocol", k=1)
    assert hits and hits[0].source.endswith("/zebra.md"), hits
    registry = Registry(default_url(s.data))
    try:
        counts = registry.status_counts(s.settings().scope)
    finally:
        registry.close()
    assert counts == {**STATUSES, "ok": STATUSES["ok"] + 1}  # nothing deleted by a restart
