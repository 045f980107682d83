"""The vector-store boundary: what the pipeline needs from Qdrant, whichever engine holds it.

Two implementations live beside this module: the Qdrant client (a server by URL + API key, or
qdrant-client's local mode under a folder) and Qdrant Edge (Qdrant's engine embedded in this
process, one shard per folder). Every caller goes through :class:`VectorStore`; the same
contract tests run against each implementation. ``rows`` builds the points written,
``fusion`` plans the queries (the same stages, fusion and tie order in both engines).

Points follow LangChain's ``QdrantVectorStore`` layout (``page_content`` + ``metadata``) with
one unnamed cosine vector, and (when the fingerprint has one) a named BM25 sparse vector with
Qdrant's IDF modifier, the layout LangChain's hybrid mode reads, so existing retrievers can read
a server collection as is. Two
payload fields are indexed: ``metadata.doc_id`` (keyword: replace and delete one document's
points) and ``metadata.key_hash`` (integer, the first 16 bits of the document's key hash: count
and scan the documents of one key-space shard).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, Self, TypeVar

import numpy as np

from rag_ingest.core.records import DocumentInfo
from rag_ingest.core.text.chunking import Chunk
from rag_ingest.core.text.sparse import SparseVector
from rag_ingest.core.vectorstore.fusion import Fusion, ScoredPoint

# The dense vector is the unnamed one; the sparse one's default name is LangChain's.
DENSE_VECTOR = ""
DEFAULT_SPARSE_VECTOR = "langchain-sparse"
DOC_ID_FIELD = "metadata.doc_id"
# The version (S3 ETag) a point was written from: verification compares it with the registry's.
ETAG_FIELD = "metadata.etag"
KEY_HASH_FIELD = "metadata.key_hash"
# An inclusive range of ``metadata.key_hash`` values: the documents of one or more shards.
KeyHashRange = tuple[int, int]


class CollectionMismatch(Exception):
    """The existing collection was made for other vectors; ingestion never recreates it."""


class StoreLocked(RuntimeError):
    """An embedded store is held by another process longer than we were willing to wait."""


@dataclass(frozen=True)
class DocumentPoints:
    """One document version's chunks and their vectors (row i for chunk i)."""

    info: DocumentInfo
    chunks: Sequence[Chunk]
    vectors: np.ndarray
    # BM25 of each chunk; None: computed from the chunk texts when the collection has sparse.
    sparse: Sequence[SparseVector] | None = None


@dataclass(frozen=True)
class ReplaceStats:
    documents: int
    points_written: int
    stale_points_removed: int


@dataclass(frozen=True)
class StoredPoint:
    id: str
    payload: dict[str, Any]
    vector: np.ndarray | None = None


_Record = TypeVar("_Record")
PAGE_SIZE = 1024


def paged(
    fetch: Callable[[Any, int], tuple[Sequence[_Record], Any]],
    limit: int | None = None,
    page_size: int = PAGE_SIZE,
) -> Iterator[Sequence[_Record]]:
    """The pages of a scroll, at most ``limit`` records in all.

    ``fetch(offset, n)`` returns up to ``n`` records from ``offset`` (None: the start) and the
    next offset (None: no more).
    """
    offset: Any = None
    remaining = limit
    while remaining is None or remaining > 0:
        size = page_size if remaining is None else min(page_size, remaining)
        records, offset = fetch(offset, size)
        if remaining is not None:
            remaining -= len(records)
        yield records
        if offset is None:
            return


def tally_documents(
    pages: Iterable[Sequence[Mapping[str, Any] | None]],
    on_page: Callable[[int], None] | None = None,
) -> Counter[str]:
    """Points per ``metadata.doc_id`` over pages of payloads."""
    counts: Counter[str] = Counter()
    for payloads in pages:
        counts.update(str((p or {}).get("metadata", {}).get("doc_id")) for p in payloads)
        if on_page is not None:
            on_page(len(payloads))
    return counts


def holds_version(versions: Mapping[str, int] | None, etag: str, chunks: int) -> bool:
    """Whether a document's points (per ETag, from ``versions_per_document``) are exactly
    ``chunks`` points of version ``etag``: a count alone passes other versions' points."""
    held = {e: n for e, n in (versions or {}).items() if n}
    return held == ({etag: chunks} if chunks else {})


def check_dimension(name: str, existing: int, dimension: int) -> None:
    """Raise :class:`CollectionMismatch` unless the collection holds ``dimension``-d vectors."""
    if existing != dimension:
        raise CollectionMismatch(
            f"collection {name!r} has size {existing}; this pipeline writes {dimension}-dim "
            "cosine vectors. Use another collection name."
        )


class ClosingStore:
    """``with store: ...`` closes the store at the end of the block."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PagedStore(ClosingStore):
    """Per-document counts and scrolls over an engine's scroll pages, the same for every
    engine; an engine supplies ``_pages`` and how its records hold a vector."""

    def _pages(
        self,
        collection: str,
        doc_ids: Sequence[str] | None,
        key_hashes: KeyHashRange | None,
        with_payload: bool | list[str],
        with_vectors: bool,
        limit: int | None,
    ) -> Iterator[Sequence[Any]]:
        """Pages of records (``.id``, ``.payload``, ``.vector``); none if no collection."""
        raise NotImplementedError

    def _vector(self, raw: Any) -> np.ndarray | None:
        return None if raw is None else np.asarray(raw, dtype=np.float32)

    def points_per_document(
        self,
        collection: str,
        doc_ids: Sequence[str] | None = None,
        key_hashes: KeyHashRange | None = None,
        on_page: Callable[[int], None] | None = None,
    ) -> Counter[str]:
        if doc_ids is not None and not doc_ids:
            return Counter()
        pages = self._pages(collection, doc_ids, key_hashes, [DOC_ID_FIELD], False, None)
        return tally_documents(([r.payload for r in page] for page in pages), on_page)

    def versions_per_document(
        self,
        collection: str,
        doc_ids: Sequence[str] | None = None,
        key_hashes: KeyHashRange | None = None,
        on_page: Callable[[int], None] | None = None,
    ) -> dict[str, Counter[str]]:
        if doc_ids is not None and not doc_ids:
            return {}
        fields = [DOC_ID_FIELD, ETAG_FIELD]
        found: dict[str, Counter[str]] = {}
        for page in self._pages(collection, doc_ids, key_hashes, fields, False, None):
            for record in page:
                meta = (record.payload or {}).get("metadata", {})
                found.setdefault(str(meta.get("doc_id")), Counter())[str(meta.get("etag"))] += 1
            if on_page is not None:
                on_page(len(page))
        return found

    def scroll(
        self,
        collection: str,
        doc_ids: Sequence[str] | None = None,
        with_vectors: bool = False,
        limit: int | None = None,
    ) -> Iterator[StoredPoint]:
        if doc_ids is not None and not doc_ids:
            return
        for records in self._pages(collection, doc_ids, None, True, with_vectors, limit):
            for record in records:
                yield StoredPoint(
                    id=str(record.id),
                    payload=dict(record.payload or {}),
                    vector=self._vector(record.vector) if with_vectors else None,
                )


class VectorStore(Protocol):
    """A Qdrant deployment: collections of points, aliases, and the operations ingestion uses.

    Every write is acknowledged before the call returns (``wait=True`` on a server).
    """

    @property
    def location(self) -> str:
        """Where the points live, without secrets: ``server:<url>``, ``local:<abs path>`` or
        ``edge:<abs path>``. Part of a target's identity in the registry."""
        ...

    def close(self) -> None:
        """Release the store (an embedded one's folder lock); idempotent."""
        ...

    def __enter__(self) -> VectorStore: ...
    def __exit__(self, *exc: object) -> None: ...

    # collections
    def list_collections(self) -> list[str]: ...
    def collection_exists(self, name: str) -> bool: ...
    def dimension(self, name: str) -> int | None:
        """The unnamed vector's size; None when the collection (or alias) does not exist.

        Raises:
            CollectionMismatch: named vectors, or a distance other than cosine.
        """
        ...

    def sparse_vector(self, name: str) -> str | None:
        """The name of the collection's sparse vector (None: it has none, or does not exist)."""
        ...

    def ensure_collection(self, name: str, dimension: int, sparse_vector: str = "") -> bool:
        """Create the collection (cosine, ``dimension``, both payload indexes, and a sparse
        vector named ``sparse_vector`` with the IDF modifier unless empty) if missing.

        Returns:
            True if it was created by this call.

        Raises:
            CollectionMismatch: an existing collection has another size or distance.
        """
        ...

    def drop_collection(self, name: str) -> None: ...

    # aliases: the name readers use, pointing at one physical collection
    def aliases(self) -> dict[str, str]:
        """Alias → collection."""
        ...

    def set_alias(self, alias: str, collection: str) -> None:
        """Point ``alias`` at ``collection`` atomically (create it, or move it)."""
        ...

    def resolve(self, name: str) -> str | None:
        """The collection ``name`` refers to (through an alias, or itself); None if neither."""
        ...

    # points
    def replace_documents(
        self, collection: str, docs: Sequence[DocumentPoints], batch_size: int = 256
    ) -> ReplaceStats:
        """Make the collection hold exactly ``docs``' points for these documents, with their
        BM25 sparse vectors when the collection has a sparse vector.

        New points are upserted first, then every other point of the same documents is
        deleted: readers never see a document vanish, only, briefly, both versions. A document
        with no chunks loses all its points.
        """
        ...

    def delete_documents(self, collection: str, doc_ids: Sequence[str]) -> int:
        """Delete every point of these documents; returns how many there were (0 when the
        collection does not exist)."""
        ...

    def count(self, collection: str, key_hashes: KeyHashRange | None = None) -> int:
        """Exact point count, of the whole collection or of a ``key_hash`` range; 0 if the
        collection does not exist."""
        ...

    def points_per_document(
        self,
        collection: str,
        doc_ids: Sequence[str] | None = None,
        key_hashes: KeyHashRange | None = None,
        on_page: Callable[[int], None] | None = None,
    ) -> Counter[str]:
        """Point count per document id, reading only the doc-id payload field (no vectors)."""
        ...

    def versions_per_document(
        self,
        collection: str,
        doc_ids: Sequence[str] | None = None,
        key_hashes: KeyHashRange | None = None,
        on_page: Callable[[int], None] | None = None,
    ) -> dict[str, Counter[str]]:
        """Per document id, its points per version (``metadata.etag``), reading only those two
        payload fields: a document is whole at one version when it has exactly one."""
        ...

    def scroll(
        self,
        collection: str,
        doc_ids: Sequence[str] | None = None,
        with_vectors: bool = False,
        limit: int | None = None,
    ) -> Iterator[StoredPoint]:
        """Points with their payloads (and vectors if asked), in pages; at most ``limit``."""
        ...

    def search(self, collection: str, vector: np.ndarray, k: int) -> list[ScoredPoint]:
        """The ``k`` nearest points by cosine similarity; empty when the collection is missing."""
        ...

    def query(
        self,
        collection: str,
        k: int,
        dense: np.ndarray | None = None,
        sparse: SparseVector | None = None,
        fusion: Fusion | None = None,
    ) -> list[ScoredPoint]:
        """The ``k`` best points by the dense vector, the sparse one (BM25 with IDF), or both
        fused by Qdrant (a prefetch of each, ``fusion``: reciprocal rank fusion by default);
        ties broken by point id; empty when the collection is missing.

        Raises:
            ValueError: neither vector, or a sparse query on a collection without sparse.
        """
        ...

    def optimize(self, collection: str) -> bool:
        """Bring the collection's vector index up to date, blocking until it is.

        Searches are correct before this runs (unindexed points are searched exhaustively);
        they are only slower. A server indexes in the background and qdrant-client's local mode
        has no index, so only Qdrant Edge does work here: the maintenance step calls it,
        outside the runs that write.

        Returns:
            True if anything was (re)built.
        """
        ...
