"""Re-ingest chosen documents: by S3 key, ``s3://`` URI, doc id, or a key prefix.

The job marks the documents ``pending`` in the registry (with who asked, in their history);
the sensors request reconcile runs for their shards on their next tick, like any other work.
"""

import dagster as dg
from pydantic import Field

from rag_ingest.core.config import Settings
from rag_ingest.resources import DocumentRegistry

MAX_SHOWN = 50


class ReingestConfig(dg.Config):
    keys: list[str] = Field(
        default_factory=list,
        description="S3 keys, s3://bucket/key URIs or document ids to re-ingest.",
    )
    prefix: str | None = Field(
        default=None, description="Re-ingest every document whose key starts with this."
    )
    reason: str = Field(default="re-ingest requested", description="Recorded in the history.")


def build_reingest_job(settings: Settings) -> dg.JobDefinition:
    @dg.op(description="Mark the chosen documents pending so the next reconcile re-ingests them.")
    def mark_documents_for_reingest(
        context: dg.OpExecutionContext, config: ReingestConfig, registry: DocumentRegistry
    ) -> None:
        reg = registry.registry
        keys: list[str] = []
        unknown: list[str] = []
        for ref in config.keys:
            found = [r for r in reg.find(ref) if settings.scope.contains(r.bucket, r.key)]
            keys += [r.key for r in found]
            if not found:
                unknown.append(ref)
        if not config.keys and config.prefix is None:
            raise dg.Failure("give keys or a prefix (an empty prefix selects every document)")
        doc_ids = reg.select(settings.scope, keys, config.prefix)
        reason = f"{config.reason} (run {context.run_id})"
        marked = reg.mark_pending(doc_ids, reason, context.run_id)
        layout = settings.shard_layout
        shards = sorted({layout.of(d) for d in marked})
        context.add_output_metadata(
            {
                "documents_marked": len(marked),
                "shards": dg.MetadataValue.json(shards[:MAX_SHOWN]),
                "not_found": dg.MetadataValue.json(unknown[:MAX_SHOWN]),
            }
        )
        context.log.info(
            f"{len(marked)} document(s) in {len(shards)} shard(s) marked for re-ingest; the "
            f"sensors request their runs on the next tick. Not found: {len(unknown)}"
        )

    @dg.job(
        name="reingest_documents",
        description="Re-ingest chosen documents (keys, s3:// URIs, doc ids or a key prefix).",
    )
    def reingest_documents() -> None:
        mark_documents_for_reingest()

    return reingest_documents
