"""What a stored object is: its key's extension, its first bytes and its declared Content-Type.

The bytes win where they are unambiguous (a PDF named ``.bin``, a Word file named ``.zip``);
an extension that names one container format over the bytes of another is refused with both
names, since parsing it as either would be a guess. Only the standard library is used here, and
a zip's member names are read only when the bytes start like a zip, so the formats that were
detected before cost what they did.
"""

from __future__ import annotations

from rag_ingest.core.documents.model import ExtractionError
from rag_ingest.core.documents.zipguard import zip_kind

# Kinds: text markdown html pdf docx pptx xlsx csv tsv json jsonl email epub.
EXTENSIONS: dict[str, str] = {
    ".txt": "text",
    ".text": "text",
    ".log": "text",
    ".rst": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".mdx": "markdown",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".pdf": "pdf",
    ".docx": "docx",
    ".docm": "docx",
    ".pptx": "pptx",
    ".pptm": "pptx",
    ".xlsx": "xlsx",
    ".xlsm": "xlsx",
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".eml": "email",
    ".epub": "epub",
}
_OOXML = "application/vnd.openxmlformats-officedocument."
CONTENT_TYPES: dict[str, str] = {
    "text/plain": "text",
    "text/markdown": "markdown",
    "text/x-markdown": "markdown",
    "text/html": "html",
    "application/xhtml+xml": "html",
    "application/pdf": "pdf",
    _OOXML + "wordprocessingml.document": "docx",
    _OOXML + "presentationml.presentation": "pptx",
    _OOXML + "spreadsheetml.sheet": "xlsx",
    "text/csv": "csv",
    "text/tab-separated-values": "tsv",
    "application/json": "json",
    "application/x-ndjson": "jsonl",
    "application/jsonl": "jsonl",
    "message/rfc822": "email",
    "application/epub+zip": "epub",
}
_NAMES = {
    "pdf": "a PDF",
    "docx": "a Word document",
    "pptx": "a PowerPoint deck",
    "xlsx": "an Excel workbook",
    "epub": "an EPUB book",
    "zip": "a ZIP archive",
    "broken": "a ZIP archive (unreadable)",
    "ole2": "an OLE2 file (legacy or password-protected Office)",
}
_CONTAINERS = ("docx", "pptx", "xlsx", "epub")
# Magic numbers of common binary formats, so the reason names what the object really is.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG image"),
    (b"\xff\xd8\xff", "JPEG image"),
    (b"GIF8", "GIF image"),
    (b"\x7fELF", "ELF executable"),
    (b"7z\xbc\xaf\x27\x1c", "7-Zip archive"),
    (b"Rar!", "RAR archive"),
    (b"BZh", "bzip2 data"),
    (b"\xfd7zXZ\x00", "xz data"),
    (b"RIFF", "RIFF media"),
    (b"OggS", "Ogg media"),
    (b"ID3", "MP3 audio"),
)
_EMAIL_HEADERS = (b"from:", b"received:", b"return-path:", b"message-id:", b"mime-version:")


def sniff(data: bytes) -> str | None:
    """The container kind the bytes show, if any."""
    if data.startswith(b"%PDF-"):
        return "pdf"
    if data.startswith(b"\xd0\xcf\x11\xe0"):
        return "ole2"
    return zip_kind(data)


def _extension(key: str) -> str | None:
    lowered = key.lower()
    for ext, kind in EXTENSIONS.items():
        if lowered.endswith(ext):
            return kind
    return None


def detect_kind(key: str, content_type: str | None, data: bytes) -> str:
    """The parser for this object, or :class:`ExtractionError` ``unsupported`` with a reason."""
    by_name = _extension(key)
    mime = (content_type or "").split(";")[0].strip().lower()
    by_type = CONTENT_TYPES.get(mime)
    by_bytes = sniff(data)
    claimed = by_name or by_type
    if claimed in _CONTAINERS and by_bytes in ("ole2", "broken"):
        return claimed  # the extractor names it: password-protected, legacy or corrupt
    if claimed in _CONTAINERS and by_bytes != claimed:
        what = _NAMES.get(by_bytes or "", "not a zip container")
        raise ExtractionError(
            "unsupported",
            f"{key!r} claims to be {_NAMES[claimed]} but its bytes are {what}",
        )
    if by_bytes == "pdf" or by_bytes in _CONTAINERS:
        return by_bytes
    if by_name is not None:
        return by_name
    if by_bytes in ("zip", "broken", "ole2"):
        raise ExtractionError("unsupported", f"unsupported binary format: {_NAMES[by_bytes]}")
    for magic, name in _MAGIC:
        if data.startswith(magic):
            raise ExtractionError("unsupported", f"unsupported binary format: {name}")
    if by_type is not None:
        return by_type
    head = data[:512].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")):
        return "html"
    if head.startswith(_EMAIL_HEADERS) and b"\nsubject:" in data[:8192].lower():
        return "email"
    if mime.startswith("text/") or mime in ("", "binary/octet-stream", "application/octet-stream"):
        return "text"
    raise ExtractionError("unsupported", f"unsupported content type {mime!r} for key {key!r}")
