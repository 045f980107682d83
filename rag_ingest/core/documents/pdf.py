"""PDF → one block per page, with 1-based page numbers (pypdf).

A few KB of PDF can expand to megabytes of text (a repeated or compressed content stream), and
pypdf builds each page's text by repeated string concatenation, so text is counted while pypdf
produces it and extraction stops once the page limit (``PAGE_TEXT_CHARS``) or the document's
budget is spent. pypdf's stream limits are set to the document's decompression limit. Work
that produces no text (millions of drawing operators, ~20 µs each to parse) is bounded only by
the extraction worker's wall clock.
"""

from __future__ import annotations

import io
import logging
from typing import Any

from rag_ingest.core.documents.model import (
    Extracted,
    ExtractionError,
    Part,
    TextBudget,
    assemble_blocks,
)

_SHOW_TEXT = (b"Tj", b"TJ", b"'", b'"')
# The densest real pages (6-point spreadsheets) hold ~30k characters. A page far beyond that is
# a hostile repetition, and pypdf's quadratic concatenation makes it slow as well as large.
PAGE_TEXT_CHARS = 256 * 1024


class _BudgetSpent(BaseException):
    """Stops pypdf mid-page. A BaseException because pypdf swallows ``Exception`` raised while
    it extracts a form XObject, which would let a nested form run on past the budget."""


class _PageBudget(TextBudget):
    def take_or_stop(self, chars: int) -> None:
        self.used += chars
        if self.used > self.limit:
            raise _BudgetSpent


def _operand_chars(operands: list[Any]) -> int:
    total = 0
    for operand in operands:
        if isinstance(operand, (str, bytes)):
            total += len(operand)
        elif isinstance(operand, list):
            total += sum(len(x) for x in operand if isinstance(x, (str, bytes)))
    return total


def _may_show_text(page: Any) -> bool:
    # pypdf skips parsing a content stream without text operators, unless visitors are
    # given; keep that shortcut for figure-only pages (parsing costs ~5 µs per operator).
    try:
        from pypdf._text_extraction import _has_text_operator

        contents = page.get_contents()
        return contents is not None and bool(_has_text_operator(contents.get_data()))
    except Exception:  # a private helper of pypdf 7.1 or an unreadable stream: count anyway
        return True


def _page_text(page: Any, number: int, budget: TextBudget) -> str:
    if not _may_show_text(page):
        return page.extract_text() or ""
    # pypdf reports text only when a text object ends, and concatenates it quadratically before
    # that; so the strings of text-showing operators are counted as the content stream is read
    # (an upper bound for one-byte fonts, twice the text for two-byte ones), and what pypdf
    # reports is counted too, for font maps that turn one code into many characters. Both are
    # held to the smaller of the page limit and what is left of the document's budget.
    limit = min(PAGE_TEXT_CHARS, budget.limit - budget.used)
    shown, reported = _PageBudget(limit), _PageBudget(limit)

    def before(operator: bytes, operands: list[Any], *_: Any) -> None:
        if operator in _SHOW_TEXT:
            shown.take_or_stop(_operand_chars(operands))

    def report(text: str, *_: Any) -> None:
        reported.take_or_stop(len(text))

    try:
        return page.extract_text(visitor_operand_before=before, visitor_text=report) or ""
    except _BudgetSpent:
        if limit < PAGE_TEXT_CHARS:
            raise budget.exceeded() from None
        raise ExtractionError(
            "failed", f"page {number} yields more than {PAGE_TEXT_CHARS:,} characters of text"
        ) from None


def extract_pdf(
    data: bytes, budget: TextBudget | None = None, max_stream_bytes: int = 75_000_000
) -> Extracted:
    """Extract each page's text; corrupt, encrypted or image-only PDFs raise with a reason.

    ``max_stream_bytes`` caps every decompressed stream (pypdf's default is 75 MB).
    """
    from pypdf import PdfReader, apply_configuration
    from pypdf.errors import PyPdfError

    # pypdf logs every recoverable oddity of real-world PDFs as a warning; they are not ours.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    budget = budget or TextBudget(16 * len(data) + 1024 * 1024)
    stream_limit = max_stream_bytes
    try:
        with apply_configuration(
            zlib_maximum_output_length=stream_limit,
            lzw_maximum_output_length=stream_limit,
            run_length_maximum_output_length=stream_limit,
            array_based_stream_maximum_output_length=stream_limit,
        ):
            reader = PdfReader(io.BytesIO(data))
            if reader.is_encrypted:
                try:
                    unlocked = reader.decrypt("")
                except (PyPdfError, NotImplementedError, ValueError) as exc:
                    raise ExtractionError("failed", f"encrypted PDF ({exc})") from exc
                if not unlocked:
                    raise ExtractionError("failed", "encrypted PDF: a password is required")
            parts: list[Part] = []
            for number, page in enumerate(reader.pages, start=1):
                text = _page_text(page, number, budget)
                budget.take(len(text))
                parts.append((text, number, None, ()))
            page_count = len(reader.pages)
            title = None
            if reader.metadata is not None and reader.metadata.title:
                title = str(reader.metadata.title)
    except (ExtractionError, MemoryError):
        raise
    except Exception as exc:  # pypdf raises many types on damaged files; all mean "corrupt"
        raise ExtractionError("failed", f"corrupt PDF: {type(exc).__name__}: {exc}") from exc
    blocks = assemble_blocks(parts)
    if not blocks:
        raise ExtractionError(
            "empty", f"no extractable text in {page_count} PDF page(s) (scanned images?)"
        )
    return Extracted("pdf", blocks, title=title, pages=page_count)
