"""``chunks``: the run's extracted documents cut into token-aware chunks.

Documents are read from ``raw_documents``' run file and chunked a window at a time (their
short blocks tokenized in one batch), so memory is bounded by a window, not by the run.
"""

import time
from collections.abc import Iterator

import dagster as dg

from rag_ingest.core.config import Settings
from rag_ingest.core.pipeline.runfiles import DocumentRow, run_path, write_rows
from rag_ingest.core.pipeline.steps import chunk_documents, chunk_stats
from rag_ingest.core.pipeline.windows import windows
from rag_ingest.core.records import DocumentInfo
from rag_ingest.core.text.chunking import Chunk
from rag_ingest.defs.ingestion.partitions import shard_asset
from rag_ingest.defs.ingestion.run_files import read_upstream, run_scope
from rag_ingest.defs.ingestion.shard_report import ShardReport
from rag_ingest.resources import IntermediateStore

# Documents whose short blocks are tokenized in one batch (the tokenizer's threads share it).
CHUNK_WINDOW_DOCUMENTS = 64


def build_chunks(settings: Settings) -> dg.AssetsDefinition:
    budget = settings.chunk_max_tokens

    @shard_asset(
        settings,
        kinds={"python", "parquet"},
        deps=["raw_documents"],
        description="Token-aware chunks (model tokenizer, overlap, small sections packed to the "
        "token budget) with offsets, page and heading.",
    )
    def chunks(
        context: dg.AssetExecutionContext, storage: IntermediateStore
    ) -> dg.MaterializeResult:
        started = time.perf_counter()
        scope = run_scope(context, settings)
        report = ShardReport(scope, ("object", "status", "reason"))

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
                done = chunk_documents(
                    items, budget, settings.chunk_overlap_tokens, settings.model_spec
                )
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

    return chunks
