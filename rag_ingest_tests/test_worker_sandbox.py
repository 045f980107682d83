"""Extraction workers end with their parent and inherit no credentials (review L3, L4)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from rag_ingest.core.documents.isolation import DocumentProcessor
from rag_ingest.core.documents.limits import DocumentLimits
from rag_ingest.core.documents.sandbox import CPU_MARGIN_SECONDS

REPO = Path(__file__).resolve().parent.parent
SECRETS = {
    "AWS_SECRET_ACCESS_KEY": "aws-secret-value",
    "RAG_QDRANT_API_KEY": "qdrant-key-value",
    "MODAL_TOKEN_SECRET": "modal-secret-value",
    "RAG_REGISTRY_URL": "postgresql://rag:pw-value@db/registry",
    "SOME_FUTURE_SECRET": "not-on-any-deny-list",
}

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for init to reap it counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


def test_a_busy_worker_dies_with_its_sigkilled_parent() -> None:
    parent_code = textwrap.dedent(
        """
        from rag_ingest.core.documents.isolation import DocumentProcessor
        from rag_ingest.core.documents.limits import DocumentLimits
        from rag_ingest_tests.hostile import operator_flood_pdf

        body = operator_flood_pdf()  # minutes of parsing
        processor = DocumentProcessor(DocumentLimits(timeout_seconds=600), workers=1)
        processor.start()
        print(processor.worker_pids()[0], flush=True)
        processor.extract("flood.pdf", body, "application/pdf", None)
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", parent_code],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    worker = 0
    try:
        assert parent.stdout is not None
        worker = int(parent.stdout.readline())
        time.sleep(2.0)  # the worker is parsing now
        assert _alive(worker)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 5.0
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(worker), "the worker outlived its SIGKILLed parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if worker and _alive(worker):
            os.kill(worker, signal.SIGKILL)


def test_workers_inherit_no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    with DocumentProcessor(DocumentLimits(timeout_seconds=30), workers=2) as processor:
        status, _reason, doc = processor.extract("a.md", b"# Title\n\nSome text.", None, None)
        assert status == "ok" and doc is not None
        for pid in processor.worker_pids():
            env = _environ(pid)
            assert not set(SECRETS) & set(env)
            assert not any(v in value for v in SECRETS.values() for value in env.values())
            assert env["PATH"] == os.environ["PATH"] and env["LC_ALL"] == "C.UTF-8"


def test_each_document_runs_under_a_cpu_limit() -> None:
    limits = DocumentLimits(timeout_seconds=20)
    with DocumentProcessor(limits, workers=1) as processor:
        assert processor.extract("a.md", b"# Title\n\nSome text.", None, None)[0] == "ok"
        (pid,) = processor.worker_pids()
        line = next(
            row
            for row in Path(f"/proc/{pid}/limits").read_text().splitlines()
            if row.startswith("Max cpu time")
        )
        soft = line.split()[3]
        assert soft != "unlimited"
        # the worker's CPU so far (start-up imports) + the timeout + the margin
        assert 20 + CPU_MARGIN_SECONDS <= int(soft) <= 20 + CPU_MARGIN_SECONDS + 60


def test_a_worker_outlives_the_thread_that_started_it() -> None:
    """Linux sends the parent-death signal when the starting *thread* ends (a fetch thread
    replaces a timed-out worker, then its pool shuts down); the worker must carry on."""
    processor = DocumentProcessor(DocumentLimits(timeout_seconds=30), workers=1)
    try:
        starter = threading.Thread(target=processor.start)  # not the main thread
        starter.start()
        starter.join()
        (pid,) = processor.worker_pids()
        time.sleep(1.5)  # the signal, and a watcher tick
        assert _alive(pid)
        assert processor.extract("a.md", b"# Title\n\nSome text.", None, None)[0] == "ok"
        assert processor.worker_pids() == [pid]
    finally:
        processor.close()
