"""HTML → sections of readable text, split at headings, without page boilerplate.

libxml2's HTML parser (through lxml) reports start tags, end tags and text to a target object
as it reads; no tree is built. Memory is therefore the text kept plus the stack of open
elements, whatever the element count (1.5 MB of ``<i>x</i>`` costs a few MB, not the ~200 MB a
BeautifulSoup tree took), and time is one pass over the markup. Text past the budget stops the
parse with a reason.
"""

from __future__ import annotations

import re

import lxml.etree as etree

from rag_ingest.core.documents.model import (
    Extracted,
    ExtractionError,
    Part,
    TextBudget,
    assemble_blocks,
)

# Elements whose text is never document content.
_DROP = frozenset(
    {
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
        "math",
    }
)
_BLOCK = frozenset(
    {
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
)
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
# Each pattern matches a run of one character class: linear, no backtracking over a run.
_SPACES = re.compile(r"[^\S\n]+")
_EDGE_SPACES = re.compile(r" ?\n ?")
_BLANKS = re.compile(r"\n{3,}")
# Markup is fed in slices so a parse can stop soon after the budget is spent.
_FEED = 1 << 20


def _clean(raw: str) -> str:
    text = _EDGE_SPACES.sub("\n", _SPACES.sub(" ", raw))
    return _BLANKS.sub("\n\n", text).strip()


def _words(parts: list[str]) -> str:
    # What BeautifulSoup's get_text(" ", strip=True) gave: stripped strings joined by spaces.
    return " ".join(s for s in (p.strip() for p in parts) if s)


class _Sections:
    """lxml parser target: collects (text, heading, path) sections as the parser reads."""

    def __init__(self, budget: TextBudget) -> None:
        self.budget = budget
        self.parts: list[Part] = []
        self.title: str | None = None
        self.error: ExtractionError | None = None
        self._open: list[tuple[str, bool]] = []  # (tag, dropped) of open elements
        self._title: list[str] | None = None
        self._heading: tuple[int, list[str]] | None = None
        self._path: list[tuple[int, str]] = []
        self._buf: list[str] = []
        self._carry: list[str] = []
        self._current: str | None = None

    def _dropped(self) -> bool:
        return bool(self._open) and self._open[-1][1]

    def start(self, tag: str, attrib: object) -> None:
        tag = tag.lower() if isinstance(tag, str) else ""
        dropped = self._dropped() or tag in _DROP
        self._open.append((tag, dropped))
        if tag == "title" and self.title is None and not any(t == "svg" for t, _ in self._open):
            self._title = []
        if dropped:
            return
        if tag in _HEADINGS and self._heading is None:
            self._heading = (_HEADINGS[tag], [])
        elif tag in _BLOCK:
            self._buf.append("\n")

    def end(self, tag: str) -> None:
        tag = tag.lower() if isinstance(tag, str) else ""
        dropped = self._open.pop()[1] if self._open else False
        if tag == "title" and self._title is not None:
            self.title = _words(self._title) or None
            self._title = None
        if dropped:
            return
        if tag in _HEADINGS and self._heading is not None:
            level, words = self._heading
            self._heading = None
            text = _words(words)
            if text:
                self._flush()
                while self._path and self._path[-1][0] >= level:
                    self._path.pop()
                self._path.append((level, text))
                self._current = text
                self._buf.append(text + "\n\n")
        elif tag in _BLOCK:
            self._buf.append("\n")

    def data(self, data: str) -> None:
        if self._title is not None:
            self._title.append(data)
        if self._dropped() or self.error is not None:
            return
        try:
            self.budget.take(len(data))
        except ExtractionError as exc:
            self.error = exc  # raised after the current feed; lxml would wrap it
            return
        if self._heading is not None:
            self._heading[1].append(data)
        else:
            self._buf.append(data)

    def _flush(self) -> None:
        text = _clean("".join(self._buf))
        self._buf.clear()
        # A heading with no body (e.g. <h1> right before <h2>) joins the next section.
        if self._current is not None and text == self._current:
            self._carry.append(text)
        elif text:
            path = tuple(t for _, t in self._path)
            # Text before the first heading is filed under the page title, as before.
            heading = self._current if self._current is not None else self.title
            self.parts.append(("\n\n".join([*self._carry, text]), None, heading, path))
            self._carry.clear()

    def close(self) -> None:
        self._flush()
        if self._carry:
            # A trailing heading with no body joins the previous section, never alone.
            carried = "\n\n".join(self._carry)
            if self.parts:
                text, page, heading, path = self.parts.pop()
                self.parts.append((f"{text}\n\n{carried}", page, heading, path))
            else:
                path = tuple(t for _, t in self._path)
                self.parts.append((carried, None, self._current, path))
            self._carry.clear()


def extract_html(markup: str, budget: TextBudget | None = None) -> Extracted:
    """Sections of an HTML page split at h1-h6, with heading paths; boilerplate dropped."""
    target = _Sections(budget or TextBudget(len(markup) + 1))
    # huge_tree: libxml2 otherwise refuses nesting deeper than 256 and very long text nodes;
    # neither costs more than linear time or memory here since no tree is built.
    parser = etree.HTMLParser(target=target, huge_tree=True, no_network=True)
    for offset in range(0, len(markup), _FEED):
        parser.feed(markup[offset : offset + _FEED])
        if target.error is not None:
            raise target.error
    try:
        parser.close()
    except etree.LxmlError:
        target.close()  # nothing parseable (e.g. no markup at all): keep what was read
    if target.error is not None:
        raise target.error
    return Extracted("html", assemble_blocks(target.parts), title=target.title)
