"""PDF → one block per page, with 1-based page numbers (pypdf)."""

from __future__ import annotations

import io
import logging

from rag_ingest.core.extract import Extracted, ExtractionError, assemble_blocks


def extract_pdf(data: bytes) -> Extracted:
    """Extract each page's text; corrupt, encrypted or image-only PDFs raise with a reason."""
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    # pypdf logs every recoverable oddity of real-world PDFs as a warning; they are not ours.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                unlocked = reader.decrypt("")
            except (PyPdfError, NotImplementedError, ValueError) as exc:
                raise ExtractionError("failed", f"encrypted PDF ({exc})") from exc
            if not unlocked:
                raise ExtractionError("failed", "encrypted PDF: a password is required")
        parts: list[tuple[str, int | None, str | None]] = []
        for number, page in enumerate(reader.pages, start=1):
            parts.append((page.extract_text() or "", number, None))
        page_count = len(reader.pages)
        title = None
        if reader.metadata is not None and reader.metadata.title:
            title = str(reader.metadata.title)
    except ExtractionError:
        raise
    except Exception as exc:  # pypdf raises many types on damaged files; all mean "corrupt"
        raise ExtractionError("failed", f"corrupt PDF: {type(exc).__name__}: {exc}") from exc
    blocks = assemble_blocks(parts)
    if not blocks:
        raise ExtractionError(
            "empty", f"no extractable text in {page_count} PDF page(s) (scanned images?)"
        )
    return Extracted("pdf", blocks, title=title, pages=page_count)
