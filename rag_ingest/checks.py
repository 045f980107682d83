"""Asset checks: documents that did not make it into Qdrant are surfaced, never silent."""

import dagster as dg

from rag_ingest.assets import qdrant_collection
from rag_ingest.core.registry import FAILED_STATUSES
from rag_ingest.resources import DocumentRegistry

EXAMPLES = 20


@dg.asset_check(
    asset=qdrant_collection,
    description="WARN when S3 objects are recorded as failed, unsupported, empty or missing.",
)
def documents_not_ingested(registry: DocumentRegistry) -> dg.AssetCheckResult:
    counts = registry.registry.status_counts()
    bad = {status: counts.get(status, 0) for status in FAILED_STATUSES}
    examples = registry.registry.by_status(FAILED_STATUSES, limit=EXAMPLES)
    table = "\n".join(
        ["| status | object | reason |", "| --- | --- | --- |"]
        + [f"| {r.status} | s3://{r.bucket}/{r.key} | {r.reason or ''} |" for r in examples]
    )
    return dg.AssetCheckResult(
        passed=sum(bad.values()) == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            **{f"documents_{status}": n for status, n in bad.items()},
            "documents_ok": counts.get("ok", 0),
            "examples": dg.MetadataValue.md(table),
        },
    )


ingestion_checks = [documents_not_ingested]
