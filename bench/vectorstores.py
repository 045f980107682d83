"""Qdrant Edge against qdrant-client's local mode, side by side, up to a million points.

    python -m bench.vectorstores --points 1000000 --out bench/results/vectorstores.md

Every (engine, size) runs in fresh child processes, one at a time: a writer (load, index,
search, count, replace, delete, close; its VmHWM is the writer's peak RSS) and then a reader
(reopen and search, as the search CLI would). Local mode is measured at ``--local-points`` only:
it keeps every point in Python objects and searches by brute force, so a million points would
take most of an hour and tens of GB; its million-point column is a labelled extrapolation.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import REPO, machine_info
from bench.vectorstore_workload import (
    DIM,
    SEED,
    WINDOW_POINTS,
    read_phase,
    window_vectors,
    write_phase,
)

QUERY_NOISE = 0.5  # a query sits near one stored chunk (cosine ≈ 0.9), as a paraphrase would


def queries_and_truth(points: int, n: int, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """``n`` queries near random stored points, and their exact top ``k`` point numbers."""
    rng = np.random.default_rng([SEED, points])
    sources = rng.choice(points, n, replace=False)
    queries = np.stack(
        [window_vectors(int(p) // WINDOW_POINTS)[int(p) % WINDOW_POINTS] for p in sources]
    )
    queries += QUERY_NOISE * rng.standard_normal(queries.shape).astype(np.float32) / np.sqrt(DIM)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    best_s = np.full((n, k), -np.inf, dtype=np.float32)
    best_i = np.zeros((n, k), dtype=np.int64)
    for w in range(-(-points // WINDOW_POINTS)):
        v = window_vectors(w)[: min(WINDOW_POINTS, points - w * WINDOW_POINTS)]
        sims = queries @ v.T
        all_s = np.concatenate([best_s, sims], axis=1)
        all_i = np.concatenate(
            [best_i, np.arange(len(v))[None, :].repeat(n, 0) + w * WINDOW_POINTS], axis=1
        )
        top = np.argsort(-all_s, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(all_s, top, 1), np.take_along_axis(all_i, top, 1)
    return queries.astype(np.float32), best_i


def _child(args: argparse.Namespace) -> int:
    work = Path(args.workdir)
    data = np.load(work / f"queries-{args.points}.npz")
    store = work / f"{args.engine}-{args.points}"
    if args.child == "write":
        shutil.rmtree(store, ignore_errors=True)
        result = write_phase(args.engine, store, args.points, data["queries"], data["truth"])
    else:
        result = read_phase(args.engine, store, data["queries"])
    (work / f"{args.engine}-{args.points}-{args.child}.json").write_text(json.dumps(result))
    return 0


def _run(work: Path, engine: str, points: int, reuse: bool) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for phase in ("write", "read"):
        out = work / f"{engine}-{points}-{phase}.json"
        if not (reuse and out.exists()):
            cmd = [sys.executable, "-m", "bench.vectorstores", "--child", phase]
            cmd += ["--engine", engine, "--points", str(points), "--workdir", str(work)]
            started = time.monotonic()
            print(f"{engine} {points:,} {phase} …", flush=True)
            subprocess.run(cmd, check=True, cwd=REPO)
            took = time.monotonic() - started
            print(f"  done in {took:,.0f}s", flush=True)
            out.write_text(json.dumps(json.loads(out.read_text()) | {f"{phase}_wall_s": took}))
        result |= json.loads(out.read_text())
    return result


ROWS: list[tuple[str, str, str, str]] = [
    # label, key, format, scaling used to extrapolate local mode (see _extrapolate; "none":
    # neither extrapolated nor compared as a ratio)
    ("upsert via replace_documents (points/s)", "upsert_points_per_s", "{:,.0f}", "power"),
    ("… last 10% of the load (points/s)", "upsert_last_tenth_points_per_s", "{:,.0f}", "power"),
    ("… per CPU-second of the writer (points)", "upsert_points_per_cpu_s", "{:,.0f}", "power"),
    ("index build: optimize() (s)", "optimize_s", "{:,.1f}", "none"),
    ("… CPU time of it, all threads (s)", "optimize_cpu_s", "{:,.1f}", "none"),
    ("segments after it", "segments", "{:,}", "none"),
    ("search before the index, p50 (ms)", "search_before_index_p50_ms", "{:,.1f}", "linear"),
    ("search k=10, p50 (ms)", "search_p50_ms", "{:,.2f}", "linear"),
    ("search k=10, p95 (ms)", "search_p95_ms", "{:,.2f}", "linear"),
    ("recall@1 vs exact", "recall_at_1", "{:.3f}", "none"),
    ("recall@10 vs exact", "recall_at_10", "{:.3f}", "none"),
    ("count of a key_hash range (1/64), p50 (ms)", "count_range_p50_ms", "{:,.2f}", "linear"),
    ("points_per_document of that range (ms)", "points_per_document_range_ms", "{:,.0f}", "linear"),
    ("replace one document (8 points), p50 (ms)", "replace_one_doc_p50_ms", "{:,.1f}", "linear"),
    ("delete one document by doc_id, p50 (ms)", "delete_one_doc_p50_ms", "{:,.1f}", "linear"),
    ("delete one document by doc_id, p95 (ms)", "delete_one_doc_p95_ms", "{:,.1f}", "linear"),
    ("+1% more points, then optimize() (s)", "optimize_incremental_s", "{:,.1f}", "none"),
    ("segments after it", "incremental_segments", "{:,}", "none"),
    ("search k=10 after it, p50 (ms)", "search_incremental_p50_ms", "{:,.2f}", "linear"),
    ("close, incl. flush (s)", "close_s", "{:,.2f}", "linear"),
    ("reopen in a new process, to first count (s)", "reopen_s", "{:,.2f}", "linear"),
    ("search after reopen, p50 (ms)", "reopened_search_p50_ms", "{:,.2f}", "linear"),
    ("writer peak RSS, VmHWM (MB)", "writer_peak_rss_mb", "{:,.0f}", "linear"),
    ("reader peak RSS, VmHWM (MB)", "reader_peak_rss_mb", "{:,.0f}", "linear"),
    ("disk (MB)", "disk_mb", "{:,.0f}", "linear"),
]


def _extrapolate(runs: dict[int, dict[str, Any]], key: str, how: str, points: int) -> float | None:
    """Local mode at ``points`` from its two largest measured sizes: a straight line through
    them (``linear``: brute-force times, memory, disk), or a power law through them
    (``power``: throughput, which falls as each write's filtered count scans more points)."""
    sizes = sorted(runs)[-2:]
    if how == "none" or len(sizes) < 2:
        return None
    (n1, n2), (y1, y2) = sizes, (runs[sizes[0]].get(key), runs[sizes[1]].get(key))
    if y1 is None or y2 is None:
        return None
    if how == "power":
        return float(y2 * (points / n2) ** (math.log(y2 / y1) / math.log(n2 / n1)))
    return max(0.0, float(y2 + (y2 - y1) / (n2 - n1) * (points - n2)))


def _header(
    args: argparse.Namespace, info: dict[str, str], payload: int, wall_s: float
) -> list[str]:
    from importlib.metadata import version

    machine = {k: v for k, v in info.items() if k in _MACHINE_KEYS}
    if not args.reuse:
        machine["load average (1/5/15 min) at end"] = " / ".join(
            f"{x:.2f}" for x in os.getloadavg()
        )
    machine |= {dist: version(dist) for dist in ("qdrant-client", "qdrant-edge-py", "numpy")}
    lines = ["# Vector stores: Qdrant Edge vs qdrant-client local mode", ""]
    lines += [f"Command: `python -m bench.vectorstores {' '.join(args.argv)}`", ""]
    if args.reuse:
        lines += [
            "(`--reuse`: the figures are those an earlier invocation left in `--workdir`.)",
            "",
        ]
    lines += [f"Wall time of the child processes: {wall_s / 60:,.0f} min.", ""]
    lines += ["| machine | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in machine.items()]
    lines += [
        "",
        f"Corpus: {DIM}-d random unit float32 vectors, 8 chunks per document, payloads of "
        f"≈ {payload} bytes of JSON (LangChain shape, as `payload()` writes them), loaded "
        "through `replace_documents` in windows of 4,096 points and upserts of 256. Queries: "
        f"{args.queries} stored vectors plus noise (cosine ≈ 0.9 to their source); exact "
        "neighbours by numpy. Each column is a fresh writer process, then a fresh reader.",
        "",
    ]
    return lines


_MACHINE_KEYS = (
    "cpu",
    "cores",
    "ram",
    "python",
    "platform",
    "load average (1/5/15 min) at start",
    "load average (1/5/15 min) at end",
)


def _columns(
    edge: dict[int, dict[str, Any]], local: dict[int, dict[str, Any]]
) -> list[tuple[str, Callable[[str, str], float | None]]]:
    """(heading, value of (key, scaling)) per column: measured, ratio, extrapolated."""
    cols: list[tuple[str, Callable[[str, str], float | None]]] = []
    for n in sorted(set(edge) | set(local)):
        if n in local:
            cols.append((f"local {n:,}", lambda key, _, n=n: local[n].get(key)))
        if n in edge:
            cols.append((f"Edge {n:,}", lambda key, _, n=n: edge[n].get(key)))
        if n in local and n in edge:
            cols.append(
                (f"Edge ÷ local {n:,}", lambda key, how, n=n: _ratio(edge[n], local[n], key, how))
            )
    big = max(edge)
    if big not in local and len(local) >= 2:
        cols.append(
            (f"local {big:,} EXTRAPOLATED", lambda key, how: _extrapolate(local, key, how, big))
        )
    return cols


def _ratio(a: dict[str, Any], b: dict[str, Any], key: str, how: str) -> float | None:
    x, y = a.get(key), b.get(key)
    return None if how == "none" or x is None or not y else float(x) / float(y)


def report(
    args: argparse.Namespace,
    edge: dict[int, dict[str, Any]],
    local: dict[int, dict[str, Any]],
    info: dict[str, str],
) -> str:
    payload = next(iter(edge.values()))["payload_bytes"]
    runs = [*edge.values(), *local.values()]
    wall_s = sum(r.get("write_wall_s", 0) + r.get("read_wall_s", 0) for r in runs)
    lines = _header(args, info, payload, wall_s)
    cols = _columns(edge, local)
    lines += ["| metric | " + " | ".join(c[0] for c in cols) + " |"]
    lines += ["|" + "---|" * (len(cols) + 1)]
    for label, key, fmt, how in ROWS:
        cells = []
        for heading, value in cols:
            v = value(key, how)
            cells.append("–" if v is None else (f"{v:,.2f}×" if "÷" in heading else fmt.format(v)))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    big = edge[max(edge)]
    facts = ("count_after_write", "indexed_vectors", "points_per_document_range_points")
    lines += [
        "",
        "Edge at the largest size: " + ", ".join(f"{k} {big[k]:,}" for k in facts if k in big),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--points", type=int, default=1_000_000, help="Edge's largest size")
    parser.add_argument("--local-points", default="20000,50000", help="sizes both engines run at")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/vectorstores.md")
    parser.add_argument("--workdir", type=Path, help="kept; default a temporary folder, removed")
    parser.add_argument("--reuse", action="store_true", help="keep results already in --workdir")
    parser.add_argument("--child", choices=["write", "read"], help=argparse.SUPPRESS)
    parser.add_argument("--engine", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.argv = list(argv if argv is not None else sys.argv[1:])
    if args.child:
        return _child(args)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="vectorstores-"))
    work.mkdir(parents=True, exist_ok=True)
    # The machine as the measuring invocation found it; a --reuse run keeps that record.
    saved = work / "machine.json"
    info = json.loads(saved.read_text()) if args.reuse and saved.exists() else machine_info()
    saved.write_text(json.dumps(info))
    small = [int(n) for n in args.local_points.split(",") if n]
    edge: dict[int, dict[str, Any]] = {}
    local: dict[int, dict[str, Any]] = {}
    try:
        for n in sorted({*small, args.points}):
            truth_file = work / f"queries-{n}.npz"
            if not (args.reuse and truth_file.exists()):
                queries, truth = queries_and_truth(n, args.queries)
                np.savez(truth_file, queries=queries, truth=truth)
            if n in small:
                local[n] = _run(work, "local", n, args.reuse)
            edge[n] = _run(work, "edge", n, args.reuse)
            shutil.rmtree(work / f"local-{n}", ignore_errors=True)
            shutil.rmtree(work / f"edge-{n}", ignore_errors=True)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report(args, edge, local, info))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
