"""Qdrant Edge k=10 search over capped segments against one merged segment, same points.

    python -m bench.edge_segment_search --points 42000 --step 14000 --cap 20000

Writes ``--points`` random unit 384-d vectors in runs of ``--step``, builds the index after each
(as the maintenance step does), once with segments capped at ``--cap`` points (one indexed
segment per step) and once with Edge's own cap (every build merges into one segment); prints
each build's seconds and the search p50 of three passes of 200 queries. One repeat.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.vectorstore_workload import CHUNKS_PER_DOC, DIM, document
from rag_ingest.core.vectorstore.edge import EdgeStore


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=42_000)
    parser.add_argument("--step", type=int, default=14_000)
    parser.add_argument("--cap", type=int, default=20_000)
    args = parser.parse_args()
    v = np.random.default_rng(11).standard_normal((args.points, DIM), dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    queries = np.random.default_rng(5).standard_normal((200, DIM), dtype=np.float32)
    for cap in (args.cap, None):
        folder = Path(tempfile.mkdtemp(prefix="edge-segments-"))
        builds = []
        try:
            for start in range(0, args.points, args.step):
                part, first = v[start : start + args.step], start // CHUNKS_PER_DOC
                docs = [
                    document(first + i, part[i * CHUNKS_PER_DOC : (i + 1) * CHUNKS_PER_DOC])
                    for i in range(len(part) // CHUNKS_PER_DOC)
                ]
                with EdgeStore(folder, max_segment_points=cap) as store:
                    store.ensure_collection("c", DIM)
                    store.replace_documents("c", docs)
                t = time.perf_counter()
                with EdgeStore(folder, max_segment_points=cap) as store:
                    store.optimize("c")
                builds.append(round(time.perf_counter() - t, 1))
            with EdgeStore(folder) as store:
                status = store.index_status("c")
                p50s = []
                for _ in range(3):
                    times = []
                    for q in queries:
                        t = time.perf_counter()
                        store.search("c", q, 10)
                        times.append(time.perf_counter() - t)
                    p50s.append(round(float(np.percentile(times, 50)) * 1000, 2))
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        print(f"cap={cap} (points, indexed, segments)={status} build s={builds} p50 ms={p50s}")


if __name__ == "__main__":
    main()
