"""Retrieval quality of dense, BM25 (sparse) and hybrid search on a real technical corpus.

    python -m bench.retrieval --out bench/results/retrieval.md

The corpus and its two query sets come from ``bench.retrieval_corpus`` (the READMEs installed
distributions ship, queries derived from them by rule). Every document goes through the
project's own path: extraction, the chunker at the model's default shape, the MiniLM encoder,
the BM25 encoder, a Qdrant Edge collection (optimized, as the maintenance step leaves it), and
``VectorStore.query`` in each mode. A query counts as found when a chunk of its document is in
the top 10; MRR is over the first such chunk's rank (0 beyond 10).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench.common import machine_info
from bench.retrieval_corpus import Doc, Query, corpus_digest, derive_queries, installed_docs
from bench.retrieval_report import Evaluation, IngestCost, render
from rag_ingest.core.documents.extract import extract
from rag_ingest.core.keys import document_id
from rag_ingest.core.pipeline.steps import chunk_documents
from rag_ingest.core.records import DocumentInfo
from rag_ingest.core.text.chunking import chunk_shape
from rag_ingest.core.text.encoder import Encoder, shared_encoder
from rag_ingest.core.text.model import resolve_model
from rag_ingest.core.text.sparse import Bm25Encoder, SparseVector
from rag_ingest.core.vectorstore import DEFAULT_FUSION, DocumentPoints, Fusion, VectorStore
from rag_ingest.core.vectorstore.edge import EdgeStore

BUCKET = "bench-retrieval"
COLLECTION = "docs"
SPARSE_NAME = "langchain-sparse"
K = 10
# The fusion variants measured beside the default (the first).
VARIANTS: tuple[Fusion, ...] = (
    DEFAULT_FUSION,
    Fusion(rrf_k=10),
    Fusion(rrf_k=60),
    Fusion(prefetch_factor=1, prefetch_floor=10),
    Fusion(prefetch_factor=10, prefetch_floor=100),
    Fusion(method="dbsf"),
    Fusion(sparse_weight=2),
    Fusion(sparse_weight=4),
    Fusion(sparse_weight=8),
)


def _info(doc: Doc, fmt: str | None, title: str | None) -> DocumentInfo:
    return DocumentInfo(
        doc_id=document_id(BUCKET, doc.key),
        bucket=BUCKET,
        key=doc.key,
        etag=hashlib.md5(doc.body.encode()).hexdigest(),
        size=len(doc.body.encode()),
        last_modified="2026-01-01T00:00:00+00:00",
        format=fmt,
        title=title,
    )


def ingest(docs: Sequence[Doc], encoder: Encoder, root: Path) -> IngestCost:
    """Extract, chunk, embed (dense and BM25, each timed per document) and store ``docs``."""
    extracted = []
    for doc in docs:
        result = extract(doc.key, doc.body.encode())
        extracted.append((_info(doc, result.format, result.title), result.blocks))
    max_tokens, overlap = chunk_shape(resolve_model(), None, None)
    chunked = chunk_documents(extracted, max_tokens, overlap)
    bm25 = Bm25Encoder()
    points: list[DocumentPoints] = []
    dense_s = sparse_s = 0.0
    nonzeros: list[int] = []
    for (info, _), chunks in zip(extracted, chunked, strict=True):
        texts = [c.text for c in chunks]
        started = time.perf_counter()
        vectors = encoder.encode(texts)
        dense_s += time.perf_counter() - started
        started = time.perf_counter()
        sparse = bm25.embed_documents(texts)
        sparse_s += time.perf_counter() - started
        nonzeros += [len(s.indices) for s in sparse]
        points.append(DocumentPoints(info, chunks, vectors, sparse))
    with EdgeStore(root) as store:
        store.ensure_collection(COLLECTION, encoder.dimension, sparse_vector=SPARSE_NAME)
        store.replace_documents(COLLECTION, points)
        store.optimize(COLLECTION)
    return IngestCost(
        documents=len(docs),
        chunks=len(nonzeros),
        dense_seconds=dense_s,
        sparse_seconds=sparse_s,
        sparse_nonzeros=nonzeros,
        dimension=encoder.dimension,
    )


def ranks(
    store: VectorStore,
    queries: Sequence[Query],
    dense: np.ndarray | None,
    sparse: Sequence[SparseVector] | None,
    fusion: Fusion | None = None,
) -> list[int | None]:
    """Per query, the rank (1..K) of the first chunk of its document; None: not in the top K."""
    found: list[int | None] = []
    for i, query in enumerate(queries):
        hits = store.query(
            COLLECTION,
            K,
            dense=None if dense is None else dense[i],
            sparse=None if sparse is None else sparse[i],
            fusion=fusion,
        )
        keys = [h.payload["metadata"]["key"] for h in hits]
        found.append(keys.index(query.key) + 1 if query.key in keys else None)
    return found


def evaluate(store: VectorStore, queries: Sequence[Query], encoder: Encoder) -> Evaluation:
    """Ranks of every query in every mode and fusion variant."""
    dense = encoder.encode_query([q.text for q in queries])
    bm25 = Bm25Encoder()
    sparse = [bm25.embed_query(q.text) for q in queries]
    result: dict[str, list[int | None]] = {
        "dense": ranks(store, queries, dense, None),
        "sparse": ranks(store, queries, None, sparse),
    }
    for fusion in VARIANTS:
        result[fusion.label] = ranks(store, queries, dense, sparse, fusion)
    return Evaluation(list(queries), result)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--docs", type=int, default=150, help="at most this many documents")
    parser.add_argument("--repeats", type=int, default=2, help="query passes (compared)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/retrieval.md"))
    argv = list(argv if argv is not None else sys.argv[1:])
    args = parser.parse_args(argv)
    info = machine_info()
    docs = installed_docs(args.docs)
    nl, keyword = derive_queries(docs)
    queries = nl + keyword
    encoder = shared_encoder()
    root = Path(tempfile.mkdtemp(prefix="retrieval-"))
    try:
        started = time.perf_counter()
        cost = ingest(docs, encoder, root)
        ingest_s = time.perf_counter() - started
        passes = []
        for _ in range(args.repeats):
            with EdgeStore(root) as store:
                passes.append(evaluate(store, queries, encoder))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    lines = render(
        passes,
        cost,
        docs=docs,
        digest=corpus_digest(docs),
        command=f"python -m bench.retrieval {' '.join(argv)}".strip(),
        machine=info,
        load_end=" / ".join(f"{x:.2f}" for x in os.getloadavg()),
        ingest_seconds=ingest_s,
        variants=[v.label for v in VARIANTS],
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
