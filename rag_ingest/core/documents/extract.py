"""Bytes of an S3 object → plain text split into blocks (pages, sections) with offsets.

Every outcome is either an :class:`Extracted` document or an :class:`ExtractionError` carrying a
status (``empty``, ``unsupported``, ``failed``) and a reason a person can act on. Work and
memory are bounded by :class:`~rag_ingest.core.documents.limits.DocumentLimits` whatever the
bytes are: decompression stops at ``max_decompressed_bytes``, every format stops at
``max_text_chars``, and no step is super-linear in its input. This is the pure function an
extraction worker runs (:mod:`rag_ingest.core.documents.isolation` adds the wall-clock and
memory limits).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable

from rag_ingest.core.documents.decode import DecodeError, decode_bytes
from rag_ingest.core.documents.detect import detect_kind
from rag_ingest.core.documents.limits import DocumentLimits
from rag_ingest.core.documents.model import (
    Extracted,
    ExtractionError,
    Status,
    TextBudget,
    assemble_blocks,
    clean_title,
)

_GZIP_MAGIC = b"\x1f\x8b"
_NOT_NUL = re.compile(b"[^\\x00]")


def gunzip_bounded(data: bytes, limit: int) -> bytes:
    """Decompress gzip (all members) without ever holding more than ``limit`` bytes of output.

    Input goes to zlib in pieces that start small and double, so finding where one member ends
    copies at most about that member's size (zlib copies the unread input after a stream's end):
    many tiny members cost linear time, not the quadratic time of handing zlib the whole rest.
    """
    out = bytearray()
    view = memoryview(data)
    pos, size = 0, len(data)
    while pos < size:
        decomp = zlib.decompressobj(wbits=31)
        step = 256
        try:
            while not decomp.eof:
                if pos >= size:
                    raise ExtractionError("failed", "truncated gzip data")
                piece = view[pos : pos + step]
                pending: bytes | memoryview = piece
                while pending:
                    # Output in slices of at most 1 MiB: a bomb never lands as one huge chunk.
                    out += decomp.decompress(pending, min(limit + 1 - len(out), 1 << 20))
                    if len(out) > limit:
                        raise ExtractionError(
                            "failed", f"gzip content expands beyond the {limit:,}-byte limit"
                        )
                    pending = decomp.unconsumed_tail
                pos += len(piece) - len(decomp.unused_data)
                step = min(2 * step, 1 << 20)
            out += decomp.flush()
        except zlib.error as exc:
            raise ExtractionError("failed", f"corrupt gzip data: {exc}") from exc
        if len(out) > limit:
            raise ExtractionError("failed", f"gzip content expands beyond the {limit:,}-byte limit")
        padding = _NOT_NUL.search(data, pos)  # NUL padding between members (tape-style)
        pos = padding.start() if padding else size
    return bytes(out)


def decode_text(data: bytes, content_type: str | None = None, html: bool = False) -> str:
    """Text as its source declares it (see :mod:`rag_ingest.core.documents.decode`)."""
    try:
        return decode_bytes(data, content_type, html).text
    except DecodeError as exc:
        status: Status = "unsupported" if exc.status == "unsupported" else "failed"
        raise ExtractionError(status, exc.reason) from exc


def detect_format(key: str, content_type: str | None, data: bytes) -> str:
    """Pick a parser from the bytes, the key's extension and the declared type (:mod:`.detect`)."""
    return detect_kind(key, content_type, data)


def _attachment_reader(limits: DocumentLimits, budget: TextBudget) -> Callable[..., Extracted]:
    def read(name: str, data: bytes, content_type: str) -> Extracted:
        kind = detect_kind(name, content_type, data)
        if kind == "email":
            raise ExtractionError("unsupported", "nested message not opened")
        return _extract_kind(kind, name, data, content_type, limits, budget, None)

    return read


def _extract_kind(
    fmt: str,
    key: str,
    data: bytes,
    content_type: str | None,
    limits: DocumentLimits,
    budget: TextBudget | None,
    attachments: Callable[..., Extracted] | None,
) -> Extracted:
    """One format's extractor; the new families are imported only when their format comes."""
    if fmt == "pdf":
        from rag_ingest.core.documents.pdf import extract_pdf

        budget = budget or TextBudget(limits.pdf_text_chars(len(data)))
        return extract_pdf(data, budget, limits.max_decompressed_bytes)
    budget = budget or TextBudget(limits.max_text_chars)
    cap = limits.max_decompressed_bytes
    if fmt in ("docx", "pptx", "xlsx"):
        from rag_ingest.core.documents import office

        extractor = {"docx": office.extract_docx, "pptx": office.extract_pptx}.get(
            fmt, office.extract_xlsx
        )
        return extractor(data, budget, cap)
    if fmt == "epub":
        from rag_ingest.core.documents.epub import extract_epub

        return extract_epub(data, budget, cap)
    if fmt == "email":
        from rag_ingest.core.documents.email import extract_email

        return extract_email(data, budget, attachments)
    text = decode_text(data, content_type, html=fmt == "html")
    if fmt == "html":
        from rag_ingest.core.documents.html import extract_html

        return extract_html(text, budget)
    if fmt in ("csv", "tsv", "json", "jsonl"):
        from rag_ingest.core.documents import tabular

        if fmt in ("csv", "tsv"):
            name = key.rsplit("/", 1)[-1] or "table"
            return tabular.extract_csv(text, name, fmt == "tsv", budget)
        return tabular.extract_json(text, fmt == "jsonl", budget)
    budget.take(len(text))
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\0", "")
    if fmt == "markdown":
        from rag_ingest.core.documents.markdown import split_markdown

        return Extracted("markdown", assemble_blocks(split_markdown(text)))
    return Extracted("text", assemble_blocks([(text, None, None, ())]))


def extract(
    key: str,
    data: bytes,
    content_type: str | None = None,
    content_encoding: str | None = None,
    max_bytes: int | None = None,
    limits: DocumentLimits | None = None,
) -> Extracted:
    """Turn one object's bytes into blocks of text.

    ``limits`` bounds the work (``max_bytes`` alone is the older spelling of its
    ``max_decompressed_bytes``).

    Raises:
        ExtractionError: for empty, unsupported, undecodable, corrupt or oversized input.
    """
    if limits is None:
        limits = (
            DocumentLimits()
            if max_bytes is None
            else DocumentLimits(max_decompressed_bytes=max_bytes)
        )
    if not data:
        raise ExtractionError("empty", "empty object (0 bytes)")
    compressed = False
    if (
        data.startswith(_GZIP_MAGIC)
        or key.lower().endswith(".gz")
        or ((content_encoding or "").lower() == "gzip")
    ):
        if not data.startswith(_GZIP_MAGIC):
            raise ExtractionError("failed", "key ends in .gz but the content is not gzip")
        data = gunzip_bounded(data, limits.max_decompressed_bytes)
        compressed = True
        key = key[:-3] if key.lower().endswith(".gz") else key
        content_type = None if (content_type or "").endswith("gzip") else content_type
        if not data:
            raise ExtractionError("empty", "gzip content decompresses to 0 bytes")
    fmt = detect_kind(key, content_type, data)
    attachments = _attachment_reader(limits, TextBudget(limits.max_text_chars))
    result = _extract_kind(fmt, key, data, content_type, limits, None, attachments)
    if not result.blocks:
        raise ExtractionError("empty", f"no text found in the {fmt} document")
    result.compressed = compressed
    result.title = clean_title(result.title)
    return result
