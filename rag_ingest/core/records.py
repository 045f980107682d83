"""The record of one document version as it moves through a run's steps."""

from __future__ import annotations

from dataclasses import dataclass

from rag_ingest.core.keys import source_uri


@dataclass
class DocumentInfo:
    """One document version and what happened to it so far."""

    doc_id: str
    bucket: str
    key: str
    etag: str
    size: int
    last_modified: str
    status: str = "ok"
    reason: str | None = None
    content_type: str | None = None
    format: str | None = None
    title: str | None = None
    pages: int | None = None
    compressed: bool = False
    # The failure is transient (S3 throttling/5xx/timeouts, an extraction timeout or killed
    # worker, a 404 that a re-put may end): the document is tried again later.
    retryable: bool = False

    @property
    def source(self) -> str:
        return source_uri(self.bucket, self.key)
