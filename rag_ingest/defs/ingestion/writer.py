"""``qdrant_collection``: write the run's documents, remove deleted ones, verify the shards.

Writers are serialized (pool ``qdrant``), so the version check before each write and the
write itself never interleave with another run's: a document is written only while the
registry still holds the version this run processed. Outcomes are recorded for the current
target; each shard is then compared with the registry, orphan points removed and documents
whose points are missing re-queued. When the current fingerprint's collection is complete and
verified, the alias moves to it.
"""

import time
from collections import Counter
from collections.abc import Iterator

import dagster as dg
import numpy as np

from rag_ingest.core.config import Settings
from rag_ingest.core.index.versions import ensure_target, maybe_promote
from rag_ingest.core.keys import point_id
from rag_ingest.core.pipeline.retries import settle_documents
from rag_ingest.core.pipeline.runfiles import RUNS, DocumentRow
from rag_ingest.core.pipeline.windows import windows
from rag_ingest.core.registry import GONE_STATUSES, DocumentRecord, Registry, Target
from rag_ingest.core.vectorstore.base import CollectionMismatch, DocumentPoints, VectorStore
from rag_ingest.defs.checks import (
    COLLECTION_CHECKS,
    dimension_result,
    duplicate_ids_result,
    points_match_result,
    shards_match_result,
)
from rag_ingest.defs.ingestion.run import RunScope, ShardReport, read_upstream, run_scope
from rag_ingest.resources import DocumentRegistry, Embedder, IntermediateStore, VectorStoreResource

WINDOW_POINTS = 8192
SUPERSEDED = "a newer version (or the deletion) of this object was registered meanwhile"
REQUEUED = "its points in the collection did not match its chunks; re-queued"


def _aligned(
    context: dg.AssetExecutionContext, scope: RunScope, storage: IntermediateStore
) -> Iterator[tuple[DocumentRow, np.ndarray]]:
    """Chunks and vectors of each document, read side by side from the two run files."""
    chunk_rows = read_upstream(context, scope, storage, "chunks")
    vector_rows = read_upstream(context, scope, storage, "embeddings")
    for chunk_row, vector_row in zip(chunk_rows, vector_rows, strict=True):
        info = chunk_row.info
        vectors = vector_row.vectors if vector_row.vectors is not None else np.zeros((0, 0))
        if vector_row.info.doc_id != info.doc_id or len(vectors) != len(chunk_row.chunks):
            raise dg.Failure(
                f"{info.source}: embeddings do not match chunks ({len(vectors)} vectors for "
                f"{len(chunk_row.chunks)} chunks); re-materialize embeddings for these shards"
            )
        yield chunk_row, vectors


def _superseded(info_etag: str, current: DocumentRecord | None) -> bool:
    return current is None or current.status in GONE_STATUSES or current.etag != info_etag


class _Writer:
    """One run's writes into one target, with what the checks and metadata need."""

    def __init__(self, store: VectorStore, reg: Registry, target: Target, scope: RunScope):
        self.store, self.reg, self.target, self.scope = store, reg, target, scope
        self.report = ShardReport(scope)
        self.point_ids: list[str] = []
        self.expected: dict[str, int] = {}
        self.actual: Counter[str] = Counter()
        self.written = self.stale = 0

    def window(self, items: list[tuple[DocumentRow, np.ndarray]], batch_size: int) -> None:
        current = self.reg.lookup(row.info.doc_id for row, _ in items)
        fresh: list[DocumentPoints] = []
        deleted: list[DocumentRow] = []
        for row, vectors in items:
            info = row.info
            self.report.count(info.doc_id, processed=1)
            record = current.get(info.doc_id)
            if info.status == "deleting":
                if record is not None and record.status == "deleting":
                    deleted.append(row)
                else:  # re-created since the run was planned: its own run ingests it
                    self.report.count(info.doc_id, superseded=1)
            elif _superseded(info.etag, record):
                self.report.count(info.doc_id, superseded=1)
                self.report.add(info.doc_id, "skipped", info.source, info.status, SUPERSEDED)
            else:
                fresh.append(DocumentPoints(info, row.chunks, vectors))
        # Transient failures leave points alone and wait for a retry (core.pipeline.retries).
        to_write, outcomes = settle_documents(fresh, current, self.target.id)
        stats = self.store.replace_documents(self.target.collection, to_write, batch_size)
        self.written += stats.points_written
        self.stale += stats.stale_points_removed
        self._remove(deleted)
        applied = self.reg.record(outcomes, self.target.id, self.scope.run_id)
        ok_ids = [d.info.doc_id for d in fresh if d.info.status == "ok"]
        self.actual.update(self.store.points_per_document(self.target.collection, ok_ids))
        for doc in fresh:
            info, n = doc.info, len(doc.chunks)
            if info.doc_id not in applied:
                self.report.count(info.doc_id, superseded=1)
                continue
            if info.status == "ok":
                self.expected[info.doc_id] = n
                self.point_ids += [point_id(info.doc_id, info.etag, c.index) for c in doc.chunks]
                was = current[info.doc_id]
                action = "updated" if was.ingested_etag else "added"
                self.report.count(info.doc_id, ingested=1, points=n)
                self.report.add(info.doc_id, action, info.source, "ok", f"{n} chunks")
            else:
                self.report.count(info.doc_id, failed=1)
                self.report.add(info.doc_id, "failed", info.source, info.status, info.reason or "")

    def _remove(self, deleted: list[DocumentRow]) -> None:
        if not deleted:
            return
        ids = [row.info.doc_id for row in deleted]
        # Every version at this location drops them: a re-index in progress must not keep
        # serving a deleted document from the version readers still use.
        for target in self.reg.targets(self.store.location, self.target.alias):
            if target.state != "dropped" and self.store.collection_exists(target.collection):
                self.store.delete_documents(target.collection, ids)
        removed = self.reg.mark_removed(ids, self.scope.run_id)
        for row in deleted:
            if row.info.doc_id in removed:
                self.report.count(row.info.doc_id, removed=1)
                self.report.add(row.info.doc_id, "removed", row.info.source, "removed", "")

    def verify_shards(self, scope_settings: Settings) -> tuple[list[str], int, int]:
        """Compare each shard with the registry; remove orphans, re-queue wrong documents."""
        mismatched: list[str] = []
        requeued = orphans = 0
        layout, collection = self.scope.layout, self.target.collection
        for shard in self.scope.shards:
            hashes = layout.hash_range(shard)
            expected = self.reg.ingested_chunks(self.target.id, hashes, scope_settings.scope)
            if self.store.count(collection, hashes) == sum(expected.values()):
                continue
            per_doc = self.store.points_per_document(collection, key_hashes=hashes)
            live = self.reg.live_doc_ids(scope_settings.scope, hashes)
            stray = [d for d in per_doc if d not in live]
            wrong = [d for d, n in expected.items() if per_doc.get(d, 0) != n]
            if stray:
                orphans += self.store.delete_documents(collection, stray)
            if wrong:
                requeued += len(self.reg.mark_pending(wrong, REQUEUED, self.scope.run_id))
            if stray or wrong:
                mismatched.append(f"{shard}: {len(wrong)} wrong, {len(stray)} orphan documents")
        return mismatched, requeued, orphans

    def count_unchanged(self, scope_settings: Settings) -> None:
        """Documents of each shard this run left alone (already ingested at their version)."""
        layout = self.scope.layout
        live = self.reg.count_by_hash_bucket(scope_settings.scope, self.scope.hashes, layout.width)
        for shard, counts in self.report.counts.items():
            touched = counts["processed"] - counts["removed"]
            counts["documents"] = live.get(layout.index(shard), 0)
            counts["unchanged"] = max(0, counts["documents"] - touched)


def build_qdrant_collection(
    settings: Settings,
    partitions: dg.PartitionsDefinition,
    policy: dg.BackfillPolicy,
    embeddings: dg.AssetsDefinition,
) -> dg.AssetsDefinition:
    @dg.asset(
        partitions_def=partitions,
        backfill_policy=policy,
        group_name="ingestion",
        kinds={"qdrant"},
        deps=[embeddings],
        pool="qdrant",
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
        with vectors.open() as store:
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
            writer = _Writer(store, reg, target, scope)
            rows = _aligned(context, scope, storage)
            for window in windows(rows, lambda item: max(1, len(item[0].chunks)), WINDOW_POINTS):
                writer.window(window, vectors.upsert_batch_size)
            mismatched, requeued, orphans = writer.verify_shards(settings)
            promoted, why = (False, "automatic promotion is off")
            if settings.auto_promote:
                promoted, why = maybe_promote(
                    store, reg, reg.target_by_id(target.id) or target, settings.scope
                )
            context.log.info(f"version {target.collection}: {why}")
            live = store.resolve(settings.collection) or ""
        waiting = reg.work_count(settings.scope, target.id)
        writer.count_unchanged(settings)
        writer.report.attach(
            context,
            "changes",
            always=("documents", "unchanged", "ingested", "failed", "removed", "superseded"),
        )
        # Written: the run's intermediate files have served their purpose.
        storage.store.delete_tree(f"{RUNS}/{scope.storage_run}")
        totals = writer.report.totals()
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
