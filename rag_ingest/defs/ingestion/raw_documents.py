"""``raw_documents``: the shard's documents that need work, fetched and turned into text blocks.

Materializing a shard reconciles it: the documents of the shard that are not ingested at
their current version into the current target (Qdrant location + the fingerprint's
collection) are fetched and extracted; deleted ones are passed on for removal; the rest are
left alone. ``force`` re-ingests every document of the shards.

Extraction has a time budget (``Settings.run_extract_budget_seconds``): once spent, no new
document is taken, and the rest stay pending in the registry for the next request of their
shards (``run_deferred`` in the metadata). They are not failures and nothing is lost: the
run ends inside the deployment's ``max_runtime_seconds`` instead of being killed and
requested again with the same work forever.
"""

import time
from collections.abc import Iterator

import dagster as dg
from pydantic import Field

from rag_ingest.core.config import Settings
from rag_ingest.core.pipeline.runfiles import DocumentRow, run_path, write_rows
from rag_ingest.core.pipeline.steps import DocumentProcessor, OutageGuard, load_document
from rag_ingest.core.pipeline.windows import Budget, ordered_map
from rag_ingest.core.records import DocumentInfo
from rag_ingest.core.registry import DocumentRecord
from rag_ingest.defs.ingestion.partitions import shard_asset
from rag_ingest.defs.ingestion.run_files import run_scope
from rag_ingest.defs.ingestion.shard_report import ShardReport
from rag_ingest.resources import DocumentRegistry, IntermediateStore, S3Source, VectorStoreResource

DELETED = "object deleted from S3"
DEFERRED = "deferred: a forced run's extraction budget was spent before it"


class ReconcileConfig(dg.Config):
    force: bool = Field(
        default=False,
        description="Re-ingest every document of the selected shards, even those already "
        "ingested at their current version into the current collection.",
    )


def build_raw_documents(settings: Settings) -> dg.AssetsDefinition:
    limits = settings.document_limits

    @shard_asset(
        settings,
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

        outage = OutageGuard()

        def work(record: DocumentRecord) -> DocumentRow:
            if record.status == "deleting":
                return DocumentRow(DocumentInfo.from_record(record, "deleting", DELETED))
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

        workers = max(1, settings.extract_workers)
        budget = Budget[DocumentRecord](settings.run_extract_budget_seconds)
        # Deletions cost no fetch: they are always passed on.
        taken = budget.take(planned, free=lambda r: r.status == "deleting")
        # Lazy: a run of deletions only, or with nothing to do, starts no extraction worker.
        with DocumentProcessor(limits, workers=workers, lazy=True) as processor:
            rows = ordered_map(work, taken, s3_source.fetch_threads)
            path = run_path(scope.storage_run, "raw_documents")
            written = write_rows(storage.store, path, "blocks", tallied(rows))
        report.attach(context, "documents_not_read", always=("documents", "documents_ok"))
        totals = report.totals()
        if budget.deferred:
            if config.force:  # not work by themselves: ask for them, as reingest does
                reg.mark_pending([r.doc_id for r in budget.held], DEFERRED, scope.run_id)
            context.log.info(
                f"extraction budget of {settings.run_extract_budget_seconds:g} s spent: "
                f"{budget.deferred} document(s) left pending for the next run"
            )
        return dg.MaterializeResult(
            metadata={
                "run_documents": written,
                "run_ok": totals["documents_ok"],
                "run_deleted": totals["documents_deleting"],
                "run_not_ok": written - totals["documents_ok"] - totals["documents_deleting"],
                "run_bytes": totals["bytes"],
                "run_forced": config.force,
                "run_planned": len(planned),
                "run_deferred": budget.deferred,
                "run_extract_budget_seconds": settings.run_extract_budget_seconds,
                "run_seconds": round(time.perf_counter() - started, 3),
            }
        )

    return raw_documents
