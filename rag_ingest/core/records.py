"""The record of one document version as it moves through a run's steps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from rag_ingest.core.keys import source_uri


class RegisteredVersion(Protocol):
    """The version of an object the registry holds (``registry.DocumentRecord`` is one; the
    registry sits above this module, so it is named by shape)."""

    @property
    def doc_id(self) -> str: ...
    @property
    def bucket(self) -> str: ...
    @property
    def key(self) -> str: ...
    @property
    def etag(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def last_modified(self) -> str: ...
    @property
    def seq(self) -> int: ...


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
    # The registry row's change number when the run planned this document: the outcome is
    # recorded only while it is unchanged, so a re-ingest asked for meanwhile is not cleared.
    seq: int | None = None

    @property
    def source(self) -> str:
        return source_uri(self.bucket, self.key)

    @classmethod
    def from_record(
        cls, record: RegisteredVersion, status: str = "ok", reason: str | None = None
    ) -> DocumentInfo:
        """The registered version of a document, as a run starts with it."""
        return cls(
            doc_id=record.doc_id,
            bucket=record.bucket,
            key=record.key,
            etag=record.etag,
            size=record.size,
            last_modified=record.last_modified,
            status=status,
            reason=reason,
            seq=record.seq,
        )
