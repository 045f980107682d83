"""Writing documents into a Qdrant collection, replacing each document's points as a unit.

Payload follows LangChain's ``QdrantVectorStore`` convention (``page_content`` + ``metadata``)
with one unnamed cosine vector, so existing retrievers can read the collection as is.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from qdrant_client import QdrantClient, models

from rag_ingest.core.chunking import Chunk
from rag_ingest.core.keys import point_id
from rag_ingest.core.records import DocumentInfo

DOC_ID_FIELD = "metadata.doc_id"


class CollectionMismatch(Exception):
    """The existing collection was made for other vectors; ingestion never recreates it."""


@dataclass(frozen=True)
class DocumentPoints:
    info: DocumentInfo
    chunks: Sequence[Chunk]
    vectors: np.ndarray


@dataclass(frozen=True)
class ReplaceStats:
    documents: int
    points_written: int
    stale_points_removed: int


def ensure_collection(client: QdrantClient, name: str, dimension: int) -> bool:
    """Create the collection (cosine, ``dimension``) and its doc-id index if it is missing.

    Returns:
        True if it was created now.

    Raises:
        CollectionMismatch: an existing collection has another size or distance.
    """
    if client.collection_exists(name):
        params = client.get_collection(name).config.params.vectors
        if not isinstance(params, models.VectorParams):
            raise CollectionMismatch(
                f"collection {name!r} uses named vectors; rag-ingest writes one unnamed vector"
            )
        if params.size != dimension or params.distance != models.Distance.COSINE:
            raise CollectionMismatch(
                f"collection {name!r} has size {params.size} / {params.distance.value}; this "
                f"pipeline writes {dimension}-dim cosine vectors. Use another collection name."
            )
        return False
    client.create_collection(
        name, vectors_config=models.VectorParams(size=dimension, distance=models.Distance.COSINE)
    )
    with warnings.catch_warnings():
        # Embedded Qdrant ignores payload indexes and says so; servers use it for the filters.
        warnings.filterwarnings("ignore", message="Payload indexes have no effect")
        client.create_payload_index(name, DOC_ID_FIELD, models.PayloadSchemaType.KEYWORD)
    return True


def payload(info: DocumentInfo, chunk: Chunk, chunk_count: int) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "source": info.source,
        "bucket": info.bucket,
        "key": info.key,
        "etag": info.etag,
        "doc_id": info.doc_id,
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
    return {"page_content": chunk.text, "metadata": meta}


def _points(docs: Sequence[DocumentPoints]) -> Iterator[models.PointStruct]:
    for doc in docs:
        if len(doc.chunks) != len(doc.vectors):
            raise ValueError(
                f"{doc.info.source}: {len(doc.chunks)} chunks but {len(doc.vectors)} vectors"
            )
        for chunk, vector in zip(doc.chunks, doc.vectors, strict=True):
            yield models.PointStruct(
                id=point_id(doc.info.doc_id, doc.info.etag, chunk.index),
                vector=vector.tolist(),
                payload=payload(doc.info, chunk, len(doc.chunks)),
            )


def replace_documents(
    client: QdrantClient, collection: str, docs: Sequence[DocumentPoints], batch_size: int = 256
) -> ReplaceStats:
    """Make the collection hold exactly ``docs``' points for these documents.

    New points are upserted first (``wait=True``), then every other point of the same documents
    is deleted in one filtered call: readers never see a document vanish, only, briefly, both
    versions. A document with no chunks (failed, empty) loses all its points.
    """
    written = 0
    new_ids: list[models.ExtendedPointId] = []
    batch: list[models.PointStruct] = []
    for point in _points(docs):
        batch.append(point)
        new_ids.append(point.id)
        if len(batch) >= batch_size:
            client.upsert(collection, points=batch, wait=True)
            written += len(batch)
            batch = []
    if batch:
        client.upsert(collection, points=batch, wait=True)
        written += len(batch)
    stale = models.Filter(
        must=[
            models.FieldCondition(
                key=DOC_ID_FIELD, match=models.MatchAny(any=[d.info.doc_id for d in docs])
            )
        ],
        must_not=[models.HasIdCondition(has_id=new_ids)] if new_ids else [],
    )
    removed = client.count(collection, count_filter=stale, exact=True).count if docs else 0
    if removed:
        client.delete(collection, points_selector=models.FilterSelector(filter=stale), wait=True)
    return ReplaceStats(documents=len(docs), points_written=written, stale_points_removed=removed)


def remove_documents(client: QdrantClient, collection: str, doc_ids: Sequence[str]) -> int:
    """Delete every point of these documents; returns how many there were."""
    if not doc_ids or not client.collection_exists(collection):
        return 0
    selector = models.Filter(
        must=[models.FieldCondition(key=DOC_ID_FIELD, match=models.MatchAny(any=list(doc_ids)))]
    )
    count = client.count(collection, count_filter=selector, exact=True).count
    if count:
        client.delete(collection, points_selector=models.FilterSelector(filter=selector), wait=True)
    return count


def collection_dimension(client: QdrantClient, collection: str) -> int | None:
    """The collection's (unnamed) vector size; None when it does not exist or is named."""
    if not client.collection_exists(collection):
        return None
    params = client.get_collection(collection).config.params.vectors
    return params.size if isinstance(params, models.VectorParams) else None


def _doc_filter(doc_ids: Sequence[str]) -> models.Filter:
    return models.Filter(
        must=[models.FieldCondition(key=DOC_ID_FIELD, match=models.MatchAny(any=list(doc_ids)))]
    )


def points_per_document(
    client: QdrantClient,
    collection: str,
    doc_ids: Sequence[str] | None = None,
    page_size: int = 1024,
    on_page: Callable[[int], None] | None = None,
) -> Counter[str]:
    """Point count per document id, over the whole collection or only ``doc_ids``.

    One scroll reading only the doc-id payload field: no vectors leave the server.
    """
    counts: Counter[str] = Counter()
    if not client.collection_exists(collection) or (doc_ids is not None and not doc_ids):
        return counts
    scroll_filter = _doc_filter(doc_ids) if doc_ids is not None else None
    offset: Any = None
    while True:
        records, offset = client.scroll(
            collection,
            scroll_filter=scroll_filter,
            limit=page_size,
            offset=offset,
            with_payload=models.PayloadSelectorInclude(include=[DOC_ID_FIELD]),
            with_vectors=False,
        )
        for record in records:
            counts[str((record.payload or {}).get("metadata", {}).get("doc_id"))] += 1
        if on_page is not None:
            on_page(len(records))
        if offset is None:
            return counts


def document_vectors(
    client: QdrantClient, collection: str, doc_ids: Sequence[str], limit: int
) -> np.ndarray:
    """Up to ``limit`` stored vectors of these documents, as float32 rows."""
    if not doc_ids or not client.collection_exists(collection):
        return np.zeros((0, 0), dtype=np.float32)
    records, _ = client.scroll(
        collection,
        scroll_filter=_doc_filter(doc_ids),
        limit=limit,
        with_payload=False,
        with_vectors=True,
    )
    rows = [r.vector for r in records if isinstance(r.vector, list)]
    return np.asarray(rows, dtype=np.float32) if rows else np.zeros((0, 0), dtype=np.float32)
