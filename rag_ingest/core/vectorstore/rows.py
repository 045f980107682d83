"""The points a collection holds for documents: ids, vectors and LangChain's payload."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from rag_ingest.core.keys import key_hash, point_id
from rag_ingest.core.records import DocumentInfo
from rag_ingest.core.text.chunking import Chunk
from rag_ingest.core.text.sparse import Bm25Encoder, SparseVector
from rag_ingest.core.vectorstore.base import DocumentPoints

# One point as written: (id, vector, payload, BM25 sparse vector or None).
Row = tuple[str, list[float], dict[str, Any], SparseVector | None]


def payload(info: DocumentInfo, chunk: Chunk, chunk_count: int) -> dict[str, Any]:
    """The stored payload of one chunk: LangChain's ``page_content`` + ``metadata``."""
    meta: dict[str, Any] = {
        "source": info.source,
        "bucket": info.bucket,
        "key": info.key,
        "etag": info.etag,
        "doc_id": info.doc_id,
        "key_hash": key_hash(info.doc_id),
        "last_modified": info.last_modified,
        "format": info.format,
        "chunk_index": chunk.index,
        "chunk_count": chunk_count,
        "char_start": chunk.char_start,
        "char_end": chunk.char_end,
        "token_count": chunk.token_count,
    }
    for name, value in (("page", chunk.page), ("heading", chunk.heading), ("title", info.title)):
        if value is not None:
            meta[name] = value
    for name, value in chunk.extra_metadata().items():
        meta[name] = value
    return {"page_content": chunk.text, "metadata": meta}


def _sparse_of(doc: DocumentPoints, encoder: Bm25Encoder | None) -> Sequence[SparseVector | None]:
    if encoder is None:
        return [None] * len(doc.chunks)
    if doc.sparse is None:
        return encoder.embed_documents([chunk.text for chunk in doc.chunks])
    if len(doc.sparse) != len(doc.chunks):
        raise ValueError(
            f"{doc.info.source}: {len(doc.chunks)} chunks but {len(doc.sparse)} sparse vectors"
        )
    return doc.sparse


def point_rows(docs: Sequence[DocumentPoints], with_sparse: bool = False) -> Iterator[Row]:
    """(point id, vector, payload, sparse) of every chunk of ``docs``, in order; ``sparse`` is
    None unless ``with_sparse``."""
    encoder = Bm25Encoder() if with_sparse else None
    for doc in docs:
        if len(doc.chunks) != len(doc.vectors):
            raise ValueError(
                f"{doc.info.source}: {len(doc.chunks)} chunks but {len(doc.vectors)} vectors"
            )
        sparse = _sparse_of(doc, encoder)
        for chunk, vector, bm25 in zip(doc.chunks, doc.vectors, sparse, strict=True):
            yield (
                point_id(doc.info.doc_id, doc.info.etag, chunk.index),
                np.asarray(vector, dtype=np.float32).tolist(),
                payload(doc.info, chunk, len(doc.chunks)),
                bm25,
            )


def row_batches(
    docs: Sequence[DocumentPoints], batch_size: int, with_sparse: bool = False
) -> Iterator[list[Row]]:
    """:func:`point_rows` of ``docs`` in lists of at most ``batch_size``."""
    batch: list[Row] = []
    for row in point_rows(docs, with_sparse):
        batch.append(row)
        if len(batch) >= batch_size:
            yield batch
            batch = []
    if batch:
        yield batch
