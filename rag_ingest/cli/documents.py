"""`rag-ingest status | search | health | cost | confirm-deletes`: the operator's commands
about documents and the work done on them (`index` has its own module, ``cli.index``).

Resources are the code location's own, wired by ``defs.resources.build_resources`` from the same
settings (``cli.resources``), so the CLI reads exactly what the pipeline writes.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from typing import Any

import dagster as dg

from rag_ingest.cli.resources import resources, when
from rag_ingest.core.config import Settings
from rag_ingest.core.index.search import MODES

SNIPPET_CHARS = 240


def snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    flat = re.sub(r"\s+", " ", text).strip()
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def status(args: argparse.Namespace) -> int:
    settings: Settings = args.settings
    with resources(settings, "registry") as res:
        reg = res.registry.registry
        records = reg.find(args.ref)
        if not records:
            print(f"no document matches {args.ref!r} (an s3:// URI, a key or a document id)")
            return 1
        for record in records:
            target = reg.target_by_id(record.target_id) if record.target_id else None
            rows = [
                ("source", record.source),
                ("document id", record.doc_id),
                ("shard", settings.shard_layout.of(record.doc_id)),
                ("status", record.status),
                ("reason", record.reason or "-"),
                ("etag (in S3)", record.etag),
                ("etag ingested", record.ingested_etag or "-"),
                ("chunks", str(record.chunk_count if record.chunk_count is not None else "-")),
                ("collection", target.collection if target else "-"),
                ("last run", record.run_id or "-"),
                ("updated", when(record.updated_at)),
            ]
            for name, value in rows:
                print(f"{name:<14} {value}")
            print("history:")
            for ev in reg.history(record.doc_id, args.history):
                detail = " ".join(
                    part
                    for part in (
                        f"etag={ev.etag}" if ev.etag else "",
                        f"chunks={ev.chunk_count}" if ev.chunk_count is not None else "",
                        f"run={ev.run_id}" if ev.run_id else "",
                        f"— {ev.reason}" if ev.reason else "",
                    )
                    if part
                )
                print(f"  {when(ev.at)}  {ev.event:<10} {ev.status:<11} {detail}")
    return 0


def search(args: argparse.Namespace) -> int:
    from rag_ingest.query import Index

    query: str | None = args.query
    if query is None and not args.interactive:
        raise SystemExit("rag-ingest search: give a query, or -i to read queries from stdin")
    with Index(args.settings, args.collection) as index:
        if query is not None and not args.interactive:
            _show(index.search(query, args.k, args.mode), index.collection)
            return 0
        # The model loads with the first query and stays loaded: later queries cost the search.
        print("one query per line; an empty line or Ctrl-D ends", file=sys.stderr, flush=True)
        for line in sys.stdin:
            if not line.strip():
                break
            started = time.perf_counter()
            hits = index.search(line.strip(), args.k, args.mode)
            _show(hits, index.collection)
            print(f"({time.perf_counter() - started:.2f} s)", flush=True)
    return 0


def _show(hits: list[Any], collection: str) -> None:
    if not hits:
        print(f"no results in collection {collection!r}")
        return
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


def cost(args: argparse.Namespace) -> int:
    from rag_ingest.core.cost import PriceTable, price_workload, render_markdown
    from rag_ingest.defs.monitoring.usage import embedding_workload

    with dg.DagsterInstance.get() as instance:
        workload = embedding_workload(instance, args.hours)
    report = price_workload(
        workload, args.gpu, PriceTable.load(args.prices), args.assume_tokens_per_second
    )
    print(render_markdown(report))
    return 0


def health(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from rag_ingest.core.index.audit import audit_collection, live_documents
    from rag_ingest.core.index.health import norm_outliers

    settings: Settings = args.settings
    bars: dict[str, Any] = {}

    def progress(stage: str, n: int) -> None:
        if stage not in bars:
            bars[stage] = tqdm(desc=stage, unit=" items", file=sys.stderr, leave=False)
        bars[stage].update(n)

    started = time.perf_counter()
    names = ("vectors", "registry", "s3_source")
    with resources(settings, *names) as res:
        scope = settings.scope
        # Listed before the store is opened: an embedded store's lock is not held through it.
        listed = live_documents(res.s3_source.client, scope.bucket, scope.prefixes, progress)
        with res.vectors.open() as store:
            reg = res.registry.registry
            holds = [h for h in reg.delete_holds(scope.bucket) if h.prefix in scope.prefixes]
            collection = store.resolve(settings.collection) or settings.physical_collection
            audit = audit_collection(
                res.s3_source.client,
                scope,
                reg,
                store,
                collection,
                reg.target(store.location, collection),
                progress=progress,
                live=listed,
            )
    for bar in bars.values():
        bar.close()
    sync = audit.sync
    rows = [
        ("live collection", collection),
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
        ("deletions held (delete guard)", sum(h.would_delete for h in holds)),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        shown = f"{value:>10,}" if isinstance(value, int) else f"{value:>10}"
        print(f"{name:<{width}}  {shown}")
    for doc in sync.orphan_documents[:20]:
        print(f"orphan: {doc}")
    for hold in holds:
        print(f"held: {hold.describe()}; `rag-ingest confirm-deletes --prefix {hold.prefix!r}`")
    print(f"({time.perf_counter() - started:.1f} s)")
    healthy = not (
        sync.orphan_points or sync.live_documents_missing or audit.mismatched_documents or holds
    )
    return 0 if healthy else 1


def confirm_deletes(args: argparse.Namespace) -> int:
    """An operator confirms the deletions a listing pass of a prefix held back."""
    settings: Settings = args.settings
    prefix = args.prefix
    with resources(settings, "registry") as res:
        reg = res.registry.registry
        hold = reg.delete_hold(settings.bucket, prefix)
        if hold is None:
            held = reg.delete_holds(settings.bucket)
            print(f"nothing held for s3://{settings.bucket}/{prefix}", file=sys.stderr)
            for other in held:
                print(f"held: {other.describe()}", file=sys.stderr)
            return 1
        hold = reg.confirm_deletes(settings.bucket, prefix) or hold
    print(
        f"confirmed: {hold.describe()}. The prefix's next listing pass marks every missing "
        "document deleted; their points are removed by the runs that follow."
    )
    return 0


def add_parsers(sub: Any) -> None:
    from rag_ingest.core.modal_names import GPU

    p = sub.add_parser("status", help="one document's state and history")
    p.add_argument("ref", help="s3://bucket/key, a key, or a document id")
    p.add_argument("--history", type=int, default=50, help="events shown (default 50)")
    p.set_defaults(func=status)
    p = sub.add_parser("search", help="dense, BM25 or hybrid search over the collection")
    p.add_argument("query", nargs="?")
    p.add_argument("-k", type=int, default=5, help="results to show (default 5)")
    p.add_argument(
        "-i",
        "--interactive",
        action="store_true",
        help="read one query per line from stdin, the model loaded once",
    )
    p.add_argument(
        "--mode",
        choices=MODES,
        help="dense (the model), sparse (BM25) or hybrid (both, fused by Qdrant with RRF); "
        "default: hybrid when the collection has BM25 vectors, else dense",
    )
    p.add_argument("--collection", help="default: the alias RAG_QDRANT_COLLECTION")
    p.set_defaults(func=search)
    p = sub.add_parser("cost", help="price recorded embedding work: Modal vs always-on GPUs")
    p.add_argument("--hours", type=float, default=24.0 * 30, help="window (default 720 h)")
    p.add_argument("--gpu", default=GPU)
    p.add_argument("--prices", help="JSON price table overriding the defaults")
    p.add_argument(
        "--assume-tokens-per-second",
        type=float,
        help="GPU throughput for estimating GPU time when no Modal runs were recorded",
    )
    p.set_defaults(func=cost)
    p = sub.add_parser("health", help="compare the live collection with S3 and the registry")
    p.set_defaults(func=health)
    p = sub.add_parser(
        "confirm-deletes",
        help="let the next listing pass of a prefix apply the deletions the delete guard held",
    )
    p.add_argument("--prefix", required=True, help="the watched prefix, as in RAG_S3_PREFIXES")
    p.set_defaults(func=confirm_deletes)
