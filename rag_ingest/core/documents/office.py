"""Office Open XML: Word (python-docx), PowerPoint (python-pptx), Excel (openpyxl read-only).

Every archive passes :func:`~rag_ingest.core.documents.zipguard.open_zip` first (member count,
inflated size, ratio, encryption, DTDs), so the libraries only ever parse bounded, entity-free
XML. Macro-enabled files (``.docm``/``.pptm``/``.xlsm``) are read the same way: their macros
are bytes in a member nobody opens. Structure kept: Word's heading path and tables as rows under
their header; a slide's number (as ``page``), title and speaker notes; a sheet's name and row
ranges with the header row repeated (see :mod:`.tabular`).
"""

from __future__ import annotations

import io
from typing import Any

from rag_ingest.core.documents.model import (
    Extracted,
    ExtractionError,
    Part,
    TextBudget,
    assemble_blocks,
)
from rag_ingest.core.documents.tabular import Truncation, table_parts
from rag_ingest.core.documents.zipguard import open_zip

_OLE2 = b"\xd0\xcf\x11\xe0"


def _open(data: bytes, what: str, max_bytes: int) -> None:
    if data.startswith(_OLE2):
        # Office wraps a password-protected OOXML file in an OLE2 container.
        raise ExtractionError(
            "failed", f"{what} is password-protected or a legacy binary Office file (OLE2)"
        )
    open_zip(data, what, max_bytes).close()


def _library_error(what: str, exc: Exception) -> ExtractionError:
    return ExtractionError("failed", f"corrupt {what}: {type(exc).__name__}: {exc}"[:300])


def _docx_table(table: Any, heading: str | None, path: tuple[str, ...], n: int) -> list[Part]:
    rows = [[cell.text for cell in row.cells] for row in table.rows]
    budget = TextBudget(1 << 62)
    name = f"Table {n}" + (f" ({heading})" if heading else "")
    return [
        (text, None, heading, path)
        for text, _p, _h, _path in table_parts(name, rows, budget, Truncation())
    ]


def extract_docx(data: bytes, budget: TextBudget, max_bytes: int) -> Extracted:
    _open(data, "Word document", max_bytes)
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:  # python-docx raises several types for broken packages
        raise _library_error("Word document", exc) from exc
    parts: list[Part] = []
    path: list[str] = []
    paragraph: list[str] = []
    tables = 0
    style_names: dict[str | None, str] = {}

    def flush() -> None:
        if paragraph:
            parts.append(("\n".join(paragraph), None, path[-1] if path else None, tuple(path)))
            paragraph.clear()

    for item in document.iter_inner_content():
        if isinstance(item, Table):
            flush()
            tables += 1
            heading = path[-1] if path else None
            for part in _docx_table(item, heading, tuple(path), tables):
                budget.take(len(part[0]))
                parts.append(part)
            continue
        assert isinstance(item, Paragraph)
        text = item.text.strip()
        if not text:
            continue
        budget.take(len(text) + 1)
        # Paragraph.style searches the styles part on every call: look each style id up once.
        style_id = item._p.style  # python-docx has no public style id
        if style_id not in style_names:
            style_names[style_id] = (item.style.name if item.style is not None else "") or ""
        style = style_names[style_id]
        if style.startswith("Heading") or style == "Title":
            flush()
            level = int(style.split()[-1]) if style.split()[-1].isdigit() else 1
            del path[level - 1 :]
            path.extend([""] * (level - 1 - len(path)))
            path.append(text)
            paragraph.append(text)
        else:
            paragraph.append(text)
    flush()
    title = document.core_properties.title or (path[0] if path else None)
    return Extracted("docx", assemble_blocks(parts), title=title)


def extract_pptx(data: bytes, budget: TextBudget, max_bytes: int) -> Extracted:
    _open(data, "PowerPoint deck", max_bytes)
    import pptx

    try:
        deck = pptx.Presentation(io.BytesIO(data))
    except Exception as exc:
        raise _library_error("PowerPoint deck", exc) from exc
    parts: list[Part] = []
    number = 0
    for number, slide in enumerate(deck.slides, start=1):
        title_shape = slide.shapes.title
        title = title_shape.text_frame.text.strip() if title_shape is not None else ""
        title_id = title_shape.shape_id if title_shape is not None else None
        texts: list[str] = []
        for shape in slide.shapes:
            any_shape: Any = shape  # text_frame/table exist on the subclasses these flags name
            if shape.has_text_frame and shape.shape_id != title_id:
                texts.append(any_shape.text_frame.text)
            if getattr(shape, "has_table", False):
                rows = [[c.text for c in row.cells] for row in any_shape.table.rows]
                texts.extend(" | ".join(r) for r in rows)
        notes = ""
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            notes = slide.notes_slide.notes_text_frame.text.strip()
        head = f"Slide {number}" + (f": {title}" if title else "")
        body = "\n".join([head, *[t.strip() for t in texts if t.strip()]])
        if notes:
            body += f"\nSpeaker notes: {notes}"
        budget.take(len(body))
        parts.append((body, number, title or head, (head,)))
    return Extracted("pptx", assemble_blocks(parts), pages=number)


def extract_xlsx(data: bytes, budget: TextBudget, max_bytes: int) -> Extracted:
    _open(data, "Excel workbook", max_bytes)
    import openpyxl

    try:
        book = openpyxl.load_workbook(
            io.BytesIO(data), read_only=True, data_only=True, keep_links=False
        )
    except Exception as exc:
        raise _library_error("Excel workbook", exc) from exc
    parts: list[Part] = []
    cut = Truncation()
    try:
        for sheet in book.worksheets:
            parts.extend(table_parts(sheet.title, sheet.iter_rows(values_only=True), budget, cut))
    finally:
        book.close()
    return Extracted("xlsx", assemble_blocks(parts), note=cut.note())
