"""Query latency a new user sees: `rag-ingest search` as one command per query (each loads the
model) against `rag-ingest search -i` (the model loaded once), on an index `make dev` built.

    python -m bench.first_hour --data-dir data --out bench/results/first-hour.md

Each figure is wall time measured here, on the machine's current load (reported).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from .common import machine_info

QUERIES = [
    "how do I knead bread dough",
    "folding a paper crane",
    "feeding a sourdough starter",
    "what is a mountain bike suspension",
    "watering houseplants in winter",
    "first steps in origami",
    "how long to proof bread",
    "tuning a bicycle derailleur",
    "repotting a plant",
    "a culture of wild yeast",
]


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.first_hour")
    p.add_argument("--data-dir", type=Path, required=True, help="a `make dev` data folder")
    p.add_argument("--commands", type=int, default=3, help="one-shot commands timed")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    env = {**os.environ, "RAG_DATA_DIR": str(args.data_dir.resolve())}
    cli = [sys.executable, "-m", "rag_ingest.cli", "search", "-k", "3"]
    one_shot = []
    for query in QUERIES[: args.commands]:
        started = time.perf_counter()
        subprocess.run([*cli, query], env=env, check=True, capture_output=True)
        one_shot.append(time.perf_counter() - started)
    started = time.perf_counter()
    done = subprocess.run(
        [*cli, "-i"],
        env=env,
        input="\n".join(QUERIES) + "\n\n",
        check=True,
        capture_output=True,
        text=True,
    )
    session = time.perf_counter() - started
    per_query = [float(line[1:-3]) for line in done.stdout.splitlines() if line.endswith(" s)")]
    text = "\n".join(
        [
            "# Query latency in the first hour: one command per query vs `search -i`",
            "",
            "Machine: " + "; ".join(f"{k}: {v}" for k, v in machine_info().items()) + ".",
            "Index: the `make dev` sample. One repeat.",
            "",
            "| how | first query | later queries (median) |",
            "|---|---|---|",
            f'| `rag-ingest search "…"`, {len(one_shot)} commands (process, imports, model) | '
            f"{one_shot[0]:.2f} s | {statistics.median(one_shot[1:] or one_shot):.2f} s |",
            f"| `rag-ingest search -i`, {len(per_query)} queries in one process "
            f"({session:.1f} s in all) | {per_query[0]:.2f} s | "
            f"{statistics.median(per_query[1:]):.3f} s |",
            "",
            "The first query of `-i` includes loading the model; later ones are embedding one",
            "query and searching. `rag_ingest.query.Index` behaves as `-i` in an application.",
            "",
        ]
    )
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
