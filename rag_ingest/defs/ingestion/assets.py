"""raw_documents → chunks → embeddings → qdrant_collection, partitioned by key-space shard.

Materializing a shard reconciles it: the documents of the shard that are not ingested at
their current version into the current target (Qdrant location + the fingerprint's
collection) are fetched, chunked, embedded and written; deleted ones are removed; the rest
are left alone. ``force`` re-ingests every document of the shards. Each step streams its
documents through one file per run (``core.runfiles``), so memory is bounded by a window,
not by the run.
"""

import time
import warnings
from collections.abc import Iterator

import dagster as dg
from pydantic import Field

from rag_ingest.core.config import Settings
from rag_ingest.core.pipeline.runfiles import DocumentRow, run_path, write_rows
from rag_ingest.core.pipeline.steps import (
    DocumentProcessor,
    OutageGuard,
    chunk_documents,
    chunk_stats,
    load_document,
)
from rag_ingest.core.pipeline.windows import affected, ordered_map, windows
from rag_ingest.core.records import DocumentInfo
from rag_ingest.core.registry import DocumentRecord
from rag_ingest.core.text.chunking import Chunk
from rag_ingest.defs.checks import EMBEDDING_CHECKS, EmbeddingAudit
from rag_ingest.defs.ingestion.partitions import shard_partitions
from rag_ingest.defs.ingestion.run import ShardReport, read_upstream, run_scope
from rag_ingest.defs.ingestion.writer import build_qdrant_collection
from rag_ingest.resources import (
    DocumentRegistry,
    Embedder,
    IntermediateStore,
    S3Source,
    VectorStoreResource,
)
from rag_ingest.resources.embedders import EmbeddingError

# backfill_policy is "beta" in 1.13 but is the documented way to batch partitions into runs.
warnings.filterwarnings("ignore", category=dg.BetaWarning, message=".*backfill_policy.*")

GROUP = "ingestion"
# Texts held in memory and sent to the embedder at once: bounds memory on huge runs while
# still batching across documents.
EMBED_WINDOW_TEXTS = 8192
# Documents whose short blocks are tokenized in one batch (the tokenizer's threads share it).
CHUNK_WINDOW_DOCUMENTS = 64
DELETED = "object deleted from S3"


class ReconcileConfig(dg.Config):
    force: bool = Field(
        default=False,
        description="Re-ingest every document of the selected shards, even those already "
        "ingested at their current version into the current collection.",
    )


def _deleting(record: DocumentRecord) -> DocumentInfo:
    return DocumentInfo(
        doc_id=record.doc_id,
        bucket=record.bucket,
        key=record.key,
        etag=record.etag,
        size=record.size,
        last_modified=record.last_modified,
        status="deleting",
        reason=DELETED,
    )


def build_ingestion_assets(settings: Settings) -> list[dg.AssetsDefinition]:
    partitions = shard_partitions(settings)
    policy = dg.BackfillPolicy.multi_run(settings.shards_per_backfill_run)
    limits = settings.document_limits

    @dg.asset(
        partitions_def=partitions,
        backfill_policy=policy,
        group_name=GROUP,
        kinds={"s3", "parquet"},
        description="The shard's documents that need work, fetched from S3 and turned into "
        "text blocks (pages, sections); deleted objects are passed on for removal.",
    )
    def raw_documents(
        context: dg.AssetExecutionContext,
        config: ReconcileConfig,
        s3_source: S3Source,
        registry: DocumentRegistry,
        storage: IntermediateStore,
        vectors: VectorStoreResource,
    ) -> dg.MaterializeResult:
        started = time.perf_counter()
        scope = run_scope(context, settings)
        reg = registry.registry
        target = reg.target(vectors.location, settings.physical_collection)
        shards = set(scope.shards)
        planned = [
            r
            for r in reg.documents_in(
                settings.scope, scope.hashes, target.id if target else None, not config.force
            )
            if scope.shard_of(r.doc_id) in shards
        ]
        report = ShardReport(scope, ("object", "status", "reason"))
        workers = max(1, settings.extract_workers)

        outage = OutageGuard()

        def work(record: DocumentRecord) -> DocumentRow:
            if record.status == "deleting":
                return DocumentRow(_deleting(record))
            info, blocks = load_document(s3_source.client, record, processor, limits)
            outage.observe(info)  # S3 down for every read: fail the run, not the documents
            return DocumentRow(info, blocks=blocks)

        def tallied(rows: Iterator[DocumentRow]) -> Iterator[DocumentRow]:
            for row in rows:
                info = row.info
                report.count(info.doc_id, documents=1, **{f"documents_{info.status}": 1})
                report.count(info.doc_id, bytes=info.size if info.status == "ok" else 0)
                if info.status not in ("ok", "deleting"):
                    report.add(info.doc_id, info.source, info.status, info.reason or "")
                    context.log.warning(f"{info.source}: {info.status}: {info.reason}")
                yield row

        with DocumentProcessor(limits, workers=workers) as processor:
            rows = ordered_map(work, planned, s3_source.fetch_threads)
            path = run_path(scope.storage_run, "raw_documents")
            written = write_rows(storage.store, path, "blocks", tallied(rows))
        report.attach(context, "documents_not_read", always=("documents", "documents_ok"))
        totals = report.totals()
        return dg.MaterializeResult(
            metadata={
                "run_documents": written,
                "run_ok": totals["documents_ok"],
                "run_deleted": totals["documents_deleting"],
                "run_not_ok": written - totals["documents_ok"] - totals["documents_deleting"],
                "run_bytes": totals["bytes"],
                "run_forced": config.force,
                "run_seconds": round(time.perf_counter() - started, 3),
            }
        )

    @dg.asset(
        partitions_def=partitions,
        backfill_policy=policy,
        group_name=GROUP,
        kinds={"python", "parquet"},
        deps=[raw_documents],
        description="Token-aware chunks (model tokenizer, overlap, small sections packed to the "
        "token budget) with offsets, page and heading.",
    )
    def chunks(
        context: dg.AssetExecutionContext, storage: IntermediateStore
    ) -> dg.MaterializeResult:
        started = time.perf_counter()
        scope = run_scope(context, settings)
        report = ShardReport(scope, ("object", "status", "reason"))
        budget = settings.chunk_max_tokens

        def tally(info: DocumentInfo, doc_chunks: list[Chunk]) -> DocumentRow:
            stats = chunk_stats(doc_chunks, budget)
            report.count(
                info.doc_id,
                documents=1,
                chunks=len(doc_chunks),
                tokens=sum(c.token_count for c in doc_chunks),
                unrepresented_chars=int(stats["unrepresented_chars"]),
            )
            if info.status == "ok" and not doc_chunks:
                report.add(info.doc_id, info.source, info.status, "no chunks")
            elif info.status not in ("ok", "deleting"):
                report.add(info.doc_id, info.source, info.status, info.reason or "")
            return DocumentRow(info, chunks=doc_chunks)

        def chunked() -> Iterator[DocumentRow]:
            rows = read_upstream(context, scope, storage, "raw_documents")
            for window in windows(rows, lambda _: 1, CHUNK_WINDOW_DOCUMENTS):
                items = [(row.info, row.blocks) for row in window]
                done = chunk_documents(items, budget, settings.chunk_overlap_tokens)
                for (info, _), doc_chunks in zip(items, done, strict=True):
                    yield tally(info, doc_chunks)

        path = run_path(scope.storage_run, "chunks")
        written = write_rows(storage.store, path, "chunks", chunked())
        for shard, counts in report.counts.items():
            fill = counts["tokens"] / (counts["chunks"] * budget) if counts["chunks"] else 0.0
            report.counts[shard]["token_fill_percent"] = round(100 * fill)
        report.attach(context, "documents_without_chunks", always=("documents", "chunks", "tokens"))
        totals = report.totals()
        return dg.MaterializeResult(
            metadata={
                "run_documents": written,
                "run_chunks": totals["chunks"],
                "run_tokens": totals["tokens"],
                "run_unrepresented_chars": totals["unrepresented_chars"],
                "run_chunks_per_document": dg.MetadataValue.float(
                    round(totals["chunks"] / written, 3) if written else 0.0
                ),
                "run_token_fill_ratio": dg.MetadataValue.float(
                    round(totals["tokens"] / (totals["chunks"] * budget), 4)
                    if totals["chunks"]
                    else 0.0
                ),
                "run_seconds": round(time.perf_counter() - started, 3),
            }
        )

    @dg.asset(
        partitions_def=partitions,
        backfill_policy=policy,
        group_name=GROUP,
        kinds={"pytorch", "parquet"},
        deps=[chunks],
        pool="embedder",
        check_specs=EMBEDDING_CHECKS,
        description="Normalized float32 vectors of every chunk, batched across the run's "
        "documents.",
    )
    def embeddings(
        context: dg.AssetExecutionContext, embedder: Embedder, storage: IntermediateStore
    ) -> dg.MaterializeResult:
        started = time.perf_counter()
        scope = run_scope(context, settings)
        if embedder.vector_space != settings.fingerprint.vector_space:
            raise dg.Failure(
                f"the embedder produces {embedder.vector_space} vectors but the settings' "
                f"fingerprint expects {settings.fingerprint.vector_space}"
            )
        report = ShardReport(scope, ("object", "status", "reason"))
        audit = EmbeddingAudit(embedder.dimension)
        stats_total: dict[str, float] = {"seconds": 0.0, "gpu": 0.0, "cost": 0.0, "batches": 0}

        def embedded() -> Iterator[DocumentRow]:
            rows = read_upstream(context, scope, storage, "chunks")
            for window in windows(rows, lambda r: len(r.chunks), EMBED_WINDOW_TEXTS):
                texts = [c.text for row in window for c in row.chunks]
                try:
                    vectors, stats = embedder.embed(texts)
                except Exception as exc:
                    # Name the documents whose chunks did not come back; nothing of this run
                    # reaches Qdrant, because qdrant_collection depends on this step.
                    spans = exc.failed_spans if isinstance(exc, EmbeddingError) else None
                    sizes = [len(r.chunks) for r in window]
                    hit = affected(sizes, spans) if spans else list(range(len(window)))
                    sources = [window[i].info.source for i in hit]
                    shown = ", ".join(sources[:20]) + (" …" if len(sources) > 20 else "")
                    raise dg.Failure(
                        description=f"embedding failed for {len(hit)} document(s) [{shown}]: {exc}",
                        metadata={"failed_documents": dg.MetadataValue.json(sources[:1000])},
                    ) from exc
                if vectors.shape != (len(texts), embedder.dimension):
                    raise dg.Failure(f"embedder returned {vectors.shape} for {len(texts)} texts")
                stats_total["seconds"] += stats.seconds
                stats_total["gpu"] += stats.gpu_seconds
                stats_total["cost"] += stats.cost_usd
                stats_total["batches"] += stats.batches
                offset = 0
                for row in window:
                    doc_vectors = vectors[offset : offset + len(row.chunks)]
                    offset += len(row.chunks)
                    audit.add(row.info.doc_id, len(row.chunks), doc_vectors, row.info.reason)
                    tokens = sum(c.token_count for c in row.chunks)
                    report.count(row.info.doc_id, documents=1, vectors=len(row.chunks))
                    report.count(row.info.doc_id, tokens=tokens)
                    yield DocumentRow(row.info, vectors=doc_vectors)

        path = run_path(scope.storage_run, "embeddings")
        written = write_rows(storage.store, path, "vectors", embedded())
        report.attach(context, "documents_listed", always=("documents", "vectors", "tokens"))
        totals = report.totals()
        seconds = stats_total["seconds"]
        return dg.MaterializeResult(
            metadata={
                "model": embedder.model_name,
                "vector_space": embedder.vector_space,
                "dimension": embedder.dimension,
                "backend": type(embedder).__name__,
                "run_documents": written,
                "run_texts": totals["vectors"],
                "run_tokens": totals["tokens"],
                "run_batches": int(stats_total["batches"]),
                "run_embed_seconds": round(seconds, 3),
                "run_texts_per_second": round(totals["vectors"] / seconds, 2) if seconds else 0.0,
                "run_gpu_seconds": round(stats_total["gpu"], 3),
                "run_cost_usd": dg.MetadataValue.float(round(stats_total["cost"], 8)),
                "run_seconds": round(time.perf_counter() - started, 3),
            },
            check_results=audit.results(),
        )

    qdrant_collection = build_qdrant_collection(settings, partitions, policy, embeddings)
    return [raw_documents, chunks, embeddings, qdrant_collection]
