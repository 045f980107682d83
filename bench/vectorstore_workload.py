"""What ``python -m bench.vectorstores`` runs in a child process: one engine, one size, one phase.

The corpus is synthetic but shaped like the pipeline's: documents of 8 chunks, LangChain
payloads of about 800 bytes, 384-d random unit vectors, written through ``replace_documents`` in
windows of 512 documents (256 points per upsert). Vectors are a pure function of the window
number, so the parent can compute exact neighbours without the child holding them all.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import proc_status_mb
from rag_ingest.core.keys import document_id
from rag_ingest.core.records import DocumentInfo
from rag_ingest.core.text.chunking import Chunk
from rag_ingest.core.vectorstore import DocumentPoints, VectorStore, open_vector_store, payload
from rag_ingest.core.vectorstore.edge import EdgeStore

DIM = 384
CHUNKS_PER_DOC = 8
WINDOW_DOCS = 512
WINDOW_POINTS = WINDOW_DOCS * CHUNKS_PER_DOC
BATCH = 256
SEED = 20_250_101
BUCKET = "bench-corpus"
COLLECTION = "documents"
# One shard of a 64-way split of the key space: what a per-shard audit counts or scans.
SHARD_WIDTH = 65536 // 64
_WORDS = (
    "the quarterly filing notes that revenue from the storage segment grew while operating "
    "costs in the logistics division fell after the consolidation of regional warehouses and "
    "the renegotiation of freight contracts with two carriers; management expects margins to "
    "stay within the guided range"
)


def doc_key(d: int) -> str:
    return f"corpus/section-{d // 1000:04d}/report-{d:07d}.pdf"


def window_vectors(window: int) -> np.ndarray:
    """The unit vectors of window ``window`` (all of it; a last partial window uses a prefix)."""
    rng = np.random.default_rng([SEED, window])
    v = rng.standard_normal((WINDOW_POINTS, DIM), dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v


def document(d: int, vectors: np.ndarray, etag: str = "e1") -> DocumentPoints:
    key = doc_key(d)
    info = DocumentInfo(
        doc_id=document_id(BUCKET, key),
        bucket=BUCKET,
        key=key,
        etag=f"{etag}-{d:x}",
        size=250_000,
        last_modified="2025-03-01T12:00:00+00:00",
        format="pdf",
        title=f"Quarterly report {d}",
    )
    chunks = [
        Chunk(
            c, f"Report {d}, part {c}: {_WORDS}", 620 * c, 620 * c + 600, 250, c // 3 + 1, "Notes"
        )
        for c in range(len(vectors))
    ]
    return DocumentPoints(info, chunks, vectors)


def windows(
    points: int, first_doc: int = 0, seed_offset: int = 0
) -> Iterator[list[DocumentPoints]]:
    """The corpus of ``points`` points, one replace_documents call at a time."""
    for w in range(-(-points // WINDOW_POINTS)):
        n = min(WINDOW_POINTS, points - w * WINDOW_POINTS)
        vectors = window_vectors(seed_offset + w)[:n]
        first = first_doc + w * WINDOW_DOCS
        yield [
            document(first + i, vectors[i * CHUNKS_PER_DOC : (i + 1) * CHUNKS_PER_DOC])
            for i in range(-(-n // CHUNKS_PER_DOC))
        ]


def payload_bytes() -> int:
    doc = document(123_456, window_vectors(0)[:CHUNKS_PER_DOC])
    sizes = [len(json.dumps(payload(doc.info, c, CHUNKS_PER_DOC))) for c in doc.chunks]
    return round(sum(sizes) / len(sizes))


def _open(engine: str, path: Path) -> VectorStore:
    if engine == "edge":
        # The bench builds the index itself, to time it apart from close().
        return EdgeStore(path, indexing_threshold_points=None, max_segment_points=None)
    return open_vector_store(engine, path=path)


def _timed(fn: Callable[[], Any], repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def _searches(store: VectorStore, queries: np.ndarray) -> tuple[list[float], list[list[str]]]:
    times, ids = [], []
    for q in queries:
        started = time.perf_counter()
        hits = store.search(COLLECTION, q, 10)
        times.append((time.perf_counter() - started) * 1000)
        ids.append(
            [
                f"{h.payload['metadata']['doc_id']}#{h.payload['metadata']['chunk_index']}"
                for h in hits
            ]
        )
    return times, ids


def _recall(
    found: list[list[str]], truth: np.ndarray, labels: Callable[[int], str]
) -> tuple[float, float]:
    at1 = at10 = 0.0
    for got, want in zip(found, truth, strict=True):
        expected = [labels(int(p)) for p in want]
        at1 += float(bool(got) and got[0] == expected[0])
        at10 += len(set(got) & set(expected)) / len(expected)
    return at1 / len(found), at10 / len(found)


def point_label(p: int) -> str:
    """``doc_id#chunk`` of global point number ``p`` (what search results are matched by)."""
    return f"{document_id(BUCKET, doc_key(p // CHUNKS_PER_DOC))}#{p % CHUNKS_PER_DOC}"


def _index_status(store: VectorStore, prefix: str) -> dict[str, int]:
    if not isinstance(store, EdgeStore):
        return {}
    _, indexed, segments = store.index_status(COLLECTION)
    return {f"{prefix}indexed_vectors": indexed, f"{prefix}segments": segments}


def _disk_mb(path: Path) -> float:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with_path = os.path.join(root, name)
            if not os.path.islink(with_path):
                total += os.stat(with_path).st_blocks * 512
    return total / 1e6


def write_phase(
    engine: str, path: Path, points: int, queries: np.ndarray, truth: np.ndarray
) -> dict[str, Any]:
    """Load ``points`` points, index, search, count, replace, delete, close."""
    r: dict[str, Any] = {"engine": engine, "points": points, "payload_bytes": payload_bytes()}
    store = _open(engine, path)
    store.ensure_collection(COLLECTION, DIM)
    cpu = time.process_time()
    timings: list[tuple[int, float]] = []
    for window in windows(points):
        started = time.perf_counter()
        written = store.replace_documents(COLLECTION, window, BATCH).points_written
        timings.append((written, time.perf_counter() - started))
    r["upsert_points_per_s"] = points / sum(t for _, t in timings)
    r["upsert_points_per_cpu_s"] = points / (time.process_time() - cpu)
    tail = timings[-max(1, len(timings) // 10) :]
    r["upsert_last_tenth_points_per_s"] = sum(n for n, _ in tail) / sum(t for _, t in tail)
    r["count_after_write"] = store.count(COLLECTION)
    before, _ = _searches(store, queries[:20])
    r["search_before_index_p50_ms"] = _pct(before, 50)
    started, cpu = time.perf_counter(), time.process_time()
    r["optimize_built"] = store.optimize(COLLECTION)
    r["optimize_s"] = time.perf_counter() - started
    # CPU seconds of all the process's threads: comparable across runs on a busy machine.
    r["optimize_cpu_s"] = time.process_time() - cpu
    r |= _index_status(store, "")
    times, found = _searches(store, queries)
    r["search_p50_ms"], r["search_p95_ms"] = _pct(times, 50), _pct(times, 95)
    r["recall_at_1"], r["recall_at_10"] = _recall(found, truth, point_label)
    rng = np.random.default_rng(SEED)
    starts = rng.integers(0, 65536 - SHARD_WIDTH, 20)
    counts = [
        _timed(lambda s=s: store.count(COLLECTION, (int(s), int(s) + SHARD_WIDTH - 1)), 1)[0]
        for s in starts
    ]
    r["count_range_p50_ms"] = _pct(counts, 50)
    low = int(starts[0])
    started = time.perf_counter()
    per_doc = store.points_per_document(COLLECTION, key_hashes=(low, low + SHARD_WIDTH - 1))
    r["points_per_document_range_ms"] = (time.perf_counter() - started) * 1000
    r["points_per_document_range_points"] = sum(per_doc.values())
    docs = rng.choice(points // CHUNKS_PER_DOC, 70, replace=False)
    replaced = []
    for d in docs[:20]:
        new = document(int(d), window_vectors(10_000 + int(d))[:CHUNKS_PER_DOC], etag="e2")
        replaced += _timed(lambda new=new: store.replace_documents(COLLECTION, [new], BATCH), 1)
    r["replace_one_doc_p50_ms"] = _pct(replaced, 50)
    victims = [document_id(BUCKET, doc_key(int(d))) for d in docs[20:]]
    deletes = [_timed(lambda v=v: store.delete_documents(COLLECTION, [v]), 1)[0] for v in victims]
    r["delete_one_doc_p50_ms"], r["delete_one_doc_p95_ms"] = _pct(deletes, 50), _pct(deletes, 95)
    # A later, smaller run: 1% more points, then the index brought up to date again.
    extra = max(CHUNKS_PER_DOC, points // 100)
    for window in windows(extra, first_doc=points // CHUNKS_PER_DOC + 1, seed_offset=20_000):
        store.replace_documents(COLLECTION, window, BATCH)
    started = time.perf_counter()
    store.optimize(COLLECTION)
    r["optimize_incremental_s"] = time.perf_counter() - started
    r |= _index_status(store, "incremental_")
    times, _ = _searches(store, queries)
    r["search_incremental_p50_ms"] = _pct(times, 50)
    r["count_final"] = store.count(COLLECTION)
    started = time.perf_counter()
    store.close()
    r["close_s"] = time.perf_counter() - started
    r["writer_peak_rss_mb"] = proc_status_mb("VmHWM")
    r["disk_mb"] = _disk_mb(path)
    return r


def read_phase(engine: str, path: Path, queries: np.ndarray) -> dict[str, Any]:
    """A fresh process opening the store, as the search CLI does: open, first answer, searches."""
    r: dict[str, Any] = {}
    started = time.perf_counter()
    store = _open(engine, path)
    r["reopen_count"] = store.count(COLLECTION)
    r["reopen_s"] = time.perf_counter() - started
    started = time.perf_counter()
    store.search(COLLECTION, queries[0], 10)
    r["first_search_ms"] = (time.perf_counter() - started) * 1000
    times, _ = _searches(store, queries)
    r["reopened_search_p50_ms"] = _pct(times, 50)
    store.close()
    r["reader_peak_rss_mb"] = proc_status_mb("VmHWM")
    return r
