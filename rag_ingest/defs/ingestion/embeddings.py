"""``embeddings``: a vector per chunk, batched across the run's documents.

Chunks are read from ``chunks``' run file and sent to the embedder a window of texts at a
time; the blocking check ``vectors_match_chunks`` keeps bad vectors out of Qdrant. An
embedder that runs on this machine (``Embedder.serializes_runs``) embeds one run at a time,
under the deployment's ``embedder`` lock (``defs/locks.py``).
"""

import time
from collections.abc import Iterator

import dagster as dg
import numpy as np

from rag_ingest.core.config import Settings
from rag_ingest.core.index.fingerprint import embedding_identity
from rag_ingest.core.index.health import UNIT_NORM_TOLERANCE
from rag_ingest.core.pipeline.runfiles import DocumentRow, run_path, write_rows
from rag_ingest.core.pipeline.windows import affected, windows
from rag_ingest.core.registry.embedding_cache import (
    EmbeddingCache,
    WindowPlan,
    cache_report,
    plan_window,
)
from rag_ingest.defs.ingestion.checks import EMBEDDING_CHECKS, EmbeddingAudit
from rag_ingest.defs.ingestion.partitions import shard_asset
from rag_ingest.defs.ingestion.run_files import read_upstream, run_scope
from rag_ingest.defs.ingestion.shard_report import ShardReport
from rag_ingest.defs.locks import EMBEDDER_LOCK, step_lock
from rag_ingest.resources import DocumentRegistry, Embedder, IntermediateStore
from rag_ingest.resources.embedders import EmbeddingError

# Texts held in memory and sent to the embedder at once: bounds memory on huge runs while
# still batching across documents.
EMBED_WINDOW_TEXTS = 8192
# Sources named in a failure's description; its metadata lists more.
FAILED_SHOWN, FAILED_LISTED = 20, 1000


def _embedding_failed(window: list[DocumentRow], plan: WindowPlan, exc: Exception) -> dg.Failure:
    """Name the documents whose chunks did not come back; nothing of this run reaches Qdrant,
    because qdrant_collection depends on this step."""
    spans = plan.text_spans(exc.failed_spans) if isinstance(exc, EmbeddingError) else None
    sizes = [len(r.chunks) for r in window]
    hit = affected(sizes, spans) if spans else list(range(len(window)))
    sources = [window[i].info.source for i in hit]
    shown = ", ".join(sources[:FAILED_SHOWN]) + (" …" if len(sources) > FAILED_SHOWN else "")
    return dg.Failure(
        description=f"embedding failed for {len(hit)} document(s) [{shown}]: {exc}",
        metadata={"failed_documents": dg.MetadataValue.json(sources[:FAILED_LISTED])},
    )


def build_embeddings(settings: Settings) -> dg.AssetsDefinition:
    @shard_asset(
        settings,
        kinds={"pytorch", "parquet"},
        deps=["chunks"],
        check_specs=EMBEDDING_CHECKS,
        description="Normalized float32 vectors of every chunk, batched across the run's "
        "documents.",
    )
    def embeddings(
        context: dg.AssetExecutionContext,
        embedder: Embedder,
        storage: IntermediateStore,
        registry: DocumentRegistry,
    ) -> dg.MaterializeResult:
        started = time.perf_counter()
        scope = run_scope(context, settings)
        if embedder.spec.label != settings.model_spec.label:
            raise dg.Failure(
                f"the embedder runs {embedder.spec.label} but the settings' fingerprint expects "
                f"{settings.model_spec.label} (RAG_EMBED_MODEL)"
            )
        if embedder.vector_space != settings.fingerprint.vector_space:
            raise dg.Failure(
                f"the embedder produces {embedder.vector_space} vectors but the settings' "
                f"fingerprint expects {settings.fingerprint.vector_space}"
            )
        report = ShardReport(scope, ("object", "status", "reason"))
        audit = EmbeddingAudit(embedder.dimension)
        stats_total: dict[str, float] = {
            "seconds": 0.0,
            "gpu": 0.0,
            "cost": 0.0,
            "batches": 0,
            "embedded": 0,
        }
        cache = EmbeddingCache(
            registry.registry.engine,
            embedding_identity(settings.fingerprint),
            embedder.dimension,
            settings.embed_cache_max_entries,
            warn=context.log.warning,
        )

        def embedded() -> Iterator[DocumentRow]:
            rows = read_upstream(context, scope, storage, "chunks")
            for window in windows(rows, lambda r: len(r.chunks), EMBED_WINDOW_TEXTS):
                texts = [c.text for row in window for c in row.chunks]
                # Only texts the cache lacks go to the embedder (and so to Modal's .map).
                plan = plan_window(cache, texts)
                fresh = np.zeros((0, embedder.dimension), np.float32)
                if plan.miss_texts:
                    try:
                        fresh, stats = embedder.embed(plan.miss_texts)
                    except Exception as exc:
                        raise _embedding_failed(window, plan, exc) from exc
                    if fresh.shape != (len(plan.miss_texts), embedder.dimension):
                        raise dg.Failure(
                            f"embedder returned {fresh.shape} for {len(plan.miss_texts)} texts"
                        )
                    stats_total["seconds"] += stats.seconds
                    stats_total["gpu"] += stats.gpu_seconds
                    stats_total["cost"] += stats.cost_usd
                    stats_total["batches"] += stats.batches
                    stats_total["embedded"] += len(plan.miss_texts)
                    cache.store(plan.miss_keys, fresh, UNIT_NORM_TOLERANCE)
                vectors = plan.assemble(fresh, embedder.dimension)
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
        with step_lock(
            context,
            registry.registry,
            EMBEDDER_LOCK,
            embedder.lock_wait_seconds,
            needed=embedder.serializes_runs,
        ) as waited:
            written = write_rows(storage.store, path, "vectors", embedded())
        cache.evict()
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
                # Of the texts the embedder saw: cache hits took none of its time.
                "run_texts_per_second": (
                    round(stats_total["embedded"] / seconds, 2) if seconds else 0.0
                ),
                "run_gpu_seconds": round(stats_total["gpu"], 3),
                "run_cost_usd": dg.MetadataValue.float(round(stats_total["cost"], 8)),
                "run_lock_wait_seconds": round(waited, 3),
                "run_seconds": round(time.perf_counter() - started, 3),
                **cache_report(cache, stats_total),
            },
            check_results=audit.results(),
        )

    return embeddings
