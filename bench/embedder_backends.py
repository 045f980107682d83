"""Embedder backends against torch fp32: throughput and agreement on realistic chunks.

Chunks (200-254 word pieces) come from ``sample_corpus/`` through the pipeline's own extraction
and chunking, topped up with seeded synthetic prose; queries are short seeded questions. For each
backend it reports texts/s (median of ``--repeats`` full passes), cosine agreement with torch fp32
(mean and min over chunks) and top-10 retrieval overlap (ids shared by the fp32 and the
candidate's top 10 over the chunk set, averaged over queries).

Usage::

    .venv/bin/python bench/embedder_backends.py --texts 300 --repeats 3

Exports go to ``--cache-dir`` (default: the encoder's own cache) and are reused across runs.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from rag_ingest.core.documents.extract import extract  # noqa: E402
from rag_ingest.core.documents.model import ExtractionError  # noqa: E402
from rag_ingest.core.text.chunking import MAX_CHUNK_TOKENS, chunk_blocks  # noqa: E402
from rag_ingest.core.text.encoder import BACKENDS, Encoder, load_tokenizer  # noqa: E402

RESULTS = REPO / "bench" / "results" / "embedder_backends.md"
# The bar a backend must meet (and beat torch's texts/s) to be offered in encoder.BACKENDS.
MIN_MEAN_COSINE = 0.99
MIN_TOP10_OVERLAP = 0.95
TOP_K = 10

_SUBJECTS = (
    "the glacier",
    "a honeybee colony",
    "the city council",
    "the sourdough starter",
    "a marathon runner",
    "the octopus",
    "the Roman engineers",
    "the vector database",
    "the volcano",
    "the coffee grower",
    "a chess player",
    "the tide",
    "the compost heap",
    "the research team",
    "a black hole",
    "the git repository",
    "the farmer",
    "the river delta",
    "the old library",
    "a migrating flock",
    "the power grid",
    "the hospital",
    "the startup",
)
_VERBS = (
    "slowly reshapes",
    "depends on",
    "carefully measures",
    "quietly protects",
    "rapidly consumes",
    "gradually transforms",
    "barely tolerates",
    "reliably predicts",
    "often ignores",
    "steadily improves",
    "partly explains",
    "strongly influences",
    "occasionally damages",
)
_OBJECTS = (
    "the surrounding landscape",
    "its own energy budget",
    "the seasonal temperature cycle",
    "every incoming request",
    "the balance of nutrients",
    "the fragile coastal ecosystem",
    "the cost of maintenance",
    "the accuracy of the index",
    "a network of narrow channels",
    "the timing of the harvest",
    "the pressure deep below",
    "the memory of earlier events",
    "the supply of fresh water",
    "the structure of the opening",
    "the rate of fermentation",
)
_TAILS = (
    "during the dry months",
    "according to recent measurements",
    "despite repeated warnings",
    "in ways that surprised observers",
    "when the conditions are right",
    "over several decades",
    "because nobody planned for it",
    "long before anyone noticed",
    "under heavy load",
    "at the edge of the known range",
    "with remarkable consistency",
    "after the first frost",
)


def _sentence(rng: random.Random) -> str:
    text = f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}"
    if rng.random() < 0.7:
        text += f" {rng.choice(_TAILS)}"
    return text[0].upper() + text[1:] + "."


def corpus_chunks() -> list[str]:
    """Chunks of ``sample_corpus/`` made the way the pipeline makes them (long ones only)."""
    chunks: list[str] = []
    for path in sorted((REPO / "sample_corpus").rglob("*")):
        if not path.is_file():
            continue
        encoding = "gzip" if path.suffix == ".gz" else None
        key = path.name.removesuffix(".gz")
        try:
            blocks = extract(key, path.read_bytes(), content_encoding=encoding).blocks
        except ExtractionError:
            continue
        chunks += [c.text for c in chunk_blocks(blocks) if c.token_count >= 200]
    return chunks


def make_texts(n: int, seed: int = 0) -> list[str]:
    """``n`` chunks of 200-254 word pieces: the corpus's long chunks, then synthetic prose."""
    tokenizer = load_tokenizer()
    texts = corpus_chunks()[:n]
    rng = random.Random(seed)
    while len(texts) < n:
        sentences: list[str] = []
        target = rng.randint(200, MAX_CHUNK_TOKENS)
        while len(tokenizer.encode(" ".join(sentences)).ids) < target:
            sentences.append(_sentence(rng))
        while len(tokenizer.encode(" ".join(sentences)).ids) > MAX_CHUNK_TOKENS:
            sentences.pop()
        texts.append(" ".join(sentences))
    return texts


def make_queries(n: int = 50, seed: int = 1) -> list[str]:
    """Short retrieval queries on the same topics as the chunks."""
    rng = random.Random(seed)
    questions = ("how does", "why does", "when does", "what makes")
    return [
        f"{rng.choice(questions)} {rng.choice(_SUBJECTS)} affect {rng.choice(_OBJECTS)}?"
        for _ in range(n)
    ]


def top_k(queries: np.ndarray, docs: np.ndarray, k: int = TOP_K) -> list[set[int]]:
    scores = queries @ docs.T
    return [set(np.argsort(-row, kind="stable")[:k].tolist()) for row in scores]


def measure(encoder: Encoder, texts: list[str], repeats: int) -> tuple[np.ndarray, float]:
    """Vectors of ``texts`` and the median texts/s over ``repeats`` passes (after one warm-up)."""
    encoder.encode(texts[: encoder.batch_size])
    seconds: list[float] = []
    vectors = np.empty(0)
    for _ in range(repeats):
        started = time.perf_counter()
        vectors = encoder.encode(texts)
        seconds.append(time.perf_counter() - started)
    return vectors, len(texts) / statistics.median(seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--texts", type=int, default=300, help="chunks to embed")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per backend")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated")
    parser.add_argument("--cache-dir", default=None, help="export cache (default: encoder's)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    texts = make_texts(args.texts)
    queries = make_queries()
    lengths = [len(load_tokenizer().encode(t).ids) for t in texts]
    backends = [b for b in args.backends.split(",") if b]
    if "torch" not in backends:
        backends.insert(0, "torch")

    rows: list[str] = []
    reference: tuple[np.ndarray, list[set[int]]] | None = None
    torch_rate = 0.0
    for backend in backends:
        started = time.perf_counter()
        encoder = Encoder("cpu", args.batch_size, backend=backend, cache_dir=args.cache_dir)
        load_s = time.perf_counter() - started
        vectors, rate = measure(encoder, texts, args.repeats)
        hits = top_k(encoder.encode(queries), vectors)
        if reference is None:
            reference, torch_rate = (vectors, hits), rate
        cosines = (vectors * reference[0]).sum(axis=1)
        overlaps = [len(a & b) / TOP_K for a, b in zip(hits, reference[1], strict=True)]
        ok = float(cosines.mean()) >= MIN_MEAN_COSINE and statistics.mean(overlaps) >= (
            MIN_TOP10_OVERLAP
        )
        rows.append(
            f"| {backend} | {rate:.1f} | {rate / torch_rate:.2f}x | {cosines.mean():.5f} "
            f"| {cosines.min():.5f} | {statistics.mean(overlaps):.3f} | {min(overlaps):.1f} "
            f"| {load_s:.1f}{' (exported)' if encoder.exported else ''} | {'yes' if ok else 'no'} |"
        )
        print(rows[-1], file=sys.stderr, flush=True)
        del encoder

    table = "\n".join(
        [
            f"{len(texts)} chunks of {min(lengths)}-{max(lengths)} word pieces "
            f"(median {statistics.median(lengths):.0f}), {len(queries)} queries, "
            f"batch size {args.batch_size}, median of {args.repeats} passes; "
            f"agreement is against torch fp32.",
            "",
            "| backend | texts/s | vs torch | mean cos | min cos | top-10 overlap | "
            "worst query | load s | meets bar |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
            *rows,
            "",
            f"Bar: mean cosine >= {MIN_MEAN_COSINE} and mean top-10 overlap >= "
            f"{MIN_TOP10_OVERLAP}.",
        ]
    )
    print(table)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(table + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
