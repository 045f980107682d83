"""One document's failure (timeout, memory, crash, parser bug, bad text) is recorded for that
document; the processor and the other documents carry on."""

import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from rag_ingest.core.documents.isolation import DocumentProcessor
from rag_ingest.core.documents.limits import DocumentLimits, MiB
from rag_ingest.core.documents.model import Block
from rag_ingest.core.keys import document_id
from rag_ingest.core.pipeline import steps as stages
from rag_ingest.core.pipeline.runfiles import DocumentRow, read_rows, write_rows
from rag_ingest.core.pipeline.steps import chunk_document, load_document
from rag_ingest.core.records import DocumentInfo
from rag_ingest.core.registry import DocumentRecord
from rag_ingest.core.storage.blobstore import LocalBlobStore
from rag_ingest_tests.hostile import (
    HOSTILE_LIMITS,
    expected_outcomes,
    hostile_corpus,
    lone_surrogate_pdf,
    memory_bomb,
    operator_flood_pdf,
)


def _info(key: str = "k") -> DocumentInfo:
    return DocumentInfo(document_id("b", key), "b", key, "e", 1, "2026-01-01T00:00:00")


def _record(bucket: str, key: str) -> DocumentRecord:
    return DocumentRecord("doc", bucket, key, "", 0, "", 0, "pending", None, None, None, 0.0)


def test_a_stuck_document_times_out_and_the_worker_is_replaced() -> None:
    with DocumentProcessor(DocumentLimits(timeout_seconds=2), workers=1) as processor:
        before = processor.worker_pids()
        started = time.monotonic()
        status, reason, doc = processor.extract("flood.pdf", operator_flood_pdf(), None, None)
        elapsed = time.monotonic() - started
        assert (status, reason, doc) == ("failed", "timed out after 2 s", None)
        assert elapsed < 10  # killed at 2 s, not left to run its ~10 minutes
        assert processor.worker_pids() != before
        assert processor.extract("after.txt", b"still working", None, None)[0] == "ok"


def test_a_memory_bomb_is_a_recorded_failure_not_an_oom() -> None:
    bomb = memory_bomb()
    with DocumentProcessor(DocumentLimits(memory_bytes=256 * MiB), workers=1) as processor:
        status, reason, _ = processor.extract("bomb.md.gz", bomb, None, None)
        assert status == "failed" and "out of memory" in (reason or "")
        assert "DocumentLimits.memory_bytes" in (reason or "")
        assert processor.extract("after.txt", b"fine", None, None)[0] == "ok"


def test_a_worker_killed_mid_document_is_recorded_and_replaced() -> None:
    with DocumentProcessor(DocumentLimits(timeout_seconds=60), workers=1) as processor:
        (pid,) = processor.worker_pids()
        threading.Timer(1.0, os.kill, (pid, signal.SIGKILL)).start()
        status, reason, _ = processor.extract("flood.pdf", operator_flood_pdf(), None, None)
        assert status == "failed"
        assert reason == "extraction worker died (killed by SIGKILL (out of memory?))"
        assert processor.extract("after.txt", b"fine", None, None)[0] == "ok"
        assert processor.worker_pids() != [pid]


def test_workers_are_reused_and_serve_concurrent_threads() -> None:
    with DocumentProcessor(workers=2) as processor:
        pids = processor.worker_pids()
        started = time.perf_counter()

        def one(i: int) -> tuple[str, str | None, Any]:
            return processor.extract(f"d{i}.md", f"# T{i}\n\nbody {i}".encode(), None, None)

        with ThreadPoolExecutor(8) as pool:
            outcomes = list(pool.map(one, range(400)))
        rate = 400 / (time.perf_counter() - started)
        print(f"small documents through 2 workers: {rate:.0f}/s")
        assert all(s == "ok" and d is not None for s, _, d in outcomes)
        assert [d.blocks[0].heading for _, _, d in outcomes[:3] if d] == ["T0", "T1", "T2"]
        assert processor.worker_pids() == pids


def test_workers_that_cannot_start_raise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", "/bin/false")
    with pytest.raises(RuntimeError, match="failed to start"), DocumentProcessor(workers=1):
        pass


def _store(rows: list[DocumentRow], payload: str, tmp: Path) -> list[DocumentRow]:
    """Rows written to a run file and read back."""
    store = LocalBlobStore(tmp)
    write_rows(store, f"runs/r/{payload}.parquet", payload, rows)
    return list(read_rows(store, f"runs/r/{payload}.parquet"))


def test_text_that_could_not_be_serialised_is_repaired(tmp_path: Path) -> None:
    with DocumentProcessor(workers=1) as processor:
        status, _, doc = processor.extract("s.pdf", lone_surrogate_pdf(), None, None)
    assert status == "ok" and doc is not None
    assert doc.blocks[0].text == "\ufffdB\ufffdB"
    info = _info()
    chunks = chunk_document(info, doc.blocks, 254, 32)
    assert _store([DocumentRow(info, chunks=chunks)], "chunks", tmp_path)[0].chunks == chunks
    # the run files repair text from anywhere else too, keeping every length
    raw = [Block("bad \ud800 text", 0, heading="h\udfff")]
    [back] = _store([DocumentRow(info, blocks=raw)], "blocks", tmp_path)
    assert back.info.status == "ok" and back.blocks[0].text == "bad \ufffd text"
    assert back.blocks[0].heading == "h\ufffd"


def test_chunking_failures_are_recorded_on_the_document(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(blocks: Any, **kwargs: Any) -> Any:
        if blocks:
            raise RuntimeError("chunker bug")
        return []

    monkeypatch.setattr(stages, "chunk_blocks", broken)
    info = _info()
    assert chunk_document(info, [Block("text", 0)], 254, 32) == []
    assert (info.status, info.reason) == ("failed", "chunking failed: RuntimeError: chunker bug")
    monkeypatch.undo()
    info = _info()
    assert chunk_document(info, [Block("\x01\x02", 0)], 254, 32) == []
    assert info.status == "empty"
    with pytest.raises(ValueError):  # settings are configuration, not document content
        chunk_document(_info(), [Block("text", 0)], 1000, 32)


def test_load_document_records_missing_and_oversized_objects(s3_client: Any, bucket: str) -> None:
    s3_client.put_object(Bucket=bucket, Key="a.md", Body=b"# Title\n\nBody.")
    s3_client.put_object(Bucket=bucket, Key="big.txt", Body=b"x" * 5000)
    limits = DocumentLimits(max_object_bytes=4096)
    with DocumentProcessor(limits, workers=1) as processor:
        info, blocks = load_document(s3_client, _record(bucket, "a.md"), processor, limits)
        assert info.status == "ok" and info.format == "markdown"
        assert blocks[0].heading_path == ("Title",)
        info, _ = load_document(s3_client, _record(bucket, "gone.md"), processor, limits)
        assert (info.status, info.reason) == ("missing", "object no longer exists in S3")
        info, _ = load_document(s3_client, _record(bucket, "big.txt"), processor, limits)
        assert info.status == "failed" and "too large" in (info.reason or "")


def test_the_hostile_corpus_fails_document_by_document(tmp_path: Path) -> None:
    corpus = hostile_corpus()
    expected = expected_outcomes()
    assert set(corpus) == set(expected)
    with DocumentProcessor(HOSTILE_LIMITS, workers=2) as processor:

        def run(key: str) -> tuple[str, Any]:
            body, content_type = corpus[key]
            return key, processor.extract_measured(key, body, content_type, None)

        with ThreadPoolExecutor(4) as pool:
            outcomes = dict(pool.map(run, corpus))
    chunked = 0
    for key, outcome in outcomes.items():
        status, fragment = expected[key]
        assert outcome.status == status, (key, outcome.reason)
        assert fragment is None or fragment in (outcome.reason or ""), (key, outcome.reason)
        info = _info(key)
        info.status, info.reason = outcome.status, outcome.reason
        blocks = outcome.extracted.blocks if outcome.extracted else []
        [stored] = _store([DocumentRow(info, blocks=blocks)], "blocks", tmp_path / key)
        assert stored.info.status == outcome.status  # every document's record is storable
        chunks = chunk_document(info, blocks, 254, 32)
        [stored] = _store([DocumentRow(info, chunks=chunks)], "chunks", tmp_path / key)
        assert stored.info.status == info.status
        if key == "bad/lone-surrogate.pdf":
            assert "\ufffd" in blocks[0].text
        if status == "ok":
            assert chunks and info.status == "ok", key
            assert all(c.token_count <= 254 and len(c.text) <= 4096 for c in chunks), key
            chunked += 1
        if outcome.peak_rss_bytes is not None:
            assert outcome.peak_rss_bytes < HOSTILE_LIMITS.memory_bytes, key
    assert chunked == sum(1 for s, _ in expected.values() if s == "ok")
