"""The shapes every extractor shares: blocks of text, the extracted document, its failure.

The format parsers (:mod:`.html`, :mod:`.pdf`, :mod:`.markdown`) and the dispatcher
(:mod:`.extract`) all build these; keeping them here lets the dispatcher import the parsers
without the parsers importing the dispatcher back.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal

from rag_ingest.core.documents.decode import replace_surrogates

Status = Literal["ok", "empty", "unsupported", "failed"]
Format = Literal[
    "text", "markdown", "html", "pdf", "docx", "pptx", "xlsx", "csv", "json", "email", "epub"
]

# Headings and titles ride in every chunk's payload; the full text stays in the chunk itself.
MAX_HEADING_CHARS = 200
MAX_TITLE_CHARS = 500

# (text, page, heading, heading path) of one block before offsets are assigned.
Part = tuple[str, int | None, str | None, tuple[str, ...]]


class ExtractionError(Exception):
    """A document that cannot be turned into text, with the reason recorded for the user."""

    def __init__(self, status: Status, reason: str) -> None:
        super().__init__(reason)
        self.status: Status = status
        self.reason = reason


@dataclass(frozen=True)
class Block:
    """A run of text with one page number and one nearest heading.

    ``start`` is the offset of ``text`` in :attr:`Extracted.text`; ``heading_path`` is the chain
    of headings above the block, outermost first (``("Guide", "Install", "Linux")``), when the
    format has a hierarchy (Markdown, HTML).
    """

    text: str
    start: int
    page: int | None = None
    heading: str | None = None
    heading_path: tuple[str, ...] = ()


@dataclass
class Extracted:
    format: Format
    blocks: list[Block]
    title: str | None = None
    pages: int | None = None
    compressed: bool = False
    # What the caps cut (rows, fields, attachments), recorded as the document's reason.
    note: str | None = None

    @functools.cached_property
    def text(self) -> str:
        """The document's text: its blocks joined by blank lines (built on first use)."""
        return "\n\n".join(b.text for b in self.blocks)


class TextBudget:
    """Counts extracted characters and fails the document once they pass ``limit``."""

    def __init__(self, limit: int, what: str = "extracted text") -> None:
        self.limit = limit
        self.used = 0
        self.what = what

    def exceeded(self) -> ExtractionError:
        return ExtractionError(
            "failed",
            f"{self.what} exceeds the {self.limit:,}-character limit "
            "(DocumentLimits.max_text_chars)",
        )

    def take(self, chars: int) -> None:
        self.used += chars
        if self.used > self.limit:
            raise self.exceeded()


def _short(text: str | None, limit: int) -> str | None:
    if text is None:
        return None
    text = replace_surrogates(" ".join(text[: 4 * limit].split()))
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def clean_title(title: str | None) -> str | None:
    """A document title fit for every chunk's payload: one line, bounded, serialisable."""
    return _short(title, MAX_TITLE_CHARS) or None


def assemble_blocks(parts: list[Part]) -> list[Block]:
    """Drop empty parts and give each block its offset in the joined document text.

    Text is made serialisable here (lone surrogates, which some PDFs' font maps produce, become
    U+FFFD without changing any length); headings are bounded to ``MAX_HEADING_CHARS``.
    """
    blocks: list[Block] = []
    offset = 0
    for text, page, heading, path in parts:
        text = replace_surrogates(text.strip())
        if not text:
            continue
        blocks.append(
            Block(
                text=text,
                start=offset,
                page=page,
                heading=_short(heading, MAX_HEADING_CHARS),
                heading_path=tuple(_short(h, MAX_HEADING_CHARS) or "" for h in path),
            )
        )
        offset += len(text) + 2  # the "\n\n" joiner of Extracted.text
    return blocks
