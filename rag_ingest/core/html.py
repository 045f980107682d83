"""HTML → sections of readable text, split at headings, without page boilerplate."""

from __future__ import annotations

import re

from bs4 import BeautifulSoup
from bs4.element import (
    CData,
    Comment,
    Declaration,
    Doctype,
    NavigableString,
    PageElement,
    ProcessingInstruction,
    Tag,
)

from rag_ingest.core.extract import Extracted, assemble_blocks

# Elements whose text is never document content.
_DROP = {
    "script",
    "style",
    "noscript",
    "template",
    "nav",
    "header",
    "footer",
    "aside",
    "form",
    "svg",
    "canvas",
    "iframe",
    "button",
    "select",
    "head",
    "object",
    "embed",
    "dialog",
}
_BLOCK = {
    "p",
    "div",
    "section",
    "article",
    "main",
    "li",
    "ul",
    "ol",
    "table",
    "tr",
    "td",
    "th",
    "pre",
    "blockquote",
    "br",
    "dl",
    "dt",
    "dd",
    "figure",
    "figcaption",
    "hr",
    "address",
    "caption",
    "thead",
    "tbody",
    "tfoot",
    "details",
    "summary",
    "body",
}
_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
_SKIP_STRINGS = (Comment, Doctype, CData, Declaration, ProcessingInstruction)
_SPACES = re.compile(r"[ \t\f\v\u00a0]+")
_BLANKS = re.compile(r"\n\s*\n+")


def _clean(raw: str) -> str:
    lines = [_SPACES.sub(" ", line).strip() for line in raw.split("\n")]
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip()


def extract_html(markup: str) -> Extracted:
    """Parse with lxml through BeautifulSoup and walk the tree iteratively (no recursion limit)."""
    soup = BeautifulSoup(markup, "lxml")
    title_tag = soup.find("title")
    title = title_tag.get_text(" ", strip=True) if title_tag else None
    root = soup.body or soup
    parts: list[tuple[str, int | None, str | None]] = []
    heading: str | None = title or None
    buf: list[str] = []
    carry: list[str] = []

    def flush() -> None:
        text = _clean("".join(buf))
        # A heading with no body (e.g. <h1> right before <h2>) joins the next section.
        if heading is not None and text == heading:
            carry.append(text)
        elif text:
            parts.append(("\n\n".join([*carry, text]), None, heading))
            carry.clear()
        buf.clear()

    # Reverse-ordered stack of nodes; the string "\n" stands for the end of a block element.
    stack: list[PageElement | str] = list(reversed(list(root.children)))
    while stack:
        node = stack.pop()
        if isinstance(node, str) and not isinstance(node, NavigableString):
            buf.append(node)
        elif isinstance(node, NavigableString):
            if not isinstance(node, _SKIP_STRINGS):
                buf.append(str(node))
        elif isinstance(node, Tag):
            name = node.name.lower()
            if name in _DROP:
                continue
            if name in _HEADINGS:
                text = node.get_text(" ", strip=True)
                if text:
                    flush()
                    heading = text
                    buf.append(text + "\n\n")
                continue
            if name in _BLOCK:
                buf.append("\n")
                stack.append("\n")
            stack.extend(reversed(list(node.children)))
    flush()
    if carry:
        parts.append(("\n\n".join(carry), None, heading))
    return Extracted("html", assemble_blocks(parts), title=title)
