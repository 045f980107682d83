"""Per-document work of each asset, free of Dagster: fetch + extract, chunk.

Bad input never fails a run: whatever one document causes (vanished object, too large,
unreadable, undecodable, corrupt, a parser stuck or out of memory, a chunking bug) is recorded
on its :class:`DocumentInfo` as a status and reason. Failures that a later attempt may not
meet (S3 throttling, 5xx, timeouts after the client's retries, an extraction timeout or a
killed worker, a 404 that a delete-then-put may end) are marked ``retryable``
(``core.pipeline.retries``); failures that are properties of the object (its storage class,
ACL, KMS key, SSE-C) are final, with S3's error code and message as the reason.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rag_ingest.core.documents.decode import replace_surrogates
from rag_ingest.core.documents.isolation import DocumentProcessor, ExtractionOutcome
from rag_ingest.core.documents.limits import DocumentLimits
from rag_ingest.core.documents.model import Block
from rag_ingest.core.keys import NUL_KEY_REASON, key_is_stored_as_is
from rag_ingest.core.records import DocumentInfo
from rag_ingest.core.registry import DocumentRecord
from rag_ingest.core.storage import s3
from rag_ingest.core.text.chunking import (
    CHUNKER_VERSION,
    Chunk,
    chunk_blocks,
    chunk_stats,
    encode_blocks,
)
from rag_ingest.core.text.model import ModelSpec, load_tokenizer, resolve_model

if TYPE_CHECKING:
    from tokenizers import Encoding

__all__ = [
    "CHUNKER_VERSION",
    "DocumentLimits",
    "DocumentProcessor",
    "ExtractionOutcome",
    "OutageGuard",
    "S3Unavailable",
    "chunk_document",
    "chunk_documents",
    "chunk_stats",
    "load_document",
]


def load_document(
    client: Any,
    record: DocumentRecord,
    processor: DocumentProcessor,
    limits: DocumentLimits | None = None,
) -> tuple[DocumentInfo, list[Block]]:
    """Fetch one object (in the calling thread) and extract its text in ``processor``'s
    worker processes (timeout and memory cap per document)."""
    limits = limits or processor.limits
    info = DocumentInfo.from_record(record)
    if not key_is_stored_as_is(record.bucket, record.key, record.doc_id):
        info.status, info.reason = "failed", f"{NUL_KEY_REASON} (stored as {record.key!r})"
        return info, []
    try:
        fetched = s3.fetch(client, record.bucket, record.key, limits.max_object_bytes)
    except s3.ObjectMissing:
        # A listing that no longer lists it marks it deleted; a delete-then-put ends in a
        # retry that reads it.
        info.status, info.reason = "missing", "object no longer exists in S3"
        info.retryable = True
        return info, []
    except s3.ObjectUnreadable as exc:
        kind = "transient S3 error" if exc.transient else "unreadable"
        info.status, info.reason = "failed", replace_surrogates(f"{kind}: {exc}")[:500]
        info.retryable = exc.transient
        return info, []
    except s3.ObjectTooLarge as exc:
        info.status, info.reason = (
            "failed",
            f"too large: {exc} (RAG_MAX_OBJECT_BYTES, Settings.max_object_bytes)",
        )
        return info, []
    info.etag = fetched.obj.etag
    info.size = fetched.obj.size
    info.last_modified = fetched.obj.last_modified.isoformat()
    info.content_type = fetched.content_type
    status, reason, doc = processor.extract(
        record.key, fetched.body, fetched.content_type, fetched.content_encoding
    )
    if doc is None:
        # Reasons quote parser messages, which may quote the document: keep them storable.
        info.status, info.reason = status, replace_surrogates(reason or "") or None
        info.retryable = transient_extraction(status, info.reason)
        return info, []
    info.format, info.title, info.pages, info.compressed = (
        doc.format,
        doc.title,
        doc.pages,
        doc.compressed,
    )
    if doc.note:
        info.reason = replace_surrogates(doc.note)
    return info, doc.blocks


class S3Unavailable(Exception):
    """Every read of a run failed transiently: S3 (or the way to it) is down, not a document.
    Failing the run lets Dagster's retries and the sensor's back-off wait for it, instead of
    spending every document's retry attempts on an outage."""


class OutageGuard:
    """Counts a run's reads: raises :class:`S3Unavailable` once ``threshold`` transient S3
    failures came with no successful read. A few unreadable objects among readable ones
    never trip it (thread-safe: documents are read in several threads)."""

    def __init__(self, threshold: int = 3) -> None:
        self.threshold = threshold
        self.read = self.transient = 0
        self._lock = threading.Lock()

    def observe(self, info: DocumentInfo) -> None:
        with self._lock:
            if info.retryable and (info.reason or "").startswith("transient S3 error"):
                self.transient += 1
            elif info.status != "missing":
                self.read += 1
            if not self.read and self.transient >= self.threshold:
                raise S3Unavailable(
                    f"{self.transient} reads in a row failed transiently and none succeeded; "
                    f"the last: {info.source}: {info.reason}"
                )


# Reasons of ``core.documents.isolation`` that say the worker, not the document, failed (a
# loaded machine, the OOM killer, an operator's kill): worth another attempt, within bounds.
_TRANSIENT_EXTRACTION = ("timed out after ", "extraction worker died")


def transient_extraction(status: str, reason: str | None) -> bool:
    return status == "failed" and (reason or "").startswith(_TRANSIENT_EXTRACTION)


def chunk_document(
    info: DocumentInfo,
    blocks: list[Block],
    max_tokens: int,
    overlap: int,
    encodings: Sequence[Encoding | None] | None = None,
    model: ModelSpec | None = None,
) -> list[Chunk]:
    """Chunks of a successfully extracted document; none for any other status.

    Never raises for document content: a failure while chunking sets ``info.status`` to
    ``failed`` with the reason, and a document without tokens becomes ``empty``. Invalid
    settings (``max_tokens``, ``overlap``) still raise ValueError: they are configuration.
    ``model``: whose tokenizer counts (the default model when None).
    """
    if info.status != "ok":
        return []
    spec = model or resolve_model()
    shape = {"tokenizer": load_tokenizer(spec.path), "limit": spec.chunk_limit}
    chunk_blocks([], max_tokens=max_tokens, overlap=overlap, **shape)  # settings errors raise
    try:
        chunks = chunk_blocks(
            blocks, max_tokens=max_tokens, overlap=overlap, encodings=encodings, **shape
        )
    except Exception as exc:
        reason = replace_surrogates(f"chunking failed: {type(exc).__name__}: {exc}")
        info.status, info.reason = "failed", reason[:500]
        return []
    if not chunks:
        info.status, info.reason = "empty", "no chunks: the extracted text has no tokens"
    return chunks


def chunk_documents(
    documents: Sequence[tuple[DocumentInfo, list[Block]]],
    max_tokens: int,
    overlap: int,
    model: ModelSpec | None = None,
) -> list[list[Chunk]]:
    """:func:`chunk_document` of each document, with their short blocks tokenized in one batch
    (the same chunks, in less time: the tokenizer runs the batch on all cores)."""
    spec = model or resolve_model()
    tokenizer = load_tokenizer(spec.path)
    chunk_blocks(  # settings errors raise here
        [], max_tokens=max_tokens, overlap=overlap, tokenizer=tokenizer, limit=spec.chunk_limit
    )
    ok = [blocks if info.status == "ok" else [] for info, blocks in documents]
    try:
        encodings: list[list[Encoding | None]] | None = encode_blocks(ok, tokenizer)
    except Exception:
        encodings = None  # each document is tokenized on its own; its failure stays its own
    return [
        chunk_document(info, blocks, max_tokens, overlap, encodings[n] if encodings else None, spec)
        for n, (info, blocks) in enumerate(documents)
    ]
