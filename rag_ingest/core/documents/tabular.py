"""Tables (CSV/TSV, and the rows of spreadsheets) and JSON / JSON Lines as blocks of text.

A table becomes blocks of consecutive rows, each starting with the table's header row, so every
chunk of rows 400-460 still carries its column names; a block's heading is the table's name and
its heading path ends with its row range. Blocks are kept under one chunk's size so the chunker
packs them whole. Rows and fields are capped (``MAX_ROWS``, ``MAX_FIELD_CHARS``); what is cut is
recorded on the document (:attr:`Extracted.note`). JSON values become ``key.path: value`` lines,
nested no deeper than ``MAX_JSON_DEPTH``.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
from collections.abc import Iterable, Iterator

from rag_ingest.core.documents.model import (
    Extracted,
    ExtractionError,
    Part,
    TextBudget,
    assemble_blocks,
)

MAX_ROWS = 100_000  # per table (sheet or CSV)
MAX_FIELD_CHARS = 10_000
MAX_JSON_DEPTH = 64
# Characters of rows per block: under one chunk even for number-heavy rows.
BLOCK_CHARS = 700


class Truncation:
    """What a document lost to the caps, as one line for its record."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, what: str) -> None:
        if len(self.items) < 20:
            self.items.append(what)

    def note(self) -> str | None:
        return "truncated: " + "; ".join(self.items) if self.items else None


def _cell(value: object, cut: Truncation, where: str) -> str:
    text = "" if value is None else str(value)
    if len(text) > MAX_FIELD_CHARS:
        cut.add(f"{where}: a field of {len(text):,} characters cut to {MAX_FIELD_CHARS:,}")
        text = text[:MAX_FIELD_CHARS]
    return " ".join(text.split())


def table_parts(
    name: str, rows: Iterable[Iterable[object]], budget: TextBudget, cut: Truncation
) -> list[Part]:
    """Blocks of rows under their header row; row numbers count from 1 at the header."""
    parts: list[Part] = []
    header: str | None = None
    lines: list[str] = []
    size, first, last = 0, 0, 0

    def flush() -> None:
        if lines:
            label = f"rows {first}-{last}"
            text = "\n".join([f"{name} {label}", header or "", *lines])
            parts.append((text, None, name, (name, label)))
        lines.clear()

    for number, row in enumerate(rows, start=1):
        cells = [_cell(v, cut, f"{name} row {number}") for v in row]
        if not any(cells):
            continue
        line = " | ".join(cells)
        budget.take(len(line) + 1)
        if header is None:
            header = line
            continue
        if number > MAX_ROWS:
            cut.add(f"{name}: rows after {MAX_ROWS:,} dropped")
            break
        if lines and size + len(line) > BLOCK_CHARS:
            flush()
            size = 0
        if not lines:
            first = number
        lines.append(line)
        last = number
        size += len(line) + 1
    flush()
    if header is not None and not parts:
        parts.append((f"{name}\n{header}", None, name, (name,)))
    return parts


def _rows_with_capped_fields(text: str, delimiter: str) -> Iterator[list[str]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        yield from reader
    except csv.Error as exc:
        raise ExtractionError("failed", f"malformed CSV: {exc}") from exc


def extract_csv(text: str, name: str, tsv: bool, budget: TextBudget) -> Extracted:
    # The csv module refuses fields above its limit: lift it to the cap on the whole text.
    csv.field_size_limit(max(len(text), 131072))
    cut = Truncation()
    delimiter = "\t" if tsv else ","
    if not tsv:
        with contextlib.suppress(csv.Error):
            delimiter = csv.Sniffer().sniff(text[:8192], delimiters=",;\t|").delimiter
    parts = table_parts(name, _rows_with_capped_fields(text, delimiter), budget, cut)
    return Extracted("csv", assemble_blocks(parts), note=cut.note())


def _flatten(value: object, path: str, depth: int, out: list[str], budget: TextBudget) -> None:
    if depth > MAX_JSON_DEPTH:
        raise ExtractionError("failed", f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(item, f"{path}.{key}" if path else str(key), depth + 1, out, budget)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _flatten(item, f"{path}[{i}]", depth + 1, out, budget)
    else:
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        line = f"{path or '$'}: {shown}"
        budget.take(len(line) + 1)
        out.append(line)


def _load(text: str) -> object:
    try:
        return json.loads(text)
    except RecursionError as exc:
        raise ExtractionError("failed", "JSON nested too deeply to parse") from exc
    except ValueError as exc:
        raise ExtractionError("failed", f"malformed JSON: {exc}") from exc


def _grouped(lines: list[str], section: str) -> list[Part]:
    parts: list[Part] = []
    group: list[str] = []
    size = 0
    top = ""
    for line in lines:
        key = line.split(":", 1)[0].split(".", 1)[0].split("[", 1)[0]
        if group and (size + len(line) > BLOCK_CHARS or key != top):
            parts.append(("\n".join(group), None, top or section, (section, top) if top else ()))
            group, size = [], 0
        top = key
        group.append(line)
        size += len(line) + 1
    if group:
        parts.append(("\n".join(group), None, top or section, (section, top) if top else ()))
    return parts


def extract_json(text: str, lines: bool, budget: TextBudget) -> Extracted:
    """JSON as ``key.path: value`` lines; JSON Lines one record (``line N``) at a time."""
    parts: list[Part] = []
    if lines:
        for number, raw in enumerate(text.splitlines(), start=1):
            if raw.strip():
                out: list[str] = []
                _flatten(_load(raw), "", 0, out, budget)
                parts.extend(_grouped(out, f"line {number}"))
    else:
        out = []
        _flatten(_load(text), "", 0, out, budget)
        parts = _grouped(out, "$")
    return Extracted("json", assemble_blocks(parts))
