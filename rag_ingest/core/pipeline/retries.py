"""Transient per-document failures: retried with back-off, bounded, never destructive.

A transient failure (S3 throttling, 5xx, a timeout after the client's retries, an extraction
that timed out or whose worker was killed, a 404 that a delete-then-put may end) says nothing
final about the document version. Its outcome is recorded with an attempt count and a time to
try again (``documents.attempts``/``retry_at``); the document counts as work once that time has
passed, and a re-index is not promoted while it waits. After :attr:`RetryPolicy.max_attempts`
failures in a row the failure is final, with its reason kept.

While a retry waits, the document's points are left as they are: a transient failure never
deletes points already in the index (of this version, or of an older one that readers still
get until the new one is readable). Only a final outcome replaces them.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from rag_ingest.core.records import DocumentInfo
from rag_ingest.core.registry.model import DocumentRecord, Outcome
from rag_ingest.core.vectorstore.base import DocumentPoints


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base_seconds: float = 120.0
    max_seconds: float = 6 * 3600.0

    def delay(self, attempt: int) -> float:
        """Seconds before attempt ``attempt + 1`` (``attempt`` ≥ 1 failures so far)."""
        return min(self.max_seconds, self.base_seconds * 2 ** max(0, attempt - 1))


# The deployment's policy (tests replace it).
POLICY = RetryPolicy()


@dataclass(frozen=True)
class Settled:
    """What the writer does with one processed document."""

    outcome: Outcome
    write_points: bool  # False: its points (if any) stay untouched


def settle(
    info: DocumentInfo,
    chunk_count: int,
    record: DocumentRecord | None,
    target_id: int,
    policy: RetryPolicy | None = None,
    now: float | None = None,
) -> Settled:
    """The outcome to record for one processed document, and whether to write its points.

    ``record`` is the registry row the run is about to update (its ``attempts`` counts the
    transient failures so far at this version).
    """
    policy = policy or POLICY
    if not info.retryable:
        outcome = Outcome(info.doc_id, info.status, info.reason, info.etag, chunk_count)
        return Settled(replace(outcome, seq=info.seq), True)
    attempt = (record.attempts if record is not None else 0) + 1
    if attempt >= policy.max_attempts:
        reason = f"gave up after {attempt} attempts: {info.reason}"
        outcome = Outcome(info.doc_id, info.status, reason, info.etag, 0, attempts=attempt)
        return Settled(replace(outcome, seq=info.seq), True)
    now = time.time() if now is None else now
    delay = policy.delay(attempt)
    reason = f"{info.reason} (attempt {attempt} of {policy.max_attempts}; retried in {delay:g} s)"
    kept = (
        record is not None
        and record.status == "ok"
        and record.target_id == target_id
        and record.ingested_etag == info.etag
        and bool(record.chunk_count)
    )
    if kept:
        # Its points of this very version are in the index: it stays ingested, and the
        # re-read that was asked for (force, re-ingest, verification) is tried again later.
        assert record is not None
        outcome = Outcome(
            info.doc_id, "ok", reason, info.etag, record.chunk_count, attempt, now + delay
        )
    else:
        outcome = Outcome(info.doc_id, info.status, reason, info.etag, 0, attempt, now + delay)
    return Settled(replace(outcome, seq=info.seq), False)


def settle_documents(
    docs: Sequence[DocumentPoints], current: Mapping[str, DocumentRecord], target_id: int
) -> tuple[list[DocumentPoints], list[Outcome]]:
    """For a window of processed documents: those whose points to write (replace), and the
    outcome of each document to record."""
    settled = [settle(d.info, len(d.chunks), current.get(d.info.doc_id), target_id) for d in docs]
    write = [d for d, s in zip(docs, settled, strict=True) if s.write_points]
    return write, [s.outcome for s in settled]
