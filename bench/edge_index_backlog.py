"""Qdrant Edge search latency after a collection is written in pipeline-sized runs (review M5).

    python -m bench.edge_index_backlog --points 50000 --run-points 7000 \
        --out bench/results/edge-index-backlog-50k.md

Each run opens the store, replaces its documents (random unit 384-d vectors, as the pipeline
writes a shard range's points) and closes it, as the ``qdrant_collection`` step does. Two
settings over the same points: ``auto_optimize_points=None`` (what close() did before at any
run size under 10,000 points: never build the index) and the default backlog rule. Reported:
per run, the write (replace_documents) and close (flush + any index build) seconds, which the
run spends holding the folder lock; then k=10 search p50/p90 over 200 queries and recall@10
against exact search on 20 of them. One repeat; the machine may be shared.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import machine_info
from bench.vectorstore_workload import CHUNKS_PER_DOC, DIM, document
from rag_ingest.core.vectorstore.edge import DEFAULT_AUTO_OPTIMIZE_POINTS, EdgeStore


def _vectors(points: int) -> np.ndarray:
    v = np.random.default_rng(11).standard_normal((points, DIM), dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def scenario(
    folder: Path, every: np.ndarray, run_points: int, auto: int | None
) -> tuple[list[tuple[float, float, int]], tuple[int, int, int], float, float, float]:
    runs = []
    for start in range(0, len(every), run_points):
        part = every[start : start + run_points]
        first_doc = start // CHUNKS_PER_DOC
        docs = [
            document(first_doc + i, part[i * CHUNKS_PER_DOC : (i + 1) * CHUNKS_PER_DOC])
            for i in range(-(-len(part) // CHUNKS_PER_DOC))
        ]
        store = EdgeStore(folder, auto_optimize_points=auto)
        store.ensure_collection("c", DIM)
        t0 = time.perf_counter()
        store.replace_documents("c", docs)
        t1 = time.perf_counter()
        store.close()
        t2 = time.perf_counter()
        with EdgeStore(folder, auto_optimize_points=None) as probe:
            backlog = probe.index_status("c")
        runs.append((t1 - t0, t2 - t1, backlog[0] - backlog[1]))
    rng = np.random.default_rng(5)
    queries = rng.standard_normal((200, DIM), dtype=np.float32)
    with EdgeStore(folder, auto_optimize_points=None) as store:
        status = store.index_status("c")
        store.search("c", queries[0], 10)  # warm
        times = []
        for q in queries:
            t = time.perf_counter()
            store.search("c", q, 10)
            times.append(time.perf_counter() - t)
        recall = []
        for q in queries[:20]:
            exact = set(np.argsort(-(every @ q))[:10].tolist())
            got = store.search("c", q, 10)
            found = {
                int(h.payload["metadata"]["chunk_index"])
                + CHUNKS_PER_DOC * int(h.payload["metadata"]["key"].rsplit("-", 1)[1].split(".")[0])
                for h in got
            }
            recall.append(len(exact & found) / 10)
    p50, p90 = np.percentile(np.array(times) * 1000, [50, 90])
    return runs, status, float(p50), float(p90), float(np.mean(recall))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=50_000)
    parser.add_argument("--run-points", type=int, default=7_000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    every = _vectors(args.points)
    lines = [
        f"# Edge search after {args.points:,} points written in runs of {args.run_points:,}",
        "",
        "One repeat. `python -m bench.edge_index_backlog --points "
        f"{args.points} --run-points {args.run_points}`.",
        "; ".join(f"{k}: {v}" for k, v in machine_info().items()),
        "",
    ]
    for label, auto in (("before (never built)", None), ("after", DEFAULT_AUTO_OPTIMIZE_POINTS)):
        folder = Path(tempfile.mkdtemp(prefix="edge-backlog-"))
        try:
            runs, status, p50, p90, recall = scenario(folder, every, args.run_points, auto)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        lines += [
            f"## {label}: auto_optimize_points={auto}",
            "",
            "| run | write s | close s (flush + index) | unindexed after |",
            "|---:|---:|---:|---:|",
        ]
        lines += [f"| {i} | {w:.2f} | {c:.2f} | {b:,} |" for i, (w, c, b) in enumerate(runs, 1)]
        lines += [
            "",
            f"points {status[0]:,}, indexed {status[1]:,}, segments {status[2]}; "
            f"k=10 search p50 {p50:.2f} ms, p90 {p90:.2f} ms; recall@10 {recall:.2f}; "
            f"total write {sum(r[0] for r in runs):.1f} s, "
            f"total close {sum(r[1] for r in runs):.1f} s",
            "",
        ]
        print("\n".join(lines[-8 - len(runs) :]), flush=True)
    text = "\n".join(lines)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
