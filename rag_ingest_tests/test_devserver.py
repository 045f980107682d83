"""`make dev`'s runner with the real Dagster daemon, webserver and run launcher."""

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from qdrant_client import QdrantClient

from rag_ingest.core.registry import Registry, default_url
from rag_ingest_tests.helpers import REPO, SAMPLE_CORPUS, free_port


def _processes_with(marker: str) -> list[int]:
    """PIDs whose environment mentions ``marker`` (our unique data folder)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker.encode() in (entry / "environ").read_bytes():
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def _webserver_answers(port: int, within: float = 60.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5) as r:
                return r.status == 200
        except OSError:
            time.sleep(1)
    return False


@pytest.mark.slow
def test_dev_ingests_the_sample_corpus_and_stops_everything_on_sigterm(tmp_path: Path) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    data = tmp_path / "data"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "AWS_"))}
    env.update(
        DAGSTER_HOME=str(home),
        RAG_DATA_DIR=str(data),
        RAG_WEBSERVER_PORT=str(port),
        RAG_SENSOR_INTERVAL_SECONDS="5",
    )
    log = (tmp_path / "dev.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "rag_ingest.devserver"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    expected = sum(1 for p in SAMPLE_CORPUS.rglob("*") if p.is_file())
    try:
        deadline = time.monotonic() + 420
        counts: dict[str, int] = {}
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "dev.log").read_text()[-3000:]
            if (data / "registry.sqlite").exists():
                counts = Registry(default_url(data)).status_counts()
                if sum(counts.values()) == expected and not counts.get("pending"):
                    break
            time.sleep(2)
        log_tail = (tmp_path / "dev.log").read_text()[-3000:]
        assert counts == {"ok": expected - 4, "failed": 2, "empty": 1, "unsupported": 1}, log_tail
        assert _webserver_answers(port), log_tail
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=90)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, (tmp_path / "dev.log").read_text()[-3000:]
    time.sleep(1)
    assert _processes_with(str(data)) == [], (tmp_path / "dev.log").read_text()[-3000:]
    client = QdrantClient(path=str(data / "qdrant"))
    try:
        chunk_total = sum(r.chunk_count or 0 for r in Registry(default_url(data)).by_status(["ok"]))
        assert client.count("documents").count == chunk_total > 0
    finally:
        client.close()
