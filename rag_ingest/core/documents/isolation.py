"""Per-document isolation: extraction in worker processes that can be killed.

:class:`DocumentProcessor` keeps ``workers`` long-lived child processes
(:mod:`rag_ingest.core.documents.worker`) and hands each document to an idle one. A document
that runs past ``DocumentLimits.timeout_seconds`` has its worker killed (and replaced) and is
recorded ``failed`` with "timed out after N s"; one that exhausts the worker's address-space
cap, crashes the parser or kills the process is recorded ``failed`` with that reason. Only
failing to start a worker at all raises, because that says nothing about a document.

Workers are started with ``subprocess`` (fork + exec of a fresh interpreter), never a bare
``fork()``: the caller is a threaded Dagster process. A document costs two pipe writes and one
read; the body is written straight from the caller's buffer.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
from multiprocessing.connection import Connection
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

from rag_ingest.core.documents.limits import DocumentLimits
from rag_ingest.core.documents.model import Block, Extracted
from rag_ingest.core.documents.sandbox import worker_environment

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


class ExtractionOutcome(NamedTuple):
    status: str  # ok, empty, unsupported or failed
    reason: str | None
    extracted: Extracted | None
    peak_rss_bytes: int | None  # the worker's peak resident memory during this document


def _unpack(payload: tuple[Any, ...] | None) -> Extracted | None:
    if payload is None:
        return None
    fmt, title, pages, compressed, blocks, note = payload
    doc = Extracted(fmt, [Block(*b) for b in blocks], title=title, pages=pages, note=note)
    doc.compressed = compressed
    return doc


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
        hint = " (out of memory?)" if -code == signal.SIGKILL else ""
        return f"killed by {name}{hint}"
    return f"exit code {code}"


class _Worker:
    """One child process and its two pipes; used by one thread at a time."""

    def __init__(self, limits: DocumentLimits, start_timeout: float) -> None:
        self.limits = limits
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.inbox: Connection | None = None  # replies from the worker
        self.outbox: Connection | None = None  # documents to the worker
        self.ready = False

    def start(self) -> None:
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        env = worker_environment(os.environ, _PACKAGE_ROOT)  # no credentials
        limits = json.dumps(dataclasses.asdict(self.limits))
        args = [sys.executable, "-m", "rag_ingest.core.documents.worker"]
        try:
            self.proc = subprocess.Popen(
                [*args, str(to_child_r), str(from_child_w), limits],
                pass_fds=(to_child_r, from_child_w),
                stdin=subprocess.DEVNULL,
                env=env,
            )
        except BaseException:
            os.close(to_child_w)
            os.close(from_child_r)
            raise
        finally:
            os.close(to_child_r)  # the child holds its own copies
            os.close(from_child_w)
        self.outbox = Connection(to_child_w, readable=False)
        self.inbox = Connection(from_child_r, writable=False)
        self.ready = False

    def ensure_ready(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            self.kill()
            self.start()
        if self.ready:
            return
        assert self.inbox is not None and self.proc is not None
        try:
            if self.inbox.poll(self.start_timeout):
                tag, _pid = pickle.loads(self.inbox.recv_bytes())
                self.ready = tag == "ready"
        except (EOFError, OSError):
            pass
        if not self.ready:
            code = self.kill()
            raise RuntimeError(f"extraction worker failed to start ({_describe_exit(code)})")

    def kill(self) -> int | None:
        """Kill the process (if any), close its pipes; returns its exit status."""
        code = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            code = self.proc.wait()
        for conn in (self.inbox, self.outbox):
            if conn is not None:
                conn.close()
        self.proc = self.inbox = self.outbox = None
        self.ready = False
        return code

    def stop(self, grace: float = 2.0) -> None:
        if self.outbox is not None:
            self.outbox.close()  # EOF: the worker exits on its own
            self.outbox = None
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(grace)
        self.kill()

    def _send(self, header: bytes, body: bytes) -> bool:
        assert self.outbox is not None
        try:
            self.outbox.send_bytes(header)
            self.outbox.send_bytes(body)
            return True
        except OSError:  # the worker died while idle (killed from outside)
            return False

    def run(
        self, key: str, body: bytes, content_type: str | None, encoding: str | None
    ) -> ExtractionOutcome:
        header = pickle.dumps((key, content_type, encoding))
        self.ensure_ready()
        if not self._send(header, body):
            self.kill()
            self.ensure_ready()
            if not self._send(header, body):
                code = self.kill()
                return ExtractionOutcome(
                    "failed", f"extraction worker died ({_describe_exit(code)})", None, None
                )
        assert self.inbox is not None
        timeout = self.limits.timeout_seconds
        try:
            if not self.inbox.poll(timeout):
                self.kill()
                self.start()  # replace it now, so the next document does not wait
                return ExtractionOutcome("failed", f"timed out after {timeout:g} s", None, None)
            reply = self.inbox.recv_bytes()
        except (EOFError, OSError):
            code = self.kill()
            return ExtractionOutcome(
                "failed", f"extraction worker died ({_describe_exit(code)})", None, None
            )
        status, reason, payload, peak_kb, restart = pickle.loads(reply)
        if restart:
            self.kill()
            self.start()
        return ExtractionOutcome(
            status, reason, _unpack(payload), peak_kb * 1024 if peak_kb else None
        )


class DocumentProcessor:
    """Extraction of untrusted documents in killable, memory-capped worker processes.

    A context manager; :meth:`extract` is thread-safe (fetch threads call it concurrently and
    wait for an idle worker). Workers live across documents; only a killed or crashed one is
    replaced.

    Args:
        limits: the per-document limits (timeout and memory cap apply in the workers).
        workers: number of worker processes.
        start_timeout: seconds a new worker may take to import its parsers.
        lazy: start the workers at the first document instead of on entering the block, so a
            run with nothing to extract (deletions only, nothing to do) starts none.
    """

    def __init__(
        self,
        limits: DocumentLimits | None = None,
        workers: int = 2,
        start_timeout: float = 60.0,
        lazy: bool = False,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.limits = limits or DocumentLimits()
        self._workers = [_Worker(self.limits, start_timeout) for _ in range(workers)]
        self._idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._started = False
        self._closed = False
        self._lazy = lazy

    def __enter__(self) -> DocumentProcessor:
        if not self._lazy:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        """Start every worker and wait until each has loaded its parsers.

        Raises:
            RuntimeError: a worker could not be started.
        """
        with self._lock:
            if self._started:
                return
            if self._closed:
                raise RuntimeError("DocumentProcessor is closed")
            try:
                for worker in self._workers:
                    worker.start()
                for worker in self._workers:
                    worker.ensure_ready()
                    self._idle.put(worker)
            except BaseException:
                for worker in self._workers:
                    worker.kill()
                raise
            self._started = True

    def close(self) -> None:
        """Stop the workers (those still busy are killed)."""
        with self._lock:
            self._closed = True
            for worker in self._workers:
                worker.stop()

    @property
    def started(self) -> bool:
        """Whether the workers were started (a lazy processor starts them at its first document)."""
        return self._started

    def worker_pids(self) -> list[int]:
        """Process ids of the live workers (for monitoring and tests)."""
        return [w.proc.pid for w in self._workers if w.proc is not None]

    def extract_measured(
        self, key: str, body: bytes, content_type: str | None, content_encoding: str | None
    ) -> ExtractionOutcome:
        """Like :meth:`extract`, plus the worker's peak RSS while it handled this document."""
        if not self._started:
            self.start()
        if self._closed:
            raise RuntimeError("DocumentProcessor is closed")
        worker = self._idle.get()
        try:
            return worker.run(key, body, content_type, content_encoding)
        finally:
            self._idle.put(worker)

    def extract(
        self, key: str, body: bytes, content_type: str | None, content_encoding: str | None
    ) -> tuple[str, str | None, Extracted | None]:
        """``(status, reason, extracted)`` of one object's bytes.

        Never raises for anything the document causes (timeout, worker crash, MemoryError,
        parser bug): those are statuses. Raises RuntimeError only if no worker can be started.
        """
        outcome = self.extract_measured(key, body, content_type, content_encoding)
        return outcome.status, outcome.reason, outcome.extracted
