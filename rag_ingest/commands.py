"""`rag-ingest search | cost | health`: the operator's commands, on the deployment's settings.

Resources are the ones the code location wires (``definitions.build_resources``), resolved
from the same environment variables, so the CLI reads exactly what the pipeline writes.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
import time
from collections.abc import Iterator
from typing import Any

import dagster as dg

from rag_ingest.core.config import Settings

SNIPPET_CHARS = 240


@contextlib.contextmanager
def _resources(*names: str) -> Iterator[Any]:
    from rag_ingest.definitions import build_resources

    wired = build_resources(Settings.from_env())
    with dg.build_resources({name: wired[name] for name in names}) as resources:
        yield resources


def snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    flat = re.sub(r"\s+", " ", text).strip()
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def search(args: argparse.Namespace) -> int:
    from rag_ingest.core.search import search_collection

    with _resources("qdrant", "embedder") as res:
        collection = args.collection or res.qdrant.collection
        vectors, _ = res.embedder.embed([args.query])
        with res.qdrant.get_client() as client:
            hits = search_collection(client, collection, vectors[0], args.k)
    if not hits:
        print(f"no results in collection {collection!r}")
        return 0
    for rank, hit in enumerate(hits, 1):
        where = " · ".join(
            part
            for part in (
                f"page {hit.page}" if hit.page is not None else "",
                f"§ {hit.heading}" if hit.heading else "",
                f"chunk {hit.chunk_index + 1}/{hit.chunk_count}",
            )
            if part
        )
        print(f"{rank}. {hit.score:.4f}  {hit.source}  ({where})")
        print(f"   {snippet(hit.text)}")
    return 0


def cost(args: argparse.Namespace) -> int:
    from rag_ingest.core.cost import PriceTable, price_workload, render_markdown
    from rag_ingest.usage import embedding_workload

    with dg.DagsterInstance.get() as instance:
        workload = embedding_workload(instance, args.hours)
    report = price_workload(
        workload, args.gpu, PriceTable.load(args.prices), args.assume_tokens_per_second
    )
    print(render_markdown(report))
    return 0


def health(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from rag_ingest.core.audit import audit_collection
    from rag_ingest.core.health import norm_outliers

    bars: dict[str, Any] = {}

    def progress(stage: str, n: int) -> None:
        if stage not in bars:
            bars[stage] = tqdm(desc=stage, unit=" items", file=sys.stderr, leave=False)
        bars[stage].update(n)

    started = time.perf_counter()
    with (
        _resources("qdrant", "registry", "s3_source") as res,
        res.qdrant.get_client() as client,
    ):
        audit = audit_collection(
            res.s3_source.client,
            res.s3_source.bucket,
            Settings.from_env().prefixes,
            res.registry.registry,
            client,
            res.qdrant.collection,
            progress=progress,
        )
    for bar in bars.values():
        bar.close()
    sync = audit.sync
    rows = [
        ("live S3 objects", audit.live_objects),
        ("documents in collection", sync.documents_in_collection),
        ("points", sync.points),
        ("chunks recorded", sync.chunks_recorded),
        ("orphan points", sync.orphan_points),
        ("ingested documents without points", len(sync.live_documents_missing)),
        ("documents with other point counts", len(audit.mismatched_documents)),
        ("collection dimension", audit.collection_dimension or 0),
        ("sampled vectors not unit length", norm_outliers(audit.sample)),
        *((f"documents {status}", n) for status, n in sorted(audit.status_counts.items())),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value:>10,}")
    for doc in sync.orphan_documents[:20]:
        print(f"orphan: {doc}")
    print(f"({time.perf_counter() - started:.1f} s)")
    healthy = not (sync.orphan_points or sync.live_documents_missing or audit.mismatched_documents)
    return 0 if healthy else 1


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("search", help="semantic search over the collection")
    p.add_argument("query")
    p.add_argument("-k", type=int, default=5, help="results to show (default 5)")
    p.add_argument("--collection", help="default: RAG_QDRANT_COLLECTION or 'documents'")
    p.set_defaults(func=search)
    p = sub.add_parser("cost", help="price recorded embedding work: Modal vs always-on GPUs")
    p.add_argument("--hours", type=float, default=24.0 * 30, help="window (default 720 h)")
    p.add_argument("--gpu", default="A10G")
    p.add_argument("--prices", help="JSON price table overriding the defaults")
    p.add_argument(
        "--assume-tokens-per-second",
        type=float,
        help="GPU throughput for estimating GPU time when no Modal runs were recorded",
    )
    p.set_defaults(func=cost)
    p = sub.add_parser("health", help="compare the collection with S3 and the registry")
    p.set_defaults(func=health)
