"""Peers side by side: this project, LlamaIndex's IngestionPipeline with its docstore, and the
seed's one-call-per-document approach, on the same real documents, in one invocation.

Four phases, each system bringing its vector store in line with the corpus once per phase:
``cold`` (empty stores), ``unchanged`` (the same corpus again), ``changed`` (1% of the
documents, at least one, get one paragraph edited) and ``edit`` (one paragraph of the long
document edited). For each, every system's wall time and the texts it sent to the model.
The corpus is ``bench.peer_docs`` (installed distributions' long descriptions); the systems
are ``bench.peer_systems``. Within a phase the systems take turns in a rotating order, so
none is always first after the corpus changes.

    python -m bench.peers --out bench/results/peers.md
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

from rag_ingest.core.text.chunking import DEFAULT_OVERLAP
from rag_ingest.core.text.model import resolve_model
from rag_ingest.testing.s3 import moto_server

from .common import REPO, Stopwatch, machine_info
from .peer_docs import Corpus, build_corpus, changed_keys, edits
from .peer_model import PHASES, SYSTEMS, PeersResult
from .peer_report import render
from .peer_systems import LlamaIndexPeer, ProjectPeer, SeedPeer, SyncFigures


def phase_corpora(corpus: Corpus, fraction: float) -> tuple[dict[str, Corpus], list[str]]:
    """The corpus each phase ingests: each phase's changes on top of the one before."""
    changed = changed_keys(corpus, fraction)
    some = corpus.replace(edits(corpus, changed))
    last = some.replace(edits(some, [corpus.long_key]))
    return {"cold": corpus, "unchanged": corpus, "changed": some, "edit": last}, changed


def run_peers(
    workdir: Path,
    endpoint: str,
    short_docs: int = 40,
    long_min_chunks: int = 200,
    max_tokens: int | None = None,
    overlap: int = DEFAULT_OVERLAP,
    shards: int = 16,
    fraction: float = 0.01,
    repeats: int = 1,
    short_chars: tuple[int, int] = (1200, 3500),
    say: Callable[[str], None] = print,
) -> PeersResult:
    """Every phase for every system, ``repeats`` times with fresh stores; ``max_tokens``
    defaults to the project's budget (the model's window less its special tokens)."""
    budget = max_tokens or resolve_model().chunk_limit
    corpus = build_corpus(short_docs, long_min_chunks, budget, overlap, short_chars)
    corpora, changed = phase_corpora(corpus, fraction)
    result = PeersResult(
        documents=len(corpus.documents),
        chunks=sum(corpus.chunks.values()),
        long_key=corpus.long_key,
        long_chunks=corpus.chunks[corpus.long_key],
        changed=changed,
        max_tokens=budget,
        overlap=overlap,
        shards=shards,
    )
    say(
        f"peers: {result.documents} documents, {result.chunks} chunks at {budget} word pieces; "
        f"long {corpus.long_key} ({result.long_chunks} chunks); changed {changed}"
    )
    for repeat in range(repeats):
        load_before = os.getloadavg()
        root = workdir / f"repeat-{repeat}"
        systems: dict[str, Any] = {
            "project": ProjectPeer(root / "project", endpoint, budget, overlap, shards),
            "llamaindex": LlamaIndexPeer(root / "llamaindex", budget, overlap),
            "seed": SeedPeer(root / "seed", budget, overlap),
        }
        figures: dict[str, dict[str, SyncFigures]] = {}
        try:
            for i, phase in enumerate(PHASES):
                figures[phase] = {}
                for j in range(len(SYSTEMS)):
                    name = SYSTEMS[(i + j) % len(SYSTEMS)]
                    got = systems[name].sync(corpora[phase])
                    figures[phase][name] = got
                    say(
                        f"peers[{repeat}] {phase:9} {name:10} {got.wall_seconds:8.2f}s "
                        f"{got.texts_embedded:5} texts in {got.embed_calls} calls, "
                        f"{got.points} points"
                    )
        finally:
            for system in systems.values():
                system.close()
        result.repeats.append({p: {s: figures[p][s] for s in SYSTEMS} for p in PHASES})
        result.confirm_seconds.append(list(systems["project"].confirm_seconds))
        result.load += [load_before, os.getloadavg()]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--short-docs", type=int, default=40)
    parser.add_argument("--long-min-chunks", type=int, default=200)
    parser.add_argument("--shards", type=int, default=16, help="the project's shard count")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/peers.md")
    parser.add_argument("--workdir", type=Path, help="kept; default a temporary folder, removed")
    args = parser.parse_args(argv)
    # As `make dev` and the deployment notes set it.
    os.environ.setdefault("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", "true")
    info = machine_info()
    for dist in ("llama-index-core", "llama-index-embeddings-huggingface"):
        info[dist] = version(dist)
    with tempfile.TemporaryDirectory(prefix="peers-") as tmp, moto_server() as endpoint:
        workdir = args.workdir or Path(tmp)
        with Stopwatch() as total:
            result = run_peers(
                workdir,
                endpoint,
                short_docs=args.short_docs,
                long_min_chunks=args.long_min_chunks,
                shards=args.shards,
                repeats=args.repeats,
            )
    command = "python -m bench.peers " + shlex.join(sys.argv[1:] if argv is None else argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(result, info, command, total.seconds))
    payload = {"command": command, "machine": info, "total_seconds": total.seconds}
    args.out.with_suffix(".json").write_text(
        json.dumps(payload | result.to_json(), indent=2) + "\n"
    )
    print(f"wrote {args.out} and {args.out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
