"""EPUB books: the standard library's ``zipfile`` behind the zip guard, ``defusedxml`` for the
container and package files, and the HTML extractor for each chapter in spine order.

ebooklib would parse the same files with lxml and pull in its own copy of the whole book; the
spine is the only structure retrieval needs, so the few lines here keep the dependency out (see
``docs/architecture.md``). A chapter's blocks keep their HTML heading paths.
"""

from __future__ import annotations

import posixpath
from typing import Any

from rag_ingest.core.documents.model import (
    Extracted,
    ExtractionError,
    Part,
    TextBudget,
    assemble_blocks,
)
from rag_ingest.core.documents.zipguard import open_zip, read_member

_OPF = "{http://www.idpf.org/2007/opf}"
_DC = "{http://purl.org/dc/elements/1.1/}"
_CONTAINER = "{urn:oasis:names:tc:opendocument:xmlns:container}"


def _xml(raw: bytes, what: str) -> Any:  # defusedxml's Element is untyped
    from defusedxml import ElementTree
    from defusedxml.common import DefusedXmlException

    try:
        return ElementTree.fromstring(raw, forbid_dtd=True)
    except (DefusedXmlException, ElementTree.ParseError) as exc:
        raise ExtractionError("failed", f"corrupt EPUB: {what}: {exc}") from exc


def extract_epub(data: bytes, budget: TextBudget, max_bytes: int) -> Extracted:
    from rag_ingest.core.documents.decode import decode_bytes
    from rag_ingest.core.documents.html import extract_html

    archive = open_zip(data, "EPUB book", max_bytes)
    container = _xml(read_member(archive, "META-INF/container.xml", 1 << 20, "EPUB"), "container")
    rootfile = container.find(f".//{_CONTAINER}rootfile")
    if rootfile is None or not rootfile.get("full-path"):
        raise ExtractionError("failed", "corrupt EPUB: container.xml names no package file")
    opf_path = rootfile.get("full-path", "")
    opf = _xml(read_member(archive, opf_path, 8 << 20, "EPUB"), opf_path)
    title_el = opf.find(f".//{_DC}title")
    title = (title_el.text or "").strip() if title_el is not None else None
    manifest = {
        item.get("id"): item.get("href", "") for item in opf.iter(f"{_OPF}item") if item.get("id")
    }
    base = posixpath.dirname(opf_path)
    parts: list[Part] = []
    for chapter, ref in enumerate(opf.iter(f"{_OPF}itemref"), start=1):
        href = manifest.get(ref.get("idref"))
        if not href:
            continue
        name = posixpath.normpath(posixpath.join(base, href.split("#")[0]))
        raw = read_member(archive, name, max_bytes, "EPUB")
        doc = extract_html(decode_bytes(raw, None, True).text, budget)
        label = doc.title or f"Chapter {chapter}"
        for block in doc.blocks:
            path = block.heading_path or (label,)
            parts.append((block.text, None, block.heading or label, path))
    archive.close()
    return Extracted("epub", assemble_blocks(parts), title=title or None)
