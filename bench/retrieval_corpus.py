"""A real technical corpus and its query sets, built offline and mechanically.

The documents are the long descriptions (README text) that installed distributions ship in
their ``METADATA``: real Markdown, reStructuredText and plain text about software, written by
people. Two query sets are derived from them by rules alone, each query with the one document
it belongs to:

- natural language: each distribution's one-line summary (its own name removed, so the query
  says what the package does, not what it is called) and up to two of the document's section
  headings that no other document has;
- keyword: up to two identifiers (``snake_case``, ``dotted.names``, ``CamelCase``,
  ``--long-options``) that occur in that document and in no other, picked by their hash.

Everything is sorted or hashed, so the same environment gives the same corpus and queries.
"""

from __future__ import annotations

import email
import hashlib
import re
from collections import Counter
from dataclasses import dataclass
from importlib.metadata import distributions
from typing import Literal

Kind = Literal["nl", "keyword"]

MIN_CHARS = 3_000
MAX_CHARS = 40_000
HEADINGS_PER_DOC = 2
KEYWORDS_PER_DOC = 2
SELF = "rag-ingest"


@dataclass(frozen=True)
class Doc:
    name: str  # the normalized distribution name
    version: str
    key: str  # the object key it is ingested under; the extension picks the extractor
    summary: str
    body: str


@dataclass(frozen=True)
class Query:
    kind: Kind
    text: str
    key: str  # the document it belongs to
    origin: str  # summary, heading or keyword


def _norm_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _extension(content_type: str, body: str) -> str:
    kind = content_type.split(";")[0].strip().lower()
    if kind == "text/markdown":
        return "md"
    if kind == "text/x-rst":
        return "rst"
    return "md" if re.search(r"^#{1,3} \S", body, re.M) else "txt"


def installed_docs(limit: int, min_chars: int = MIN_CHARS, max_chars: int = MAX_CHARS) -> list[Doc]:
    """The first ``limit`` distributions (by name) of this environment whose long description
    is ``min_chars``..``max_chars`` long, each description once (copies shared by sibling
    packages are kept for the first name only)."""
    found: dict[str, Doc] = {}
    seen_bodies: set[str] = set()
    candidates = []
    for dist in distributions():
        meta = email.message_from_string(dist.read_text("METADATA") or "")
        name = meta.get("Name")
        # Not this project's own README: it changes with the code measured.
        if not name or _norm_name(name) == SELF:
            continue
        payload = meta.get_payload()
        body = (payload if isinstance(payload, str) else "") or meta.get("Description") or ""
        body = body.strip()
        if min_chars <= len(body) <= max_chars:
            candidates.append((_norm_name(name), dist.version, meta, body))
    for name, version, meta, body in sorted(candidates, key=lambda c: (c[0], c[1])):
        digest = hashlib.sha1(" ".join(body.split()).encode()).hexdigest()
        if name in found or digest in seen_bodies:
            continue
        seen_bodies.add(digest)
        ext = _extension(meta.get("Description-Content-Type") or "", body)
        summary = " ".join((meta.get("Summary") or "").split())
        found[name] = Doc(name, version, f"docs/{name}.{ext}", summary, body)
        if len(found) == limit:
            break
    return list(found.values())


_URL = re.compile(r"\S+://\S+|www\.\S+|\S+@\S+\.\w+")
_ATX = re.compile(r"^ {0,3}#{1,6}[ \t]+(.+?)[ \t#]*$", re.M)
_SETEXT = re.compile(r"^([^\n]*\w[^\n]*)\n([=\-~^\"'*+#`])\2{2,}[ \t]*$", re.M)
_MARKUP = re.compile(r"!?\[([^\]]*)\]\([^)]*\)|[`*_|]|:\w+:|<[^>]*>")
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")


def _clean(heading: str) -> str:
    return " ".join(_MARKUP.sub(lambda m: m.group(1) or " ", heading).split()).strip(" :.-")


def headings(body: str) -> list[str]:
    """Section titles in document order (Markdown ATX, setext and reStructuredText
    underlines), markup removed."""
    found = [(m.start(), m.group(1)) for m in _ATX.finditer(body)]
    for m in _SETEXT.finditer(body):
        if len(m.group(0).splitlines()[1].strip()) >= len(m.group(1).strip()):
            found.append((m.start(), m.group(1)))
    return [_clean(text) for _, text in sorted(found)]


def _prose(text: str, min_words: int = 3, max_words: int = 12) -> bool:
    words = text.split()
    alpha = sum(bool(_WORD.fullmatch(w.strip(",.?!:;()"))) for w in words)
    return min_words <= len(words) <= max_words and alpha >= 0.75 * len(words)


def _summary_query(doc: Doc) -> str | None:
    """The summary without the distribution's own name, if four or more words are left."""
    parts = {doc.name, doc.name.replace("-", "_"), doc.name.replace("-", " ")}
    text = doc.summary
    for part in sorted(parts, key=len, reverse=True):
        text = re.sub(re.escape(part), " ", text, flags=re.I)
    text = " ".join(text.split()).strip(" :.-,")
    return text if len(text.split()) >= 4 and _prose(text, 4, 30) else None


_IDENTIFIER = re.compile(
    r"(?<![\w.-])("
    r"--[a-z][a-z0-9]*(?:-[a-z0-9]+)+"  # --long-option
    r"|[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)+"  # snake_case, CONSTANT_CASE
    r"|[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+"  # dotted.name
    r"|[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]+)+"  # CamelCase
    r")(?![\w-])"
)
# Dotted names that are file names or hosts, not identifiers.
_NOT_IDENTIFIER = re.compile(
    r"\.(py|pyi|txt|md|rst|cfg|toml|ini|json|yaml|yml|html|com|org|io|net|dev|in|sh|gz|zip"
    r"|png|jpg|jpeg|gif|svg)$",
    re.I,
)


def identifiers(body: str) -> list[str]:
    text = _URL.sub(" ", body)
    found = []
    for token in _IDENTIFIER.findall(text):
        if 6 <= len(token) <= 40 and not _NOT_IDENTIFIER.search(token):
            found.append(token)
    return sorted(set(found))


def _hash(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def derive_queries(docs: list[Doc]) -> tuple[list[Query], list[Query]]:
    """(natural-language queries, keyword queries), each with its one document."""
    lowered = [d.body.lower() for d in docs]
    heading_sets = [{h.lower() for h in headings(d.body)} for d in docs]
    heading_docs = Counter(h for hs in heading_sets for h in hs)
    summaries = Counter((_summary_query(d) or "").lower() for d in docs)
    nl: list[Query] = []
    keyword: list[Query] = []
    for doc in docs:
        summary = _summary_query(doc)
        if summary and summaries[summary.lower()] == 1:
            nl.append(Query("nl", summary, doc.key, "summary"))
        picked: list[str] = []
        for heading in headings(doc.body):
            unique = heading_docs[heading.lower()] == 1
            if unique and _prose(heading) and heading.lower() not in picked:
                picked.append(heading.lower())
                nl.append(Query("nl", heading, doc.key, "heading"))
            if len(picked) == HEADINGS_PER_DOC:
                break
        name = doc.name.replace("-", "")
        unique_ids = [
            token
            for token in identifiers(doc.body)
            if name not in re.sub(r"[-_.]", "", token.lower())
            and sum(token.lower() in other for other in lowered) == 1
        ]
        for token in sorted(unique_ids, key=_hash)[:KEYWORDS_PER_DOC]:
            keyword.append(Query("keyword", token, doc.key, "keyword"))
    return nl, keyword


def corpus_digest(docs: list[Doc]) -> str:
    """One hash of the corpus: which distributions, at which versions, with which text."""
    h = hashlib.sha1()
    for doc in docs:
        h.update(f"{doc.key}\0{doc.version}\0{doc.body}\0".encode())
    return h.hexdigest()[:12]
