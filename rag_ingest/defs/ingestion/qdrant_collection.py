"""``qdrant_collection``: write the run's documents, remove deleted ones, verify the shards.

The writing itself is ``core.pipeline.write.ShardWriter``; this asset runs it under the
deployment's ``qdrant`` lock (``defs/locks.py``: one writer at a time, so a version check and
its write never interleave with another run's), reports it, and moves the alias when the
current fingerprint's collection is complete and verified. Once the documents are written the
run's intermediate files go.
"""

import time
from collections.abc import Iterator

import dagster as dg

from rag_ingest.core.config import Settings
from rag_ingest.core.index.versions import ensure_target, maybe_promote
from rag_ingest.core.pipeline.runfiles import RUNS
from rag_ingest.core.pipeline.write import RunFilesMismatch, ShardWriter, aligned
from rag_ingest.core.vectorstore.base import CollectionMismatch
from rag_ingest.defs.ingestion.checks import (
    COLLECTION_CHECKS,
    dimension_result,
    duplicate_ids_result,
    points_match_result,
    shards_match_result,
)
from rag_ingest.defs.ingestion.partitions import shard_asset
from rag_ingest.defs.ingestion.run_files import read_upstream, run_scope
from rag_ingest.defs.ingestion.shard_report import ShardReport
from rag_ingest.defs.locks import QDRANT_LOCK, step_lock
from rag_ingest.resources import DocumentRegistry, Embedder, IntermediateStore, VectorStoreResource


def build_qdrant_collection(settings: Settings) -> dg.AssetsDefinition:
    @shard_asset(
        settings,
        kinds={"qdrant"},
        deps=["embeddings"],
        check_specs=COLLECTION_CHECKS,
        description="The shard's documents as points in the current version's collection "
        "(stale points and deleted documents removed), verified against the registry.",
    )
    def qdrant_collection(
        context: dg.AssetExecutionContext,
        vectors: VectorStoreResource,
        registry: DocumentRegistry,
        storage: IntermediateStore,
        embedder: Embedder,
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        started = time.perf_counter()
        scope = run_scope(context, settings)
        reg = registry.registry
        fingerprint = settings.fingerprint
        with (
            step_lock(context, reg, QDRANT_LOCK, vectors.lock_wait_seconds) as waited,
            vectors.open() as store,
        ):
            try:
                existing = store.dimension(settings.physical_collection)
            except CollectionMismatch as exc:
                raise dg.Failure(str(exc)) from exc
            dim_check = dimension_result(existing, embedder.dimension)
            if not dim_check.passed:
                yield dim_check
                raise dg.Failure(
                    description=f"collection {settings.physical_collection!r} holds vectors of "
                    f"another size than the embedder's {embedder.dimension}",
                    metadata=dict(dim_check.metadata),
                )
            try:
                target = ensure_target(store, reg, settings.collection, fingerprint)
            except CollectionMismatch as exc:
                raise dg.Failure(str(exc)) from exc
            report = ShardReport(scope)
            writer = ShardWriter(store, reg, target, report)
            rows = aligned(
                read_upstream(context, scope, storage, "chunks"),
                read_upstream(context, scope, storage, "embeddings"),
            )
            try:
                writer.write(rows, vectors.upsert_batch_size)
            except RunFilesMismatch as exc:
                raise dg.Failure(str(exc)) from exc
            mismatched, requeued, orphans = writer.verify_shards()
            promoted, why = (False, "automatic promotion is off")
            if settings.auto_promote:
                promoted, why = maybe_promote(
                    store, reg, reg.target_by_id(target.id) or target, settings.scope
                )
            context.log.info(f"version {target.collection}: {why}")
            live = store.resolve(settings.collection) or ""
        waiting = reg.work_count(settings.scope, target.id)
        writer.count_unchanged()
        report.attach(
            context,
            "changes",
            always=("documents", "unchanged", "ingested", "failed", "removed", "superseded"),
        )
        # Written: the run's intermediate files have served their purpose.
        storage.store.delete_tree(f"{RUNS}/{scope.storage_run}")
        totals = report.totals()
        yield dg.MaterializeResult(
            metadata={
                "collection": target.collection,
                "alias": settings.collection,
                "live_collection": live,
                "version_live": live == target.collection,
                "version_promoted_now": promoted,
                "version_status": why,
                "version_documents_waiting": waiting,
                "fingerprint": fingerprint.describe(),
                "qdrant": vectors.engine,
                "run_documents_ingested": totals["ingested"],
                "run_documents_failed": totals["failed"],
                "run_documents_removed": totals["removed"],
                "run_documents_superseded": totals["superseded"],
                "run_points_written": writer.written,
                "run_stale_points_removed": writer.stale,
                "run_documents_requeued": requeued,
                "run_orphan_points_removed": orphans,
                "run_lock_wait_seconds": round(waited, 3),
                "run_seconds": round(time.perf_counter() - started, 3),
            },
            check_results=[
                dim_check,
                duplicate_ids_result(writer.point_ids),
                points_match_result(writer.expected, writer.actual),
                shards_match_result(len(scope.shards), mismatched, requeued, orphans),
            ],
        )

    return qdrant_collection
