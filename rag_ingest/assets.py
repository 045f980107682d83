"""raw_documents → chunks → embeddings → qdrant_collection, one dynamic partition per object.

Every asset processes all partitions of its run (a partition range) in one step, reads its
upstream per-partition Parquet files and writes its own. Per-document metadata goes on each
partition's materialization; run totals are prefixed ``run_``.
"""

import time
import warnings
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import dagster as dg
import numpy as np

from rag_ingest.core import records as rec
from rag_ingest.core.chunking import MAX_CHUNK_TOKENS, Chunk
from rag_ingest.core.config import Settings
from rag_ingest.core.index import (
    DocumentPoints,
    collection_dimension,
    ensure_collection,
    points_per_document,
    replace_documents,
)
from rag_ingest.core.keys import point_id
from rag_ingest.core.registry import GONE_STATUSES, DocumentRecord, Outcome
from rag_ingest.core.stages import chunk_document, load_document, unknown_document
from rag_ingest.embedders import Embedder
from rag_ingest.materialization_checks import (
    COLLECTION_CHECKS,
    EMBEDDING_CHECKS,
    EmbeddingAudit,
    dimension_result,
    duplicate_ids_result,
    points_match_result,
)
from rag_ingest.modal_embedder import EmbeddingError
from rag_ingest.partition_metadata import PartitionMetadata
from rag_ingest.partitions import documents_partitions
from rag_ingest.resources import DocumentRegistry, IntermediateStore, QdrantResource, S3Source
from rag_ingest.windows import affected_keys, windows

# backfill_policy is "beta" in 1.13 but is the documented way to batch partitions into runs.
warnings.filterwarnings("ignore", category=dg.BetaWarning, message=".*backfill_policy.*")

GROUP = "ingestion"
BACKFILL_POLICY = dg.BackfillPolicy.multi_run(Settings.from_env().partitions_per_run)
# Texts held in memory and sent to the embedder at once: bounds memory on huge runs while
# still batching across documents.
EMBED_WINDOW_TEXTS = 8192


def _path(asset: str, partition_key: str) -> str:
    return f"{asset}/{partition_key}.parquet"


SUPERSEDED = "a newer version (or the deletion) of this object is already registered"


def is_superseded(info: rec.DocumentInfo, current: DocumentRecord | None) -> bool:
    """Whether writing this version would overwrite a newer state of the document.

    Qdrant writers are serialized (pool ``qdrant``), so this check and the write that follows
    cannot interleave with another run's: of two runs holding different versions, the older
    one steps aside whichever finishes last.
    """
    if current is None:
        return False
    if current.status in GONE_STATUSES:
        return True
    if current.etag == info.etag or not info.last_modified:
        return False
    return datetime.fromisoformat(current.last_modified) > datetime.fromisoformat(
        info.last_modified
    )


def _doc_metadata(info: rec.DocumentInfo) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "source": info.source,
        "etag": info.etag,
        "status": info.status,
    }
    if info.reason:
        meta["reason"] = info.reason
    return meta


@dg.asset(
    partitions_def=documents_partitions,
    backfill_policy=BACKFILL_POLICY,
    group_name=GROUP,
    kinds={"s3", "parquet"},
    description="Each S3 object fetched and turned into text blocks (pages, sections).",
)
def raw_documents(
    context: dg.AssetExecutionContext,
    s3_source: S3Source,
    registry: DocumentRegistry,
    storage: IntermediateStore,
) -> dg.MaterializeResult:
    keys = context.partition_keys
    per_doc = PartitionMetadata(context, keys)
    known = registry.registry.lookup(keys)
    started = time.perf_counter()

    def work(key: str) -> tuple[str, rec.DocumentInfo, int, int]:
        record = known.get(key)
        if record is None:
            info, blocks = unknown_document(key), []
        else:
            info, blocks = load_document(s3_source.client, record, s3_source.max_object_bytes)
        storage.store.write(_path("raw_documents", key), rec.dump_blocks(info, blocks))
        return key, info, len(blocks), sum(len(b.text) for b in blocks)

    statuses: Counter[str] = Counter()
    failures: list[Outcome] = []
    total_bytes = 0
    with ThreadPoolExecutor(max_workers=s3_source.fetch_threads) as pool:
        for key, info, n_blocks, chars in pool.map(work, keys):
            statuses[info.status] += 1
            total_bytes += info.size
            meta = _doc_metadata(info) | {
                "size_bytes": info.size,
                "last_modified": info.last_modified,
                "content_type": info.content_type or "",
                "format": info.format or "",
                "blocks": n_blocks,
                "characters": chars,
            }
            if info.pages is not None:
                meta["pages"] = info.pages
            per_doc.add(key, meta)
            if info.status != "ok":
                failures.append(Outcome(key, info.status, info.reason))
                context.log.warning(f"{info.source or key}: {info.status}: {info.reason}")
    registry.registry.record(failures)
    per_doc.flush()
    return dg.MaterializeResult(
        metadata={
            "run_documents": len(keys),
            "run_ok": statuses["ok"],
            "run_not_ok": len(keys) - statuses["ok"],
            "run_bytes": total_bytes,
            "run_seconds": round(time.perf_counter() - started, 3),
        }
    )


class ChunkingConfig(dg.Config):
    max_tokens: int = MAX_CHUNK_TOKENS
    overlap_tokens: int = 32


@dg.asset(
    partitions_def=documents_partitions,
    backfill_policy=BACKFILL_POLICY,
    group_name=GROUP,
    kinds={"python", "parquet"},
    deps=[raw_documents],
    description="Token-aware chunks (model tokenizer, overlap) with offsets, page and heading.",
)
def chunks(
    context: dg.AssetExecutionContext, config: ChunkingConfig, storage: IntermediateStore
) -> dg.MaterializeResult:
    started = time.perf_counter()
    keys = context.partition_keys
    per_doc = PartitionMetadata(context, keys)
    total_chunks = total_tokens = 0
    for key in keys:
        info, blocks = rec.load_blocks(storage.store.read(_path("raw_documents", key)))
        doc_chunks = chunk_document(info, blocks, config.max_tokens, config.overlap_tokens)
        storage.store.write(_path("chunks", key), rec.dump_chunks(info, doc_chunks))
        tokens = sum(c.token_count for c in doc_chunks)
        total_chunks += len(doc_chunks)
        total_tokens += tokens
        meta = _doc_metadata(info) | {
            "chunk_count": len(doc_chunks),
            "token_count": tokens,
            "max_chunk_tokens": max((c.token_count for c in doc_chunks), default=0),
        }
        per_doc.add(key, meta)
    per_doc.flush()
    return dg.MaterializeResult(
        metadata={
            "run_documents": len(keys),
            "run_chunks": total_chunks,
            "run_tokens": total_tokens,
            "run_seconds": round(time.perf_counter() - started, 3),
        }
    )


@dg.asset(
    partitions_def=documents_partitions,
    backfill_policy=BACKFILL_POLICY,
    group_name=GROUP,
    kinds={"pytorch", "parquet"},
    deps=[chunks],
    pool="embedder",
    check_specs=EMBEDDING_CHECKS,
    description="Normalized float32 vectors of every chunk, batched across the run's documents.",
)
def embeddings(
    context: dg.AssetExecutionContext, embedder: Embedder, storage: IntermediateStore
) -> dg.MaterializeResult:
    started = time.perf_counter()
    totals: Counter[str] = Counter()
    embed_seconds = gpu_seconds = cost = 0.0
    audit = EmbeddingAudit(embedder.dimension)
    keys = context.partition_keys
    per_doc = PartitionMetadata(context, keys)

    def read(key: str) -> tuple[rec.DocumentInfo, list[Chunk]]:
        return rec.load_chunks(storage.store.read(_path("chunks", key)))

    for window in windows(keys, read, lambda item: len(item[1]), EMBED_WINDOW_TEXTS):
        texts = [c.text for _, (_, doc_chunks) in window for c in doc_chunks]
        try:
            vectors, stats = embedder.embed(texts)
        except Exception as exc:
            # Name the partitions whose chunks did not come back; nothing of this run reaches
            # Qdrant, because the qdrant_collection step depends on this one.
            spans = exc.failed_spans if isinstance(exc, EmbeddingError) else [(0, len(texts))]
            affected = affected_keys(window, spans)
            shown = ", ".join(affected[:20]) + (" …" if len(affected) > 20 else "")
            raise dg.Failure(
                description=f"embedding failed for {len(affected)} partition(s) [{shown}]: {exc}",
                metadata={"failed_partitions": dg.MetadataValue.json(affected)},
            ) from exc
        if vectors.shape != (len(texts), embedder.dimension):
            raise ValueError(f"embedder returned {vectors.shape} for {len(texts)} texts")
        embed_seconds += stats.seconds
        gpu_seconds += stats.gpu_seconds
        cost += stats.cost_usd
        totals["batches"] += stats.batches
        offset = 0
        for key, (info, doc_chunks) in window:
            doc_vectors = vectors[offset : offset + len(doc_chunks)]
            offset += len(doc_chunks)
            storage.store.write(_path("embeddings", key), rec.dump_vectors(info, doc_vectors))
            audit.add(key, len(doc_chunks), doc_vectors, info.reason)
            tokens = sum(c.token_count for c in doc_chunks)
            totals["texts"] += len(doc_chunks)
            totals["tokens"] += tokens
            per_doc.add(
                key, _doc_metadata(info) | {"vectors": len(doc_chunks), "token_count": tokens}
            )
    per_doc.flush()
    return dg.MaterializeResult(
        metadata={
            "model": embedder.model_name,
            "dimension": embedder.dimension,
            "backend": type(embedder).__name__,
            "run_documents": len(keys),
            "run_texts": totals["texts"],
            "run_tokens": totals["tokens"],
            "run_batches": totals["batches"],
            "run_embed_seconds": round(embed_seconds, 3),
            "run_texts_per_second": round(totals["texts"] / embed_seconds, 2)
            if embed_seconds
            else 0.0,
            "run_gpu_seconds": round(gpu_seconds, 3),
            "run_cost_usd": dg.MetadataValue.float(round(cost, 8)),
            "run_seconds": round(time.perf_counter() - started, 3),
        },
        check_results=audit.results(),
    )


@dg.asset(
    partitions_def=documents_partitions,
    backfill_policy=BACKFILL_POLICY,
    group_name=GROUP,
    kinds={"qdrant"},
    deps=[embeddings],
    pool="qdrant",
    check_specs=COLLECTION_CHECKS,
    description="Each document's chunks as points in the Qdrant collection; stale points removed.",
)
def qdrant_collection(
    context: dg.AssetExecutionContext,
    qdrant: QdrantResource,
    registry: DocumentRegistry,
    storage: IntermediateStore,
    embedder: Embedder,
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    started = time.perf_counter()
    keys = context.partition_keys
    per_doc = PartitionMetadata(context, keys)
    written = removed = 0
    point_ids: list[str] = []
    expected: dict[str, int] = {}
    actual: Counter[str] = Counter()

    def read(key: str) -> DocumentPoints:
        info, doc_chunks = rec.load_chunks(storage.store.read(_path("chunks", key)))
        vec_info, vectors = rec.load_vectors(storage.store.read(_path("embeddings", key)))
        if vec_info.etag != info.etag or len(vectors) != len(doc_chunks):
            raise ValueError(
                f"{info.source}: embeddings do not match chunks (etag {vec_info.etag} vs "
                f"{info.etag}, {len(vectors)} vectors for {len(doc_chunks)} chunks); "
                "re-materialize embeddings for this partition"
            )
        return DocumentPoints(info, doc_chunks, vectors if len(vectors) else np.zeros((0, 0)))

    superseded = 0
    with qdrant.get_client() as client:
        dim_check = dimension_result(
            collection_dimension(client, qdrant.collection), embedder.dimension
        )
        if not dim_check.passed:
            yield dim_check
            raise dg.Failure(
                description=f"collection {qdrant.collection!r} holds vectors of another size than "
                f"the embedder's {embedder.dimension}; use another collection name",
                metadata=dict(dim_check.metadata),
            )
        ensure_collection(client, qdrant.collection, embedder.dimension)
        for window in windows(keys, read, lambda doc: len(doc.chunks), EMBED_WINDOW_TEXTS):
            current = registry.registry.lookup(key for key, _ in window)
            fresh = [(k, d) for k, d in window if not is_superseded(d.info, current.get(k))]
            fresh_keys = {k for k, _ in fresh}
            superseded += len(window) - len(fresh)
            for key, doc in window:
                if key not in fresh_keys:
                    per_doc.add(key, _doc_metadata(doc.info) | {"points": 0, "skipped": SUPERSEDED})
            stats = replace_documents(
                client, qdrant.collection, [d for _, d in fresh], qdrant.upsert_batch_size
            )
            written += stats.points_written
            removed += stats.stale_points_removed
            fresh_ids = [d.info.doc_id for _, d in fresh]
            actual.update(points_per_document(client, qdrant.collection, fresh_ids))
            outcomes = []
            for key, doc in fresh:
                info = doc.info
                outcomes.append(Outcome(key, info.status, info.reason, info.etag, len(doc.chunks)))
                expected[info.doc_id] = len(doc.chunks)
                point_ids.extend(point_id(info.doc_id, info.etag, c.index) for c in doc.chunks)
                per_doc.add(key, _doc_metadata(info) | {"points": len(doc.chunks)})
            registry.registry.record(outcomes)
    per_doc.flush()
    yield dg.MaterializeResult(
        metadata={
            "collection": qdrant.collection,
            "qdrant_mode": "embedded" if qdrant.is_local else "server",
            "run_documents": len(keys),
            "run_points_written": written,
            "run_stale_points_removed": removed,
            "run_superseded_documents": superseded,
            "run_seconds": round(time.perf_counter() - started, 3),
        },
        check_results=[
            dim_check,
            duplicate_ids_result(point_ids),
            points_match_result(expected, actual),
        ],
    )


ingestion_assets = [raw_documents, chunks, embeddings, qdrant_collection]
