"""A seeded, realistic document corpus (.txt/.md/.html/.pdf): ~2–20 KB documents
(:func:`make_document`) and the small 2–5 KB ones of the GPU-speed scenario
(:func:`make_small_document`).

Every document is a pure function of its arguments: the same arguments give the same bytes on
any machine, so runs compare like with like; ``version=1`` gives "changed" content.
"""

from __future__ import annotations

import html
import io
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# Shares of the corpus; PDFs are the slowest to parse, so they are present but not dominant.
FORMATS: tuple[tuple[str, float], ...] = (("txt", 0.3), ("md", 0.3), ("html", 0.25), ("pdf", 0.15))
CONTENT_TYPES = {
    "txt": "text/plain",
    "md": "text/markdown",
    "html": "text/html",
    "pdf": "application/pdf",
}
MIN_BYTES, MAX_BYTES = 2_000, 20_000
# The GPU-speed corpus: small objects (the 2–5 KB), under a prefix of their own.
SMALL_MIN_BYTES, SMALL_MAX_BYTES = 2_000, 5_000
SMALL_PREFIX = "small/"

_TOPICS = {
    "operations": (
        "deployment",
        "rollback",
        "on-call rotation",
        "incident review",
        "load balancer",
        "database failover",
        "backup window",
        "capacity plan",
        "alert threshold",
        "runbook",
    ),
    "finance": (
        "quarterly forecast",
        "invoice",
        "budget variance",
        "cash flow",
        "audit trail",
        "expense policy",
        "revenue recognition",
        "vendor contract",
        "tax filing",
        "ledger",
    ),
    "science": (
        "sample preparation",
        "control group",
        "spectrometer",
        "calibration curve",
        "error margin",
        "peer review",
        "replication study",
        "field survey",
        "dataset",
        "model",
    ),
    "product": (
        "onboarding flow",
        "pricing page",
        "feature flag",
        "user interview",
        "roadmap",
        "release note",
        "search ranking",
        "mobile client",
        "retention cohort",
        "A/B test",
    ),
}
_VERBS = (
    "depends on",
    "replaces",
    "summarizes",
    "is reviewed against",
    "feeds into",
    "limits",
    "is documented next to",
    "explains",
    "delays",
    "is measured by",
    "triggers",
    "protects",
)
_ADVERBS = ("usually", "rarely", "in practice", "by design", "since last year", "on Mondays")
_CLAUSES = (
    "which keeps the team honest about its assumptions",
    "so nobody has to guess what changed",
    "unless the owner signs off in writing",
    "because the previous approach failed twice",
    "while the migration is still in progress",
    "as agreed in the planning meeting",
    "even when the numbers look fine at first glance",
)


@dataclass(frozen=True)
class CorpusDoc:
    key: str
    body: bytes
    content_type: str
    fmt: str


def _sentence(rng: random.Random, nouns: Sequence[str]) -> str:
    a, b = rng.sample(list(nouns), 2)
    words = f"the {a} {rng.choice(_VERBS)} the {b}"
    if rng.random() < 0.5:
        words += f" {rng.choice(_ADVERBS)}"
    if rng.random() < 0.4:
        words += f", {rng.choice(_CLAUSES)}"
    if rng.random() < 0.15:
        words += f" (ref. {rng.randint(100, 9999)}-{rng.choice('ABCDEFGH')})"
    return words[0].upper() + words[1:] + rng.choice(".....?!")


def _sections(rng: random.Random, nouns: Sequence[str], target: int) -> list[tuple[str, list[str]]]:
    """(heading, paragraphs) until about ``target`` characters of prose."""
    out: list[tuple[str, list[str]]] = []
    size = 0
    while size < target:
        heading = f"{rng.choice(list(nouns)).capitalize()} and {rng.choice(list(nouns))}"
        paragraphs = []
        for _ in range(rng.randint(2, 5)):
            para = " ".join(_sentence(rng, nouns) for _ in range(rng.randint(3, 8)))
            paragraphs.append(para)
            size += len(para) + 2
        out.append((heading, paragraphs))
    return out


def _render(fmt: str, title: str, sections: list[tuple[str, list[str]]]) -> bytes:
    if fmt == "txt":
        return "\n\n".join([title] + [p for _, ps in sections for p in ps]).encode()
    if fmt == "md":
        parts = [f"# {title}"]
        for heading, ps in sections:
            parts += [f"## {heading}", *ps]
        return "\n\n".join(parts).encode()
    if fmt == "html":
        body = "".join(
            f"<h2>{html.escape(h)}</h2>" + "".join(f"<p>{html.escape(p)}</p>" for p in ps)
            for h, ps in sections
        )
        # Navigation and footer are boilerplate the extractor is expected to drop.
        return (
            f"<!doctype html><html><head><title>{html.escape(title)}</title>"
            "<style>p{margin:0}</style></head><body><nav><a href='/'>Home</a></nav>"
            f"<main><h1>{html.escape(title)}</h1>{body}</main>"
            "<footer>© Example Corp</footer></body></html>"
        ).encode()
    return _pdf(title, sections)


def _pdf(title: str, sections: list[tuple[str, list[str]]]) -> bytes:
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import Paragraph, SimpleDocTemplate

    styles = getSampleStyleSheet()
    story: list[Any] = [Paragraph(html.escape(title), styles["Title"])]
    for heading, ps in sections:
        story.append(Paragraph(html.escape(heading), styles["Heading2"]))
        story += [Paragraph(html.escape(p), styles["BodyText"]) for p in ps]
    out = io.BytesIO()
    # invariant=1: no timestamps or random ids in the file, so the same seed gives the same bytes.
    SimpleDocTemplate(out, title=title, invariant=1).build(story)
    return out.getvalue()


def make_document(seed: int, index: int, version: int = 0) -> CorpusDoc:
    """Document ``index`` of the corpus; ``version`` > 0 changes its content, not its key."""
    layout = random.Random(f"{seed}:{index}")
    fmt = layout.choices([f for f, _ in FORMATS], weights=[w for _, w in FORMATS])[0]
    topic = layout.choice(sorted(_TOPICS))
    # Log-uniform sizes: many small documents, some large, as in real document stores.
    target = int(math.exp(layout.uniform(math.log(MIN_BYTES), math.log(MAX_BYTES * 0.9))))
    rng = random.Random(f"{seed}:{index}:{version}")
    nouns = _TOPICS[topic]
    title = f"{rng.choice(nouns).capitalize()} notes {index}" + (f" v{version}" if version else "")
    body = _render(fmt, title, _sections(rng, nouns, target))
    key = f"corpus/{topic}/{index:06d}-{nouns[index % len(nouns)].replace(' ', '-')}.{fmt}"
    return CorpusDoc(key=key, body=body, content_type=CONTENT_TYPES[fmt], fmt=fmt)


def _small_layout(seed: int, index: int) -> tuple[str, str, str]:
    """(format, topic, key) of small document ``index``: keys without rendering bodies."""
    layout = random.Random(f"small:{seed}:{index}")
    fmt = layout.choices([f for f, _ in FORMATS], weights=[w for _, w in FORMATS])[0]
    topic = layout.choice(sorted(_TOPICS))
    noun = _TOPICS[topic][index % len(_TOPICS[topic])].replace(" ", "-")
    return fmt, topic, f"{SMALL_PREFIX}{topic}/{index:07d}-{noun}.{fmt}"


def small_key(seed: int, index: int) -> str:
    return _small_layout(seed, index)[2]


def make_small_document(seed: int, index: int) -> CorpusDoc:
    """Document ``index`` of the small corpus: the same formats and prose as
    :func:`make_document`, each object between :data:`SMALL_MIN_BYTES` and
    :data:`SMALL_MAX_BYTES` (paragraphs are added while the rendered object stays below the
    cap; a PDF's own structure takes about 1.5 KB of it)."""
    fmt, topic, key = _small_layout(seed, index)
    rng = random.Random(f"small:{seed}:{index}:body")
    nouns = _TOPICS[topic]
    target = rng.randint(SMALL_MIN_BYTES, SMALL_MAX_BYTES)
    title = f"{rng.choice(nouns).capitalize()} notes {index}"
    heading = f"{rng.choice(list(nouns)).capitalize()} and {rng.choice(list(nouns))}"
    paragraphs: list[str] = []

    def paragraph() -> str:
        return " ".join(_sentence(rng, nouns) for _ in range(rng.randint(2, 5)))

    # Rough text budget first (rendering a PDF costs milliseconds), then exact on the bytes.
    overhead = len(_render(fmt, title, [(heading, [])]))
    while overhead + sum(len(p) + 2 for p in paragraphs) < target:
        paragraphs.append(paragraph())
    body = _render(fmt, title, [(heading, paragraphs)])
    while len(body) < SMALL_MIN_BYTES:
        paragraphs.append(paragraph())
        body = _render(fmt, title, [(heading, paragraphs)])
    while len(body) > SMALL_MAX_BYTES and len(paragraphs) > 1:
        paragraphs.pop()
        body = _render(fmt, title, [(heading, paragraphs)])
    return CorpusDoc(key=key, body=body, content_type=CONTENT_TYPES[fmt], fmt=fmt)
