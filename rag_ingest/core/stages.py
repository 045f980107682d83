"""Per-document work of each asset, free of Dagster: fetch + extract, chunk."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rag_ingest.core import s3
from rag_ingest.core.chunking import Chunk, chunk_blocks
from rag_ingest.core.extract import Block, ExtractionError, extract
from rag_ingest.core.records import DocumentInfo
from rag_ingest.core.registry import DocumentRecord


@dataclass(frozen=True)
class DocumentLimits:
    max_object_bytes: int = 64 * 1024 * 1024
    timeout_seconds: float = 120.0


class DocumentProcessor:
    """Extracts documents (interim: in the calling thread)."""

    def __init__(self, limits: DocumentLimits, workers: int = 2) -> None:
        self.limits = limits

    def __enter__(self) -> DocumentProcessor:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def load_document(
    client: Any, record: DocumentRecord, processor: DocumentProcessor, limits: DocumentLimits
) -> tuple[DocumentInfo, list[Block]]:
    """Fetch one object and extract its text.

    Bad input (too large, undecodable, corrupt, unsupported, vanished) is returned as a status
    and reason on the :class:`DocumentInfo`; S3 failures that outlast the client's retries
    propagate, because they say nothing about the document.
    """
    max_bytes = limits.max_object_bytes
    info = DocumentInfo(
        doc_id=record.doc_id,
        bucket=record.bucket,
        key=record.key,
        etag=record.etag,
        size=record.size,
        last_modified=record.last_modified,
    )
    try:
        fetched = s3.fetch(client, record.bucket, record.key, max_bytes)
    except s3.ObjectMissing:
        info.status, info.reason = "missing", "object no longer exists in S3"
        return info, []
    except s3.ObjectTooLarge as exc:
        info.status, info.reason = "failed", f"too large: {exc} (S3Source.max_object_bytes)"
        return info, []
    info.etag = fetched.obj.etag
    info.size = fetched.obj.size
    info.last_modified = fetched.obj.last_modified.isoformat()
    info.content_type = fetched.content_type
    try:
        doc = extract(
            record.key,
            fetched.body,
            fetched.content_type,
            fetched.content_encoding,
            max_bytes=max_bytes,
        )
    except ExtractionError as exc:
        info.status, info.reason = exc.status, exc.reason
        return info, []
    except Exception as exc:  # a parser bug on odd input must not sink the other documents
        info.status, info.reason = "failed", f"parser error: {type(exc).__name__}: {exc}"
        return info, []
    info.format, info.title, info.pages, info.compressed = (
        doc.format,
        doc.title,
        doc.pages,
        doc.compressed,
    )
    return info, doc.blocks


def chunk_document(
    info: DocumentInfo, blocks: list[Block], max_tokens: int, overlap: int
) -> list[Chunk]:
    """Chunks of a successfully extracted document; none for any other status."""
    if info.status != "ok":
        return []
    chunks = chunk_blocks(blocks, max_tokens=max_tokens, overlap=overlap)
    if not chunks:
        info.status, info.reason = "empty", "no chunks: the extracted text has no tokens"
    return chunks
