"""Bytes of an S3 object → plain text split into blocks (pages, sections) with offsets.

Every outcome is either an :class:`Extracted` document or an :class:`ExtractionError` carrying
a status (``empty``, ``unsupported``, ``failed``) and a reason a person can act on.
"""

from __future__ import annotations

import codecs
import re
import zlib
from dataclasses import dataclass, field
from typing import Literal

Status = Literal["ok", "empty", "unsupported", "failed"]
Format = Literal["text", "markdown", "html", "pdf"]

_EXTENSIONS: dict[str, Format] = {
    ".txt": "text",
    ".text": "text",
    ".log": "text",
    ".rst": "text",
    ".csv": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".mdx": "markdown",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".pdf": "pdf",
}
_CONTENT_TYPES: dict[str, Format] = {
    "text/plain": "text",
    "text/markdown": "markdown",
    "text/x-markdown": "markdown",
    "text/html": "html",
    "application/xhtml+xml": "html",
    "application/pdf": "pdf",
}
# Magic numbers of common binary formats, so the reason names what the object really is.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG image"),
    (b"\xff\xd8\xff", "JPEG image"),
    (b"GIF8", "GIF image"),
    (b"PK\x03\x04", "ZIP archive (or DOCX/XLSX/PPTX)"),
    (b"\x7fELF", "ELF executable"),
    (b"7z\xbc\xaf\x27\x1c", "7-Zip archive"),
    (b"Rar!", "RAR archive"),
    (b"BZh", "bzip2 data"),
    (b"\xfd7zXZ\x00", "xz data"),
    (b"\xd0\xcf\x11\xe0", "OLE2 document (DOC/XLS)"),
    (b"RIFF", "RIFF media"),
    (b"OggS", "Ogg media"),
    (b"ID3", "MP3 audio"),
)
_GZIP_MAGIC = b"\x1f\x8b"
_HEADING_TAGS = {"h1", "h2", "h3", "h4", "h5", "h6"}


class ExtractionError(Exception):
    """A document that cannot be turned into text, with the reason recorded for the user."""

    def __init__(self, status: Status, reason: str) -> None:
        super().__init__(reason)
        self.status: Status = status
        self.reason = reason


@dataclass(frozen=True)
class Block:
    """A run of text with one page number and one nearest heading.

    ``start`` is the offset of ``text`` in :attr:`Extracted.text`.
    """

    text: str
    start: int
    page: int | None = None
    heading: str | None = None


@dataclass
class Extracted:
    format: Format
    blocks: list[Block]
    title: str | None = None
    pages: int | None = None
    compressed: bool = False
    text: str = field(default="", init=False)

    def __post_init__(self) -> None:
        self.text = "\n\n".join(b.text for b in self.blocks)


def assemble_blocks(parts: list[tuple[str, int | None, str | None]]) -> list[Block]:
    """Drop empty parts and give each block its offset in the joined document text."""
    blocks: list[Block] = []
    offset = 0
    for text, page, heading in parts:
        text = text.strip()
        if not text:
            continue
        blocks.append(Block(text=text, start=offset, page=page, heading=heading))
        offset += len(text) + 2  # the "\n\n" joiner of Extracted.text
    return blocks


def gunzip_bounded(data: bytes, limit: int) -> bytes:
    """Decompress gzip (all members) without ever holding more than ``limit`` bytes of output."""
    out = bytearray()
    rest = data
    while rest:
        decomp = zlib.decompressobj(wbits=31)
        try:
            out += decomp.decompress(rest, limit + 1 - len(out))
            if decomp.unconsumed_tail or len(out) > limit:
                raise ExtractionError(
                    "failed", f"gzip content expands beyond the {limit:,}-byte limit"
                )
            out += decomp.flush()
        except zlib.error as exc:
            raise ExtractionError("failed", f"corrupt gzip data: {exc}") from exc
        if not decomp.eof:
            raise ExtractionError("failed", "truncated gzip data")
        rest = decomp.unused_data.lstrip(b"\0")
    if len(out) > limit:
        raise ExtractionError("failed", f"gzip content expands beyond the {limit:,}-byte limit")
    return bytes(out)


def _charset(content_type: str | None) -> str | None:
    match = re.search(r"charset=\"?([\w.:-]+)", content_type or "", re.I)
    return match.group(1) if match else None


def decode_text(data: bytes, charset: str | None = None) -> str:
    """UTF-8 (BOM allowed), UTF-16 with a BOM, or the charset the object declares."""
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise ExtractionError("failed", f"invalid UTF-16 text: {exc.reason}") from exc
    if b"\0" in data[:8192]:
        raise ExtractionError("unsupported", "binary content (NUL bytes in the first 8 KiB)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if charset and codecs.lookup(charset).name != "utf-8":
            try:
                return data.decode(charset)
            except (UnicodeDecodeError, LookupError):
                pass
        raise ExtractionError(
            "failed", f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from exc


def detect_format(key: str, content_type: str | None, data: bytes) -> Format:
    """Pick a parser from the key's extension, then magic bytes, then the declared type."""
    lowered = key.lower()
    for ext, fmt in _EXTENSIONS.items():
        if lowered.endswith(ext):
            if fmt != "pdf" and data.startswith(b"%PDF-"):
                return "pdf"
            return fmt
    if data.startswith(b"%PDF-"):
        return "pdf"
    for magic, name in _MAGIC:
        if data.startswith(magic):
            raise ExtractionError("unsupported", f"unsupported binary format: {name}")
    mime = (content_type or "").split(";")[0].strip().lower()
    if mime in _CONTENT_TYPES:
        return _CONTENT_TYPES[mime]
    head = data[:512].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")):
        return "html"
    if mime.startswith("text/") or mime in ("", "binary/octet-stream", "application/octet-stream"):
        return "text"
    raise ExtractionError("unsupported", f"unsupported content type {mime!r} for key {key!r}")


def extract(
    key: str,
    data: bytes,
    content_type: str | None = None,
    content_encoding: str | None = None,
    max_bytes: int = 64 * 1024 * 1024,
) -> Extracted:
    """Turn one object's bytes into blocks of text.

    Raises:
        ExtractionError: for empty, unsupported, undecodable or corrupt input.
    """
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
        data = gunzip_bounded(data, max_bytes)
        compressed = True
        key = key[:-3] if key.lower().endswith(".gz") else key
        content_type = None if (content_type or "").endswith("gzip") else content_type
        if not data:
            raise ExtractionError("empty", "gzip content decompresses to 0 bytes")
    fmt = detect_format(key, content_type, data)
    if fmt == "pdf":
        from rag_ingest.core.pdf import extract_pdf

        result = extract_pdf(data)
    else:
        text = decode_text(data, _charset(content_type)).replace("\r\n", "\n").replace("\r", "\n")
        text = text.replace("\0", "")
        if fmt == "html":
            from rag_ingest.core.html import extract_html

            result = extract_html(text)
        elif fmt == "markdown":
            result = Extracted("markdown", assemble_blocks(split_markdown(text)))
        else:
            result = Extracted("text", assemble_blocks([(text, None, None)]))
    if not result.blocks:
        raise ExtractionError("empty", f"no text found in the {fmt} document")
    result.compressed = compressed
    return result


_ATX = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)[ \t#]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def split_markdown(text: str) -> list[tuple[str, int | None, str | None]]:
    """Split Markdown into sections at ATX and setext headings (not inside fenced code)."""
    sections: list[tuple[str, int | None, str | None]] = []
    lines = text.split("\n")
    heading: str | None = None
    current: list[str] = []
    carry: list[str] = []
    fence: str | None = None

    def flush() -> None:
        # A heading with no body of its own (e.g. "# Title" right before "## Part") is carried
        # into the next section instead of becoming a chunk of its own.
        if current and heading is not None and all(not line.strip() for line in current[1:]):
            carry.extend(line for line in current if line.strip())
        elif any(line.strip() for line in current):
            sections.append(("\n\n".join([*carry, "\n".join(current)]), None, heading))
            carry.clear()
        current.clear()

    for line in lines:
        fence_match = _FENCE.match(line)
        if fence_match:
            marker = fence_match.group(1)
            if fence is None:
                fence = marker[0] * 3
            elif marker.startswith(fence):
                fence = None
            current.append(line)
            continue
        if fence is None:
            atx = _ATX.match(line)
            if atx:
                flush()
                heading = atx.group(2).strip()
                current.append(line)
                continue
            setext = _SETEXT.match(line)
            # A one-line paragraph underlined with === or --- is a heading; "---" under a
            # longer paragraph is read as a rule, which costs nothing but a missed heading.
            if (
                setext
                and current
                and current[-1].strip()
                and (len(current) < 2 or not current[-2].strip())
            ):
                title = current.pop()
                flush()
                heading = title.strip()
                current.extend([title, line])
                continue
        current.append(line)
    flush()
    if carry:
        sections.append(("\n\n".join(carry), None, heading))
    return sections
