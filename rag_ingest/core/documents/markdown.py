"""Markdown → sections at ATX and setext headings (not inside fenced code), in linear time.

Sections are found by offsets into the text: only lines that can start a heading or a fence
(``#``, `````, ``~``, ``=``, ``-`` after at most three spaces) are looked at in Python, every other
line is skipped by one regex scan, and each section's text is one slice. No regex backtracks
over a line's length, so a 1 MB line costs what reading it costs.
"""

from __future__ import annotations

import re
from typing import NamedTuple

_CANDIDATE = re.compile(r"^ {0,3}[#`~=\-]", re.M)
_NON_SPACE = re.compile(r"\S")

Section = tuple[str, int | None, str | None, tuple[str, ...]]


class _Start(NamedTuple):
    start: int  # offset of the section's first line (its heading)
    body: int  # offset just after its heading line(s)
    heading: str | None
    path: tuple[str, ...]


def _line_end(text: str, start: int) -> int:
    end = text.find("\n", start)
    return len(text) if end < 0 else end


def atx_heading(line: str) -> tuple[int, str] | None:
    """``(level, title)`` of an ATX heading line, else None (CommonMark rules, no regex)."""
    stripped = line.lstrip(" ")
    if len(line) - len(stripped) > 3 or not stripped.startswith("#"):
        return None
    rest = stripped.lstrip("#")
    level = len(stripped) - len(rest)
    if level > 6 or (rest and rest[0] not in " \t"):
        return None
    title = rest.strip(" \t")
    closing = title.rstrip("#")
    if not closing:
        title = ""
    elif len(closing) < len(title) and closing[-1] in " \t":
        title = closing.rstrip(" \t")
    return (level, title) if title else None


def _fence(line: str) -> str | None:
    stripped = line.lstrip(" ")
    if len(line) - len(stripped) > 3:
        return None
    for char in "`~":
        if stripped.startswith(char * 3):
            return char
    return None


def _underline(line: str) -> int | None:
    """Setext level of an underline (``===`` → 1, ``---`` → 2), else None."""
    stripped = line.strip(" \t")
    if len(line) - len(line.lstrip(" ")) > 3 or not stripped:
        return None
    if not stripped.strip("="):
        return 1
    if not stripped.strip("-"):
        return 2
    return None


def _is_blank(text: str, start: int, end: int) -> bool:
    return _NON_SPACE.search(text, start, end) is None


def _setext_title(text: str, line_start: int) -> tuple[int, str] | None:
    """The one-line paragraph above an underline: ``(its offset, its text)``, else None."""
    if line_start == 0:
        return None
    prev_start = text.rfind("\n", 0, line_start - 1) + 1
    prev = text[prev_start : line_start - 1]
    if not prev.strip() or atx_heading(prev) or _fence(prev) or _underline(prev):
        return None
    # A longer paragraph underlined with --- is read as a rule, which costs only a heading.
    if prev_start > 0:
        before = text.rfind("\n", 0, prev_start - 1) + 1
        if not _is_blank(text, before, prev_start - 1):
            return None
    return prev_start, prev.strip()


def _starts(text: str) -> list[_Start]:
    starts = [_Start(0, 0, None, ())]
    stack: list[tuple[int, str]] = []  # open headings as (level, title)
    fence: str | None = None
    for match in _CANDIDATE.finditer(text):
        line_start = match.start()
        line_end = _line_end(text, line_start)
        line = text[line_start:line_end]
        marker = _fence(line)
        if marker is not None:
            fence = marker if fence is None else (None if marker == fence else fence)
            continue
        if fence is not None:
            continue
        found = atx_heading(line)
        section_start = line_start
        if found is None:
            level = _underline(line)
            above = _setext_title(text, line_start) if level is not None else None
            if level is None or above is None or above[0] < starts[-1].body:
                continue
            section_start, title = above
            found = (level, title)
        level, title = found
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, title))
        path = tuple(t for _, t in stack)
        starts.append(_Start(section_start, min(line_end + 1, len(text)), title, path))
    return starts


def split_markdown(text: str) -> list[Section]:
    """Sections as ``(text, page, heading, heading_path)``.

    A heading with no body of its own (``# Title`` right before ``## Part``) is carried into
    the next section; a trailing one joins the previous section, so no heading stands alone.
    """
    starts = _starts(text)
    sections: list[tuple[int, int, str | None, tuple[str, ...]]] = []
    carry: int | None = None
    for i, sec in enumerate(starts):
        end = starts[i + 1].start if i + 1 < len(starts) else len(text)
        if _is_blank(text, sec.body, end):
            if sec.heading is not None and carry is None:
                carry = sec.start
            continue
        sections.append((sec.start if carry is None else carry, end, sec.heading, sec.path))
        carry = None
    if carry is not None:
        if sections:
            start, _, heading, path = sections.pop()
            sections.append((start, len(text), heading, path))
        else:
            last = starts[-1]
            sections.append((carry, len(text), last.heading, last.path))
    return [(text[start:end], None, heading, path) for start, end, heading, path in sections]
