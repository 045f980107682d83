"""Rows and values the registry hands out (plain dataclasses, no SQL)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from rag_ingest.core.keys import source_uri

# Statuses of documents whose S3 object is gone: their points are being / have been removed.
GONE_STATUSES = ("deleting", "removed")
FAILED_STATUSES = ("failed", "empty", "unsupported", "missing")
# Statuses that ask for work whatever the target.
WORK_STATUSES = ("pending", "deleting")


@dataclass(frozen=True)
class DocumentRecord:
    doc_id: str
    bucket: str
    key: str
    etag: str
    size: int
    last_modified: str
    seq: int
    status: str
    reason: str | None
    ingested_etag: str | None
    chunk_count: int | None
    updated_at: float
    key_hash: int = 0
    target_id: int | None = None
    run_id: str | None = None
    attempts: int = 0
    retry_at: float | None = None

    @property
    def source(self) -> str:
        return source_uri(self.bucket, self.key)


@dataclass(frozen=True)
class Known:
    """What the sensor compares a listing with."""

    doc_id: str
    etag: str
    status: str
    last_modified: str = ""
    # The row's change number when read (not part of the comparison of two snapshots).
    seq: int = field(default=0, compare=False)


@dataclass(frozen=True)
class DeleteHold:
    """A listing pass of ``prefix`` that would have marked ``would_delete`` of ``registered``
    live documents deleted, held until the listing recovers or an operator confirms."""

    bucket: str
    prefix: str
    held_at: float
    updated_at: float
    would_delete: int
    registered: int
    confirmed_at: float | None = None

    @property
    def percent(self) -> float:
        return 100.0 * self.would_delete / max(self.registered, 1)

    def describe(self) -> str:
        state = "confirmed, applied by the next pass" if self.confirmed_at else "held"
        return (
            f"s3://{self.bucket}/{self.prefix}: {self.would_delete} of {self.registered} "
            f"document(s) ({self.percent:.0f}%) missing from the listing; deletions {state}"
        )


@dataclass(frozen=True)
class Outcome:
    """What a run did with one document version, written back to the registry.

    ``etag`` is the version the run processed: the outcome applies only while the registry
    still holds that version (a newer one registered meanwhile keeps its own state).
    """

    doc_id: str
    status: str
    reason: str | None = None
    etag: str | None = None
    chunk_count: int | None = None
    # Transient failures in a row at this version, and when to try again (None: final).
    attempts: int = 0
    retry_at: float | None = None
    # The row's change number the run planned with (None: any). A request made since (a
    # re-ingest, a verification re-queue) bumps it, and the outcome then leaves the row be.
    seq: int | None = None


@dataclass(frozen=True)
class HistoryEntry:
    """One line of a document's history (table ``document_events``), as ``rag-ingest status``
    prints it."""

    at: float
    event: str
    status: str
    reason: str | None
    etag: str | None
    chunk_count: int | None
    target_id: int | None
    run_id: str | None


@dataclass(frozen=True)
class Target:
    """A physical collection at a Qdrant location, written under one fingerprint."""

    id: int
    location: str
    collection: str
    alias: str
    fingerprint: str
    spec: str
    state: str
    created_at: float
    promoted_at: float | None
    rolled_back_at: float | None = None


@dataclass(frozen=True)
class Scope:
    """The documents one deployment watches: a bucket and its prefixes (``""``: all)."""

    bucket: str
    prefixes: tuple[str, ...] = ("",)

    def contains(self, bucket: str, key: str) -> bool:
        return bucket == self.bucket and any(key.startswith(p) for p in self.prefixes)


@dataclass(frozen=True)
class ShardRequest:
    """The last run request made for a shard (kept so a shard is not requested twice)."""

    signature: str
    attempts: int
    requested_at: float


class ShardWork(NamedTuple):
    """What one shard holds to do: documents needing work, their highest change number, and
    the bytes of their objects as registered (the run's size, beside its document count)."""

    documents: int
    max_seq: int
    bytes: int = 0
