"""Tables of untrusted text (S3 keys, failure reasons) for Markdown metadata in the Dagster UI.

Keys and reasons come from whoever writes to the bucket: a ``|`` would break a table row and
``[text](url)`` would render as a link. Every cell is escaped and bounded.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

CELL_CHARS = 300
_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+!|~])")
_SPACE = re.compile(r"\s+")


def md_cell(value: object, limit: int = CELL_CHARS) -> str:
    """One table cell: whitespace folded, Markdown and HTML syntax escaped, at most ``limit``
    characters of the original text."""
    text = _SPACE.sub(" ", str(value)).strip()
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return _SPECIAL.sub(r"\\\1", text).replace("&", "&amp;")


def md_table(headers: Sequence[str], rows: Sequence[Sequence[object]], total: int) -> str:
    """A Markdown table of ``rows``, noting how many of ``total`` it shows."""
    lines = [
        "| " + " | ".join(md_cell(h) for h in headers) + " |",
        "|" + " --- |" * len(headers),
    ]
    lines += ["| " + " | ".join(md_cell(v) for v in row) + " |" for row in rows]
    if total > len(rows):
        lines.append(f"\n{len(rows)} of {total} shown.")
    return "\n".join(lines)
