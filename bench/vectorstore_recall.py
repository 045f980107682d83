"""How much of the exact top 10 Qdrant Edge's HNSW search finds, by search beam width (hnsw_ef).

    python -m bench.vectorstore_recall --out bench/results/vectorstore_recall.md

Two point sets: random unit vectors (the main benchmark's, the hardest case for any graph
index: every point is about as far from a query as every other) and all-MiniLM-L6-v2 embeddings
of the benchmark corpus's paragraphs, queried with sentences from held-out documents.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import machine_info
from bench.corpus import make_document
from bench.vectorstore_workload import COLLECTION, DIM, document, window_vectors
from rag_ingest.core.vectorstore.edge import EdgeStore

CORPUS_SEED = 7

EFS = (None, 128, 256, 512)


def _paragraphs(index: int) -> list[str]:
    doc = make_document(CORPUS_SEED, index)
    if doc.fmt not in ("txt", "md"):
        return []
    blocks = doc.body.decode().split("\n\n")[1:]  # the first is the title
    return [b for b in blocks if not b.startswith("#")]


def corpus_texts(paragraphs: int, queries: int) -> tuple[list[str], list[str]]:
    """Paragraphs of the benchmark corpus, and first sentences of documents not among them."""
    texts: list[str] = []
    index = 0
    while len(texts) < paragraphs:
        texts += _paragraphs(index)
        index += 1
    asked: list[str] = []
    while len(asked) < queries:
        asked += [re.split(r"(?<=[.?!]) ", p)[0] for p in _paragraphs(index)[:1]]
        index += 1
    return texts[:paragraphs], asked


def random_set(points: int, queries: int) -> tuple[np.ndarray, np.ndarray]:
    rows = -(-points // 4096)
    vectors = np.concatenate([window_vectors(50_000 + w) for w in range(rows)])[:points]
    rng = np.random.default_rng(5)
    q = vectors[rng.choice(points, queries, replace=False)]
    q = q + 0.5 * rng.standard_normal(q.shape).astype(np.float32) / np.sqrt(DIM)
    return vectors, q / np.linalg.norm(q, axis=1, keepdims=True)


def minilm_set(points: int, queries: int) -> tuple[np.ndarray, np.ndarray]:
    from rag_ingest.core.text.encoder import shared_encoder

    texts, asked = corpus_texts(points, queries)
    encoder = shared_encoder()
    return encoder.encode(texts), encoder.encode(asked)


def recall_by_ef(vectors: np.ndarray, queries: np.ndarray, work: Path) -> list[str]:
    """Load ``vectors`` into an Edge store, build the index, then search at each ef."""
    truth = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    chunks = 8
    with EdgeStore(work, indexing_threshold_points=None, max_segment_points=None) as store:
        store.ensure_collection(COLLECTION, DIM)
        docs = [
            document(d, vectors[d * chunks : (d + 1) * chunks])
            for d in range(-(-len(vectors) // chunks))
        ]
        for i in range(0, len(docs), 512):
            store.replace_documents(COLLECTION, docs[i : i + 512])
        started, cpu = time.perf_counter(), time.process_time()
        store.optimize(COLLECTION)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    label = {
        (d.info.doc_id, c): n * chunks + c for n, d in enumerate(docs) for c in range(len(d.chunks))
    }
    rows = [f"Index build: {wall:,.1f} s wall, {cpu:,.1f} s CPU (all threads).", ""]
    rows += ["| hnsw_ef | recall@10 | p50 (ms) | p95 (ms) |", "|---|---|---|---|"]
    for ef in EFS:
        with EdgeStore(work, hnsw_ef=ef) as store:
            times, hits = [], 0.0
            for q, want in zip(queries, truth, strict=True):
                started = time.perf_counter()
                found = store.search(COLLECTION, q, 10)
                times.append((time.perf_counter() - started) * 1000)
                metas = [h.payload["metadata"] for h in found]
                got = {label[m["doc_id"], m["chunk_index"]] for m in metas}
                hits += len(got & set(want.tolist())) / 10
        p50, p95 = np.percentile(times, [50, 95])
        rows.append(f"| {ef or 'default'} | {hits / len(queries):.3f} | {p50:.2f} | {p95:.2f} |")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--random-points", type=int, default=200_000)
    parser.add_argument("--minilm-points", type=int, default=20_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path("bench/results/vectorstore_recall.md"))
    argv = list(argv if argv is not None else sys.argv[1:])
    args = parser.parse_args(argv)
    info = machine_info()
    lines = ["# Qdrant Edge: recall@10 of HNSW search against exact, by hnsw_ef", ""]
    load = info["load average (1/5/15 min) at start"]
    lines += [f"Machine: {info['cpu']}, {info['cores']} cores, {info['ram']}; load {load}.", ""]
    lines += [f"Command: `python -m bench.vectorstore_recall {' '.join(argv or [])}`", ""]
    sets = (
        ("random unit vectors", args.random_points, random_set),
        (
            "MiniLM embeddings of corpus paragraphs, sentence queries",
            args.minilm_points,
            minilm_set,
        ),
    )
    for name, points, make in sets:
        work = Path(tempfile.mkdtemp(prefix="recall-"))
        try:
            vectors, queries = make(points, args.queries)
            lines += [f"## {name}: {len(vectors):,} points, {len(queries)} queries", ""]
            lines += recall_by_ef(vectors, queries, work / "store")
            lines += [""]
        finally:
            shutil.rmtree(work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
