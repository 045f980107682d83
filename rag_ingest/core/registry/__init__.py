"""The document registry (see ``store``): one truth for what is ingested where."""

from rag_ingest.core.registry.model import (
    FAILED_STATUSES,
    GONE_STATUSES,
    WORK_STATUSES,
    DeleteHold,
    DocumentRecord,
    HistoryEntry,
    Known,
    Outcome,
    Scope,
    Target,
)
from rag_ingest.core.registry.store import INSERT_BATCH, Registry, default_url

__all__ = [
    "FAILED_STATUSES",
    "GONE_STATUSES",
    "INSERT_BATCH",
    "WORK_STATUSES",
    "DeleteHold",
    "DocumentRecord",
    "HistoryEntry",
    "Known",
    "Outcome",
    "Registry",
    "Scope",
    "Target",
    "default_url",
]
