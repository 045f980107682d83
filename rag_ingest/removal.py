"""The run that removes documents whose S3 objects were deleted.

The sensor marks them ``deleting`` and requests this job with their doc ids. The op removes
their points (in the ``qdrant`` pool, like every Qdrant writer) and intermediate files, records
an observation on each removed partition, and marks them ``removed``; the next sensor tick
deletes the dynamic partitions and the registry rows.
"""

import dagster as dg

from rag_ingest.core.index import remove_documents
from rag_ingest.core.keys import source_uri
from rag_ingest.resources import DocumentRegistry, IntermediateStore, QdrantResource

INTERMEDIATE_ASSETS = ("raw_documents", "chunks", "embeddings")


class RemovalConfig(dg.Config):
    doc_ids: list[str]


@dg.op(pool="qdrant", description="Remove deleted S3 objects' points and intermediate files.")
def remove_deleted_documents(
    context: dg.OpExecutionContext,
    config: RemovalConfig,
    qdrant: QdrantResource,
    registry: DocumentRegistry,
    storage: IntermediateStore,
) -> None:
    records = registry.registry.lookup(config.doc_ids)
    # A key re-created since the request is pending again: leave it to the ingest run.
    targets = [r for r in records.values() if r.status == "deleting"]
    doc_ids = [r.doc_id for r in targets]
    with qdrant.get_client() as client:
        points = remove_documents(client, qdrant.collection, doc_ids)
    for doc_id in doc_ids:
        for asset in INTERMEDIATE_ASSETS:
            storage.store.delete(f"{asset}/{doc_id}.parquet")
    registry.registry.mark_removed(doc_ids)
    for record in targets:
        context.log_event(
            dg.AssetObservation(
                asset_key="qdrant_collection",
                partition=record.doc_id,
                metadata={
                    "status": "removed",
                    "source": source_uri(record.bucket, record.key),
                    "reason": "object deleted from S3",
                },
            )
        )
    context.add_output_metadata(
        {
            "removed_documents": len(doc_ids),
            "removed_points": points,
            "skipped_recreated": len(config.doc_ids) - len(doc_ids),
        }
    )
    context.log.info(f"removed {len(doc_ids)} document(s), {points} point(s)")


@dg.job(
    name="remove_documents",
    description="Remove documents whose S3 objects were deleted (requested by the sensors).",
)
def remove_documents_job() -> None:
    remove_deleted_documents()
