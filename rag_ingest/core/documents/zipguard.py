"""Zip containers (OOXML, EPUB) checked before any parser opens them.

Office and EPUB parsers open the archive themselves, so the bounds are set on the central
directory first: a member count cap, a cap on the sum of declared sizes (``zipfile`` stops each
member's output at its declared size and fails its CRC past it, so declared sizes bound what can
be inflated), a cap on each member's compression ratio, no encrypted members, and no DTDs in XML
members (entity expansion and external entities are refused before any XML parser sees them).
Nested archives are never opened: they are not text.
"""

from __future__ import annotations

import io
import zipfile

from rag_ingest.core.documents.model import ExtractionError

MAX_MEMBERS = 2000
# Text XML compresses to ~1/10; a member inflating past this ratio is a bomb, not a document.
MAX_RATIO = 200
_RATIO_FLOOR = 1 << 20  # members this small are never refused for their ratio
_XML_SUFFIXES = (".xml", ".rels", ".opf", ".ncx", ".xhtml", ".html", ".htm", ".vml")
_DTD_SCAN = 64 * 1024


def open_zip(data: bytes, what: str, max_bytes: int) -> zipfile.ZipFile:
    """The archive in ``data``, refused with a reason when it is corrupt, encrypted or a bomb."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        raise ExtractionError("failed", f"corrupt {what}: not a readable zip ({exc})") from exc
    if len(infos) > MAX_MEMBERS:
        raise ExtractionError(
            "failed", f"{what} has {len(infos):,} members (more than {MAX_MEMBERS:,})"
        )
    total = 0
    for info in infos:
        if info.flag_bits & 0x1:
            raise ExtractionError("failed", f"{what} is encrypted (password-protected)")
        total += info.file_size
        if info.file_size > _RATIO_FLOOR and info.file_size > MAX_RATIO * max(
            1, info.compress_size
        ):
            raise ExtractionError(
                "failed",
                f"{what} member {info.filename[:100]!r} inflates {info.file_size:,} bytes from "
                f"{info.compress_size:,} (zip bomb)",
            )
    if total > max_bytes:
        raise ExtractionError(
            "failed",
            f"{what} inflates to {total:,} bytes, beyond the {max_bytes:,}-byte limit "
            "(DocumentLimits.max_decompressed_bytes)",
        )
    for info in infos:
        if info.filename.lower().endswith(_XML_SUFFIXES):
            head = read_member(archive, info.filename, _DTD_SCAN, what, partial=True)
            if b"<!DOCTYPE" in head or b"<!ENTITY" in head:
                raise ExtractionError(
                    "failed", f"{what} member {info.filename[:100]!r} declares a DTD (refused)"
                )
    return archive


def read_member(
    archive: zipfile.ZipFile, name: str, limit: int, what: str, partial: bool = False
) -> bytes:
    """At most ``limit`` bytes of one member; more than that fails unless ``partial``."""
    try:
        with archive.open(name) as member:
            data = member.read(limit + 1)
    except KeyError as exc:
        raise ExtractionError("failed", f"corrupt {what}: no member {name!r}") from exc
    except (zipfile.BadZipFile, NotImplementedError, RuntimeError, EOFError, OSError) as exc:
        raise ExtractionError("failed", f"corrupt {what}: member {name!r}: {exc}") from exc
    if len(data) > limit and not partial:
        raise ExtractionError("failed", f"{what} member {name!r} is larger than {limit:,} bytes")
    return data[:limit]


def zip_kind(data: bytes) -> str | None:
    """``docx``/``pptx``/``xlsx``/``epub``/``zip`` from the member names, ``broken`` when the
    central directory is unreadable; None if the bytes do not start like a zip."""
    if not data.startswith(b"PK\x03\x04"):
        return None
    if data[30:38] == b"mimetype" and data[38:58].startswith(b"application/epub+zip"):
        return "epub"
    try:
        names = set(zipfile.ZipFile(io.BytesIO(data)).namelist())
    except (zipfile.BadZipFile, ValueError, EOFError):
        return "broken"
    if "[Content_Types].xml" in names:
        for kind, marker in (("docx", "word/"), ("pptx", "ppt/"), ("xlsx", "xl/")):
            if any(n.startswith(marker) for n in names):
                return kind
    if "META-INF/container.xml" in names and "mimetype" in names:
        return "epub"
    return "zip"
