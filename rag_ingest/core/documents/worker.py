"""The extraction worker: a child process that runs :func:`extract` on documents sent to it.

Started by :class:`rag_ingest.core.documents.isolation.DocumentProcessor` as ``python -m
rag_ingest.core.documents.worker <read fd> <write fd> <limits as JSON>``. Its address space is
capped (``RLIMIT_AS``) so a memory bomb raises MemoryError here, and its parent kills it on
timeout; either way only this process is lost. It ends with its parent, runs each document
under a CPU-time limit and sees only an allow-listed environment
(:mod:`rag_ingest.core.documents.sandbox`). Messages are length-prefixed frames
(:class:`multiprocessing.connection.Connection` over the two pipes): a pickled ``(key,
content_type, content_encoding)`` header and the raw body in; one pickled ``(status, reason,
payload, peak_rss_kb, restart)`` reply out.
"""

from __future__ import annotations

import json
import os
import pickle
import resource
import signal
import sys
from multiprocessing.connection import Connection
from typing import Any

from rag_ingest.core.documents.decode import replace_surrogates
from rag_ingest.core.documents.extract import extract
from rag_ingest.core.documents.limits import DocumentLimits
from rag_ingest.core.documents.model import Extracted, ExtractionError
from rag_ingest.core.documents.sandbox import die_with_parent, limit_cpu_for_document, no_core_files

_MAX_REASON = 500


def _peak_rss_kb() -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> None:
    # "5" resets VmHWM to the current RSS (Linux >= 4.0), so each reply reports one document.
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        pass


def _cap_memory(memory_bytes: int) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        memory_bytes = min(memory_bytes, hard)
    try:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, hard))
    except (ValueError, OSError) as exc:  # e.g. macOS, which does not enforce RLIMIT_AS
        print(f"rag_ingest worker: no memory cap ({exc})", file=sys.stderr)


def pack(doc: Extracted) -> tuple[Any, ...]:
    """An :class:`Extracted` as plain tuples: cheaper to pickle than dataclass instances."""
    blocks = [(b.text, b.start, b.page, b.heading, b.heading_path) for b in doc.blocks]
    return doc.format, doc.title, doc.pages, doc.compressed, blocks, doc.note


def _reason(text: str) -> str:
    text = replace_surrogates(text)
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 1] + "…"


def handle(
    key: str,
    body: bytes,
    content_type: str | None,
    content_encoding: str | None,
    limits: DocumentLimits,
) -> tuple[str, str | None, tuple[Any, ...] | None, bool]:
    """``(status, reason, packed document, restart)`` for one document; never raises."""
    try:
        doc = extract(key, body, content_type, content_encoding, limits=limits)
        return "ok", None, pack(doc), False
    except ExtractionError as exc:
        return exc.status, _reason(exc.reason), None, False
    except MemoryError:
        # The heap may be fragmented or half-freed: answer, then let a fresh worker take over.
        reason = (
            f"out of memory: extraction needs more than the {limits.memory_bytes:,}-byte "
            "worker limit (DocumentLimits.memory_bytes)"
        )
        return "failed", reason, None, True
    except Exception as exc:  # a parser bug on odd input fails this document only
        return "failed", _reason(f"parser error: {type(exc).__name__}: {exc}"), None, False


def serve(inbox: Connection, outbox: Connection, limits: DocumentLimits) -> None:
    """Answer documents until the parent closes the pipe (or a reply asks for a restart)."""
    outbox.send_bytes(pickle.dumps(("ready", os.getpid())))
    while True:
        try:
            header = inbox.recv_bytes()
            body = inbox.recv_bytes()
        except EOFError:
            return
        key, content_type, content_encoding = pickle.loads(header)
        limit_cpu_for_document(limits.timeout_seconds)
        _reset_peak_rss()
        status, reason, payload, restart = handle(key, body, content_type, content_encoding, limits)
        del body
        try:
            reply = pickle.dumps((status, reason, payload, _peak_rss_kb(), restart), protocol=5)
            del payload
        except MemoryError:
            reply = pickle.dumps(("failed", "out of memory sending the result", None, None, True))
        outbox.send_bytes(reply)
        if restart:
            return


def main(argv: list[str]) -> None:
    read_fd, write_fd, limits_json = int(argv[0]), int(argv[1]), argv[2]
    die_with_parent()  # first: a run killed now must not leave this process behind
    no_core_files()
    limits = DocumentLimits(**json.loads(limits_json))
    # The parent handles Ctrl-C and ends this process by closing its pipe or killing it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Import the parsers before the cap and the first document, so neither pays for them.
    import charset_normalizer  # noqa: F401
    import lxml.etree  # noqa: F401
    import pypdf  # noqa: F401

    import rag_ingest.core.documents.html
    import rag_ingest.core.documents.markdown
    import rag_ingest.core.documents.pdf  # noqa: F401

    _cap_memory(limits.memory_bytes)
    serve(Connection(read_fd, writable=False), Connection(write_fd, readable=False), limits)


if __name__ == "__main__":
    main(sys.argv[1:])
