"""The peers benchmark's corpus: real documentation, built offline from the long descriptions
(``METADATA`` bodies) of the distributions installed in this interpreter, and the edits the
scenario makes to it.

Which descriptions are picked depends only on the installed distributions (pinned by the
project's lock), so two runs on the same environment ingest the same bytes. The long document is
the description with the fewest chunks that still has ``long_min_chunks`` at the project's chunk
budget; the short ones are descriptions of ``short_chars`` characters, in name order.
"""

from __future__ import annotations

import email
import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata

from rag_ingest.core.documents.extract import extract
from rag_ingest.core.text.chunking import chunk_blocks

# What an edit appends to a paragraph: a sentence a person might add when revising it.
EDIT_SENTENCE = " Revised: this paragraph now also notes the behaviour described in the changelog."
# Paragraphs that read as prose (not headings, code, tables, lists, directives).
_NOT_PROSE = ("#", "```", "    ", "\t", "|", "..", "-", "*", ">", "=", "+", ":", "<", "[")


@dataclass(frozen=True)
class Corpus:
    """Documents by key (``docs/<distribution>.<md|rst|txt>``), and which one is long."""

    documents: dict[str, bytes]
    long_key: str
    chunks: dict[str, int] = field(default_factory=dict)  # at the budget it was built for

    def replace(self, changes: dict[str, bytes]) -> Corpus:
        return Corpus({**self.documents, **changes}, self.long_key, self.chunks)


def _extension(content_type: str) -> str:
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind in ("text/markdown", "text/x-markdown"):
        return ".md"
    return ".rst" if kind == "text/x-rst" else ".txt"


def descriptions() -> dict[str, bytes]:
    """Every installed distribution's long description by key; the first of identical texts."""
    found: dict[str, bytes] = {}
    seen: set[str] = set()
    dists = sorted(metadata.distributions(), key=lambda d: (d.metadata["Name"] or "").lower())
    for dist in dists:
        meta = email.message_from_string(dist.read_text("METADATA") or "")
        text = meta.get_payload()
        if not isinstance(text, str) or not text.strip():
            continue
        digest = hashlib.sha256(text.encode()).hexdigest()
        if digest in seen:
            continue
        seen.add(digest)
        name = str(meta.get("Name", "")).lower().replace("_", "-")
        ext = _extension(str(meta.get("Description-Content-Type", "")))
        found.setdefault(f"docs/{name}{ext}", text.encode())
    return found


def count_chunks(key: str, data: bytes, max_tokens: int, overlap: int) -> int:
    """Chunks of one document by the project's own extract and chunker."""
    return len(chunk_blocks(extract(key, data).blocks, max_tokens, overlap))


def build_corpus(
    short_docs: int,
    long_min_chunks: int,
    max_tokens: int,
    overlap: int,
    short_chars: tuple[int, int] = (1500, 6000),
) -> Corpus:
    """``short_docs`` short documents and one long one of at least ``long_min_chunks`` chunks."""
    texts = descriptions()
    low, high = short_chars
    short = [k for k, v in texts.items() if low <= len(v) <= high][:short_docs]
    if len(short) < short_docs:
        raise RuntimeError(f"only {len(short)} descriptions of {low}-{high} characters installed")
    # Only descriptions long enough to possibly make the bar are chunked (fewer than 1.5
    # characters a word piece is rare in prose).
    rough = long_min_chunks * max_tokens * 3 // 2
    counted = {
        k: count_chunks(k, v, max_tokens, overlap)
        for k, v in texts.items()
        if len(v) >= rough and k not in short
    }
    long_enough = sorted((n, k) for k, n in counted.items() if n >= long_min_chunks)
    if not long_enough:
        raise RuntimeError(f"no installed description has {long_min_chunks} chunks")
    chunks, long_key = long_enough[0]
    sizes = {k: count_chunks(k, texts[k], max_tokens, overlap) for k in short}
    return Corpus({k: texts[k] for k in [*short, long_key]}, long_key, {**sizes, long_key: chunks})


def _prose(paragraph: str) -> bool:
    stripped = paragraph.strip()
    return (
        len(stripped) >= 200
        and not stripped.startswith(_NOT_PROSE)
        and "```" not in stripped
        and "\n    " not in paragraph
    )


def edit_paragraph(data: bytes) -> bytes:
    """The document with one sentence added to its prose paragraph nearest the middle (a
    paragraph at the end when it has no prose paragraph)."""
    text = data.decode()
    paragraphs = text.split("\n\n")
    prose = [i for i, p in enumerate(paragraphs) if _prose(p)]
    if not prose:
        return (text.rstrip("\n") + "\n\n" + EDIT_SENTENCE.strip() + "\n").encode()
    middle = len(paragraphs) / 2
    i = min(prose, key=lambda j: (abs(j - middle), j))
    body = paragraphs[i].rstrip()
    paragraphs[i] = body + EDIT_SENTENCE + paragraphs[i][len(body) :]
    return "\n\n".join(paragraphs).encode()


def changed_keys(corpus: Corpus, fraction: float) -> list[str]:
    """The ``fraction`` of documents (at least one) a "some documents changed" run edits:
    short documents spread evenly over the name order, never the long one."""
    short = [k for k in corpus.documents if k != corpus.long_key]
    n = max(1, math.ceil(fraction * len(corpus.documents)))
    step = len(short) / n
    return [short[int(step * i + step / 2)] for i in range(n)]


def edits(corpus: Corpus, keys: Iterable[str]) -> dict[str, bytes]:
    return {k: edit_paragraph(corpus.documents[k]) for k in keys}
