"""Qdrant Edge after a collection is written in pipeline-sized runs, its index built by the
maintenance step between them (review M5, issue 18 item 8).

    python -m bench.edge_index_backlog --points 49000 --run-points 7000 \
        --out bench/results/edge-index-backlog-49k.md

Each run opens the store, replaces its documents (random unit 384-d vectors, as the pipeline
writes a shard range's points) and closes it, as the ``qdrant_collection`` step does; its lock
hold is write + close, and close builds no index (the indexed count before and after close is
compared). After a run that leaves the unindexed backlog at ``indexing_threshold_points`` or
more, the maintenance step (``defs.maintenance.index``: open, optimize, close) builds it. Two
settings over the same points: Edge's own segment cap (``max_segment_points=None``: every build
merges the backlog into the one indexed segment) and a cap of ``--cap`` points (20,000: small
enough to show at 49k what any cap does; the default cap, 100,000, behaves as no cap below
it). Then k=10 search p50/p90 over 200 queries and recall@10 against exact search on 20 of
them. One repeat; the machine may be shared. ``bench/edge_segment_search.py`` measures search
over capped segments on its own.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.common import machine_info
from bench.vectorstore_workload import CHUNKS_PER_DOC, DIM, document
from rag_ingest.core.vectorstore.edge import EdgeStore


@dataclass
class Run:
    write_s: float
    close_s: float
    indexed_in_close: int  # vectors close() indexed: the index work a writer's lock covers
    backlog: int
    build_s: float | None = None  # the maintenance step after this run, if it was wanted
    backlog_before: int = 0
    backlog_after: int = 0
    segments: int = 0


def _vectors(points: int) -> np.ndarray:
    v = np.random.default_rng(11).standard_normal((points, DIM), dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def scenario(
    folder: Path, every: np.ndarray, run_points: int, cap: int | None
) -> tuple[list[Run], tuple[int, int, int], float, float, float]:
    runs: list[Run] = []
    for start in range(0, len(every), run_points):
        part = every[start : start + run_points]
        first_doc = start // CHUNKS_PER_DOC
        docs = [
            document(first_doc + i, part[i * CHUNKS_PER_DOC : (i + 1) * CHUNKS_PER_DOC])
            for i in range(-(-len(part) // CHUNKS_PER_DOC))
        ]
        store = EdgeStore(folder, max_segment_points=cap)
        store.ensure_collection("c", DIM)
        indexed_before = store.index_status("c")[1]
        t0 = time.perf_counter()
        store.replace_documents("c", docs)
        t1 = time.perf_counter()
        store.close()
        t2 = time.perf_counter()
        with EdgeStore(folder, max_segment_points=cap) as probe:
            points, indexed, _ = probe.index_status("c")
            wanted = probe.needs_index("c")
        run = Run(t1 - t0, t2 - t1, indexed - indexed_before, points - indexed)
        if wanted:  # the maintenance step, as the sensor would request it
            t3 = time.perf_counter()
            with EdgeStore(folder, max_segment_points=cap) as maint:
                maint.optimize("c")
                after = maint.index_status("c")
            run.build_s = time.perf_counter() - t3
            run.backlog_before, run.backlog_after = run.backlog, after[0] - after[1]
            run.segments = after[2]
        runs.append(run)
        print(run, flush=True)
    rng = np.random.default_rng(5)
    queries = rng.standard_normal((200, DIM), dtype=np.float32)
    with EdgeStore(folder) as store:
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
    parser.add_argument("--points", type=int, default=49_000)
    parser.add_argument("--run-points", type=int, default=7_000)
    parser.add_argument("--cap", type=int, default=20_000)
    parser.add_argument(
        "--only-capped", action="store_true", help="skip the uncapped setting (slow at 1M)"
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    every = _vectors(args.points)
    lines = [
        f"# Edge after {args.points:,} points written in runs of {args.run_points:,}, "
        "indexed by the maintenance step",
        "",
        "One repeat. `python -m bench.edge_index_backlog --points "
        f"{args.points} --run-points {args.run_points} --cap {args.cap}"
        f"{' --only-capped' if args.only_capped else ''}`.",
        "; ".join(f"{k}: {v}" for k, v in machine_info().items()),
        "",
        "Writer lock hold = write s + close s; *indexed in close* is the index work inside it.",
        "*build s*: the maintenance step (open, optimize, close) after that run, when the",
        "backlog had reached the threshold; writers wait for it on the folder lock.",
        "",
    ]
    settings = (("Edge's segment cap", None), ("capped", args.cap))[args.only_capped :]
    for label, cap in settings:
        folder = Path(tempfile.mkdtemp(prefix="edge-backlog-"))
        try:
            runs, status, p50, p90, recall = scenario(folder, every, args.run_points, cap)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        lines += [
            f"## {label}: max_segment_points={cap}",
            "",
            "| run | write s | close s | indexed in close | backlog after run "
            "| build s | backlog before → after build | segments |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for i, r in enumerate(runs, 1):
            build = (
                f"{r.build_s:.2f} | {r.backlog_before:,} → {r.backlog_after:,} | {r.segments}"
                if r.build_s is not None
                else "– | – | –"
            )
            lines.append(
                f"| {i} | {r.write_s:.2f} | {r.close_s:.2f} | {r.indexed_in_close:,} "
                f"| {r.backlog:,} | {build} |"
            )
        builds = [r.build_s for r in runs if r.build_s is not None]
        lines += [
            "",
            f"points {status[0]:,}, indexed {status[1]:,}, segments {status[2]}; "
            f"k=10 search p50 {p50:.2f} ms, p90 {p90:.2f} ms; recall@10 {recall:.2f}; "
            f"total write {sum(r.write_s for r in runs):.1f} s, "
            f"total close {sum(r.close_s for r in runs):.1f} s, "
            f"builds {len(builds)} totalling {sum(builds):.1f} s "
            f"(largest {max(builds, default=0):.1f} s)",
            "",
        ]
        print("\n".join(lines[-6 - len(runs) :]), flush=True)
    text = "\n".join(lines)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
