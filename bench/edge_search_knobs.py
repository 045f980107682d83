"""Qdrant Edge's search knobs side by side, on collections written in default-size runs and
indexed by the maintenance step between them (issue 18, the Edge bar).

    python -m bench.edge_search_knobs --points 74000 --out bench/results/edge-search-knobs.md

Vectors are synthetic but clustered like sentence embeddings (unit 384-d points around 2,000
topic centres, a held-out point of the same topics as each query), so HNSW recall is what real
text gives rather than the uniform-random worst case. For each collection setting (int8
quantization on or off, segment cap) the collection is written in runs of ``--run-points``
(7,400: what the default run writes), each run opening the store, replacing its documents and
closing it as the ``qdrant_collection`` step does; after any run that leaves the unindexed
backlog at the threshold, the maintenance step (open, optimize, close) builds it. Per run: write
seconds, close seconds and vectors indexed inside close (the index work a writer's lock covers),
and the build's seconds. Then, on the finished collection, each search setting (beam width,
oversampling of int8 candidates before the rescore): k=10 p50/p95 wall
and process CPU (all threads) over ``--queries`` queries, and recall@10 against exact search
over every point on ``--recall-queries`` of them; ``--probe-every N`` also searches with the
store's defaults every N points written. One repeat; the machine may be shared.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import qdrant_edge as qe

from bench.common import machine_info
from bench.vectorstore_workload import CHUNKS_PER_DOC, DIM, document
from rag_ingest.core.vectorstore.edge import EdgeStore

TOPICS = 2_000
# Spread of a point around its topic centre: neighbours at cosine ~0.6-0.8, as MiniLM gives
# paragraphs of one subject.
SPREAD = 0.07


@dataclass(frozen=True)
class Setting:
    label: str
    quantize: bool
    cap: int


@dataclass(frozen=True)
class Knob:
    label: str
    hnsw_ef: int | None
    oversampling: float | None
    # Search the same graph on the float vectors alone: isolates what the int8 codes change.
    ignore_codes: bool = False


@dataclass
class Run:
    write_s: float
    close_s: float
    indexed_in_close: int
    build_s: float | None = None


@dataclass
class Outcome:
    setting: Setting
    runs: list[Run]
    status: tuple[int, int, int]
    rows: list[tuple[str, float, float, float, float, float]] = field(default_factory=list)
    checkpoints: list[str] = field(default_factory=list)


def clustered(points: int, queries: int, seed: int = 11) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((TOPICS, DIM), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)

    def around(n: int) -> np.ndarray:
        v = centres[rng.integers(0, TOPICS, n)]
        v = v + rng.standard_normal((n, DIM), dtype=np.float32) * SPREAD
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    return around(points), around(queries)


def _store(folder: Path, setting: Setting, knob: Knob | None = None) -> EdgeStore:
    return EdgeStore(
        folder,
        quantize=setting.quantize,
        max_segment_points=setting.cap,
        hnsw_ef=None if knob is None else knob.hnsw_ef,
        oversampling=None if knob is None else knob.oversampling,
    )


def checkpoint(folder: Path, setting: Setting, every: np.ndarray, queries: np.ndarray) -> str:
    """Search with the store's defaults over what is written so far (a cut-off run keeps it)."""
    row = measure(folder, setting, Knob("defaults", None, 2.0), every, queries[:100], 20)
    with _store(folder, setting) as store:
        status = store.index_status("c")
    return (
        f"| {status[0]:,} | {status[1]:,} | {status[2]} | {row[1]:.2f} | {row[2]:.2f} "
        f"| {row[3]:.2f} | {row[5]:.3f} |"
    )


def write(
    folder: Path,
    every: np.ndarray,
    run_points: int,
    setting: Setting,
    queries: np.ndarray,
    probe_every: int,
    checkpoints: list[str],
) -> list[Run]:
    runs = []
    for start in range(0, len(every), run_points):
        part, first = every[start : start + run_points], start // CHUNKS_PER_DOC
        docs = [
            document(first + i, part[i * CHUNKS_PER_DOC : (i + 1) * CHUNKS_PER_DOC])
            for i in range(-(-len(part) // CHUNKS_PER_DOC))
        ]
        store = _store(folder, setting)
        store.ensure_collection("c", DIM)
        indexed_before = store.index_status("c")[1]
        t0 = time.perf_counter()
        store.replace_documents("c", docs)
        t1 = time.perf_counter()
        store.close()
        run = Run(t1 - t0, time.perf_counter() - t1, 0)
        with _store(folder, setting) as probe:
            run.indexed_in_close = probe.index_status("c")[1] - indexed_before
            wanted = probe.needs_index("c")
        if wanted:  # the maintenance step, as the sensor would request it
            t2 = time.perf_counter()
            with _store(folder, setting) as maint:
                maint.optimize("c")
            run.build_s = time.perf_counter() - t2
        runs.append(run)
        print(setting.label, len(runs), run, flush=True)
        done = start + len(part)
        if probe_every and (done // probe_every > start // probe_every or done == len(every)):
            checkpoints.append(checkpoint(folder, setting, every[:done], queries))
            print("checkpoint", checkpoints[-1], flush=True)
    return runs


def _index(hit_payload: dict) -> int:
    meta = hit_payload["metadata"]
    doc = int(meta["key"].rsplit("-", 1)[1].split(".")[0])
    return doc * CHUNKS_PER_DOC + int(meta["chunk_index"])


def measure(
    folder: Path,
    setting: Setting,
    knob: Knob,
    every: np.ndarray,
    queries: np.ndarray,
    n_recall: int,
) -> tuple[str, float, float, float, float, float]:
    with _store(folder, setting, knob) as store:
        if knob.ignore_codes:  # no store option for it: rag-ingest never searches this way
            store._search_params = qe.SearchParams(
                hnsw_ef=knob.hnsw_ef, quantization=qe.QuantizationSearchParams(ignore=True)
            )
        for q in queries[:20]:  # warm the segments' pages
            store.search("c", q, 10)
        wall, cpu = [], []
        for q in queries:
            w, c = time.perf_counter(), time.process_time()
            store.search("c", q, 10)
            cpu.append(time.process_time() - c)
            wall.append(time.perf_counter() - w)
        recall = []
        for q in queries[:n_recall]:
            exact = set(np.argpartition(-(every @ q), 10)[:10].tolist())
            found = {_index(h.payload) for h in store.search("c", q, 10)}
            recall.append(len(exact & found) / 10)
    p50, p95 = np.percentile(np.array(wall) * 1000, [50, 95])
    c50, c95 = np.percentile(np.array(cpu) * 1000, [50, 95])
    return knob.label, float(p50), float(p95), float(c50), float(c95), float(np.mean(recall))


KNOBS = (
    Knob("Edge default beam, no oversampling", None, None),
    Knob("beam 64", 64, None),
    Knob("oversampling 1", None, 1.0),
    Knob("oversampling 2 (the default)", None, 2.0),
    Knob("oversampling 3", None, 3.0),
    Knob("beam 64, oversampling 2", 64, 2.0),
    Knob("beam 128, oversampling 2", 128, 2.0),
    Knob("int8 codes ignored (float vectors only)", None, None, ignore_codes=True),
    Knob("int8 codes ignored, beam 64", 64, None, ignore_codes=True),
)


def report(args: argparse.Namespace, outcomes: list[Outcome]) -> list[str]:
    lines = [
        f"# Edge search knobs at {args.points:,} points written in runs of {args.run_points:,}",
        "",
        "One repeat. `python -m bench.edge_search_knobs --points "
        f"{args.points} --run-points {args.run_points}`.",
        "; ".join(f"{k}: {v}" for k, v in args.machine.items()),
        "",
        f"Clustered synthetic unit vectors ({TOPICS:,} topics, spread {SPREAD}); "
        f"{args.queries} queries (held-out points of the same topics), recall@10 against exact "
        f"search over every point on {args.recall_queries} of them. CPU = process CPU time of "
        "the search (all of Edge's threads); wall = its elapsed time.",
        "",
    ]
    for o in outcomes:
        holds = [(r.write_s + r.close_s) / r.write_s for r in o.runs[:-1]]  # last run is partial
        builds = [r.build_s for r in o.runs if r.build_s is not None]
        write_total = sum(r.write_s for r in o.runs)
        lines += [
            f"## {o.setting.label}: quantize={o.setting.quantize}, "
            f"max_segment_points={o.setting.cap:,}",
            "",
            f"(points, indexed, segments) = {o.status}. Writer runs: {len(o.runs)}; lock hold "
            f"(write + close) / write: max {max(holds):.2f}, median {np.median(holds):.2f}; "
            f"vectors indexed inside any close: {sum(r.indexed_in_close for r in o.runs)}. "
            f"Maintenance builds: {len(builds)}, total {sum(builds):.1f} s, largest "
            f"{max(builds, default=0):.1f} s (writing all runs took {write_total:.1f} s).",
            "",
        ]
        if o.checkpoints:
            lines += [
                "Along the way (store defaults; 100 queries, recall on 20):",
                "",
                "| points | indexed | segments | p50 ms | p95 ms | CPU p50 ms | recall@10 |",
                "|---:|---:|---:|---:|---:|---:|---:|",
                *o.checkpoints,
                "",
            ]
        lines += [
            "| search setting | p50 ms | p95 ms | CPU p50 ms | CPU p95 ms | recall@10 |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {label} | {p50:.2f} | {p95:.2f} | {c50:.2f} | {c95:.2f} | {recall:.3f} |"
            for label, p50, p95, c50, c95, recall in o.rows
        ]
        lines.append("")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=74_000)
    parser.add_argument("--run-points", type=int, default=7_400)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--recall-queries", type=int, default=100)
    parser.add_argument("--settings", default="new,old")
    parser.add_argument(
        "--probe-every", type=int, default=0, help="search with the defaults every N points"
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    args.machine = machine_info()  # load average at the start, not at the report
    every, queries = clustered(args.points, args.queries)
    settings = {
        "old": Setting("old defaults", False, 100_000),
        "int8": Setting("int8, cap 100k (the defaults)", True, 100_000),
        "cap": Setting("cap only", False, 250_000),
        "new": Setting("int8, cap 250k", True, 250_000),
        "int8-25k": Setting("int8, cap 25k (segment count)", True, 25_000),
    }
    outcomes = []
    for key in args.settings.split(","):
        setting = settings[key]
        folder = Path(tempfile.mkdtemp(prefix="edge-knobs-"))
        try:
            checkpoints: list[str] = []
            runs = write(
                folder, every, args.run_points, setting, queries, args.probe_every, checkpoints
            )
            with _store(folder, setting) as store:
                status = store.index_status("c")
            outcome = Outcome(setting, runs, status, checkpoints=checkpoints)
            for knob in KNOBS:
                if not setting.quantize and (knob.oversampling or knob.ignore_codes):
                    continue
                outcome.rows.append(
                    measure(folder, setting, knob, every, queries, args.recall_queries)
                )
                print(setting.label, outcome.rows[-1], flush=True)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        outcomes.append(outcome)
        lines = report(args, outcomes)
        if args.out:  # after each setting, so a cut-off run keeps what it measured
            args.out.write_text("\n".join(lines))
    print("\n".join(report(args, outcomes)))


if __name__ == "__main__":
    main()
