"""The vector store over Qdrant Edge: Qdrant's engine inside this process, one shard per folder.

Edge has shards only, so this module adds what a server has::

    <path>/.lock                      held (flock) while a store is open: one process at a time
    <path>/aliases.json               alias → collection, replaced atomically
    <path>/index_status.json          collection → points, indexed vectors, segments (ditto)
    <path>/collections/<name>/        one Edge shard per collection

Edge cannot share a shard between processes (its WAL lock makes a second ``load`` fail at
once), so readers cannot run beside a writer: every opener takes the folder lock, waiting up to
``lock_wait_seconds``. Only :func:`read_aliases` and :func:`read_index_status` read without it.

New points land in a plain segment that searches scan exhaustively (exact, slower) until
:meth:`EdgeStore.optimize` builds its HNSW index; writers never build it (:meth:`EdgeStore.close`
only flushes, so a run holds the folder lock for its writing alone). How and when an index is
built, and what new collections are created with, is in :mod:`.edge_index`.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe

from rag_ingest.core.text.sparse import SparseVector
from rag_ingest.core.vectorstore.base import (
    DOC_ID_FIELD,
    KEY_HASH_FIELD,
    DocumentPoints,
    KeyHashRange,
    PagedStore,
    ReplaceStats,
    check_dimension,
    paged,
)
from rag_ingest.core.vectorstore.edge_index import (
    DEFAULT_INDEXING_THRESHOLD_POINTS,
    DEFAULT_MAX_SEGMENT_POINTS,
    DEFAULT_OVERSAMPLING,
    DEFAULT_QUANTIZE,
    INDEX_STATUS_FILE,
    SHARD_CONFIG,
    EdgeIndexing,
    IndexStatus,
    dense_size,
    new_collection_config,
    read_index_status,
    record_status,
    search_params,
    shard_status,
)
from rag_ingest.core.vectorstore.edge_query import (
    doc_match,
    point_vectors,
    points_filter,
    query_request,
    scored,
    search_request,
)
from rag_ingest.core.vectorstore.folder import (
    check_name,
    fsync_dir,
    is_safe_name,
    lock_folder,
    read_mapping,
    write_mapping,
)
from rag_ingest.core.vectorstore.fusion import Fusion, ScoredPoint, plan_query
from rag_ingest.core.vectorstore.location import folder_location
from rag_ingest.core.vectorstore.rows import row_batches

__all__ = [
    "DEFAULT_INDEXING_THRESHOLD_POINTS",
    "DEFAULT_MAX_SEGMENT_POINTS",
    "INDEX_STATUS_FILE",
    "EdgeStore",
    "IndexStatus",
    "read_aliases",
    "read_index_status",
]

ALIASES_FILE = "aliases.json"
LOCK_FILE = ".lock"
COLLECTIONS_DIR = "collections"
# Edge's WAL keeps every update (~2.5 KB per 384-d point) until a flush; this bounds it.
FLUSH_EVERY_POINTS = 50_000


def read_aliases(path: str | os.PathLike[str]) -> dict[str, str]:
    """Alias → collection of the store at ``path``, read without its lock (the file is only
    ever replaced whole)."""
    return read_mapping(Path(path) / ALIASES_FILE)


class EdgeStore(EdgeIndexing, PagedStore):
    """:class:`~rag_ingest.core.vectorstore.base.VectorStore` over Qdrant Edge under ``path``.

    Holds the folder lock from construction to :meth:`close`; shards open on first use; only
    :meth:`optimize` builds an index. ``indexing_threshold_points``: the unindexed backlog at
    which :meth:`needs_index` says so, and Edge's indexing threshold for collections;
    ``max_segment_points``: Edge's segment cap, so one build stays bounded whatever the
    collection's size (either None: Edge's defaults for new collections, and optimize keeps a
    collection's settings). ``quantize``: new collections keep int8 codes of their vectors
    (existing collections keep what they were made with); ``oversampling``: int8 candidates per
    result rescored on the original vectors, for collections that have codes (None: Edge's
    default). ``hnsw_ef``: search beam width (None: Edge's default).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        lock_wait_seconds: float = 600.0,
        poll_seconds: float = 0.5,
        indexing_threshold_points: int | None = DEFAULT_INDEXING_THRESHOLD_POINTS,
        max_segment_points: int | None = DEFAULT_MAX_SEGMENT_POINTS,
        quantize: bool = DEFAULT_QUANTIZE,
        oversampling: float | None = DEFAULT_OVERSAMPLING,
        hnsw_ef: int | None = None,
    ) -> None:
        self._root = Path(os.path.realpath(os.fspath(path)))
        (self._root / COLLECTIONS_DIR).mkdir(parents=True, exist_ok=True)
        advice = "Edge lets one process open it at a time, readers included: wait for the run "
        advice += "to finish, or use a Qdrant server (RAG_QDRANT_URL)"
        what = f"Qdrant Edge store {self._root}"
        self._lock_fd: int | None = lock_folder(
            self._root / LOCK_FILE, what, advice, lock_wait_seconds, poll_seconds
        )
        self._threshold = indexing_threshold_points
        self._max_segment = max_segment_points
        self._quantize = quantize
        self._search_params = search_params(hnsw_ef, oversampling)
        self._shards: dict[str, qe.EdgeShard] = {}
        # Points written or deleted per collection in this open, since a flush.
        self._changed: Counter[str] = Counter()
        self._unflushed: Counter[str] = Counter()
        for entry in (self._root / COLLECTIONS_DIR).iterdir():
            if entry.name.startswith("."):  # half-made or half-dropped by a process that died
                shutil.rmtree(entry, ignore_errors=True)

    @property
    def location(self) -> str:
        return folder_location("edge", self._root)

    def close(self) -> None:
        if self._lock_fd is None:
            return
        failure: BaseException | None = None
        for name in list(self._shards):
            try:
                self._close_shard(name)
            except BaseException as exc:  # still close the others and let go of the lock
                failure = failure or exc
        os.close(self._lock_fd)  # closing the descriptor releases the flock
        self._lock_fd = None
        if failure is not None:
            raise failure

    def _close_shard(self, name: str, record: bool = True) -> None:
        shard = self._shards.pop(name)
        try:
            shard.flush()  # no index build here: that is optimize's, outside writing runs
            if record and self._changed[name]:
                record_status(self._root, name, shard_status(shard))
        finally:
            shard.close()
            self._forget_changes(name)

    def _forget_changes(self, name: str) -> None:
        self._changed.pop(name, None)
        self._unflushed.pop(name, None)

    def _dir(self, collection: str) -> Path:
        return self._root / COLLECTIONS_DIR / check_name(collection)

    def _open(self, name: str, required: bool = False) -> qe.EdgeShard | None:
        """The shard of collection (or alias) ``name``; None when there is none."""
        if self._lock_fd is None:
            raise RuntimeError(f"{self.location} is closed")
        collection = self.resolve(name)
        if collection is None and required:
            raise ValueError(f"collection {name!r} does not exist in {self.location}")
        if collection is None:
            return None
        shard = self._shards.get(collection)
        if shard is None:
            shard = self._shards[collection] = qe.EdgeShard.load(str(self._dir(collection)))
        return shard

    def _changed_points(self, name: str, shard: qe.EdgeShard, points: int) -> None:
        collection = self.resolve(name) or name
        self._changed[collection] += points
        self._unflushed[collection] += points
        if self._unflushed[collection] >= FLUSH_EVERY_POINTS:
            shard.flush()
            self._unflushed[collection] = 0

    # collections

    def list_collections(self) -> list[str]:
        return sorted(
            entry.name
            for entry in (self._root / COLLECTIONS_DIR).iterdir()
            if not entry.name.startswith(".") and (entry / SHARD_CONFIG).is_file()
        )

    def collection_exists(self, name: str) -> bool:
        return self.resolve(name) is not None

    def dimension(self, name: str) -> int | None:
        collection = self.resolve(name)
        if collection is None:
            return None
        return dense_size(name, json.loads((self._dir(collection) / SHARD_CONFIG).read_text()))

    def sparse_vector(self, name: str) -> str | None:
        collection = self.resolve(name)
        if collection is None:
            return None
        config = json.loads((self._dir(collection) / SHARD_CONFIG).read_text())
        return next(iter(config.get("sparse_vectors") or {}), None)

    def ensure_collection(self, name: str, dimension: int, sparse_vector: str = "") -> bool:
        existing = self.dimension(name)
        if existing is not None:
            check_dimension(name, existing, dimension)
            return False
        final = self._dir(name)
        # Built beside its final place and renamed in, so a collection folder is always whole.
        staging = final.with_name(f".new-{name}-{uuid.uuid4().hex[:8]}")
        config = new_collection_config(
            dimension, sparse_vector, self._threshold, self._max_segment, self._quantize
        )
        shard = qe.EdgeShard.create(str(staging), config)
        try:
            shard.update(
                qe.UpdateOperation.create_field_index(DOC_ID_FIELD, qe.PayloadSchemaType.Keyword)
            )
            shard.update(
                qe.UpdateOperation.create_field_index(KEY_HASH_FIELD, qe.PayloadSchemaType.Integer)
            )
            shard.flush()
        finally:
            shard.close()
        os.rename(staging, final)
        fsync_dir(final.parent)
        return True

    def drop_collection(self, name: str) -> None:
        if name not in self.list_collections():
            return
        if name in self._shards:
            self._close_shard(name, record=False)
        doomed = self._dir(name).with_name(f".drop-{name}-{uuid.uuid4().hex[:8]}")
        os.rename(self._dir(name), doomed)
        aliases = self.aliases()
        kept = {a: c for a, c in aliases.items() if c != name}
        if kept != aliases:
            write_mapping(self._root / ALIASES_FILE, kept)
        record_status(self._root, name, None)
        shutil.rmtree(doomed)

    # aliases

    def aliases(self) -> dict[str, str]:
        return read_aliases(self._root)

    def set_alias(self, alias: str, collection: str) -> None:
        check_name(alias)
        collections = self.list_collections()
        if collection not in collections:
            raise ValueError(f"collection {collection!r} not found (aliases point at collections)")
        if alias in collections:
            raise ValueError(f"{alias!r} is a collection; an alias cannot take its name")
        write_mapping(self._root / ALIASES_FILE, {**self.aliases(), alias: collection})

    def resolve(self, name: str) -> str | None:
        target = self.aliases().get(name, name)
        if not is_safe_name(target):
            return None
        return target if (self._dir(target) / SHARD_CONFIG).is_file() else None

    # points

    def replace_documents(
        self, collection: str, docs: Sequence[DocumentPoints], batch_size: int = 256
    ) -> ReplaceStats:
        shard = self._open(collection, required=True)
        assert shard is not None
        written = 0
        new_ids: set[qe.PointId] = set()
        sparse_name = self.sparse_vector(collection)
        for batch in row_batches(docs, batch_size, with_sparse=sparse_name is not None):
            points = [
                qe.Point(pid, point_vectors(vector, sparse_name, bm25), payload)
                for pid, vector, payload, bm25 in batch
            ]
            shard.update(qe.UpdateOperation.upsert_points(points))
            written += len(batch)
            new_ids.update(row[0] for row in batch)
        removed = 0
        if docs:
            keep: list[qe.ConditionType] = [qe.HasIdCondition(new_ids)] if new_ids else []
            stale = qe.Filter(must=[doc_match([d.info.doc_id for d in docs])], must_not=keep)
            removed = shard.count(qe.CountRequest(exact=True, filter=stale))
            if removed:
                shard.update(qe.UpdateOperation.delete_points_by_filter(stale))
        self._changed_points(collection, shard, written + removed)
        return ReplaceStats(
            documents=len(docs), points_written=written, stale_points_removed=removed
        )

    def delete_documents(self, collection: str, doc_ids: Sequence[str]) -> int:
        shard = self._open(collection) if doc_ids else None
        if shard is None:
            return 0
        selector = qe.Filter(must=[doc_match(doc_ids)])
        count = shard.count(qe.CountRequest(exact=True, filter=selector))
        if count:
            shard.update(qe.UpdateOperation.delete_points_by_filter(selector))
            self._changed_points(collection, shard, count)
        return count

    def count(self, collection: str, key_hashes: KeyHashRange | None = None) -> int:
        shard = self._open(collection)
        if shard is None:
            return 0
        return shard.count(qe.CountRequest(exact=True, filter=points_filter(None, key_hashes)))

    def _pages(
        self,
        collection: str,
        doc_ids: Sequence[str] | None,
        key_hashes: KeyHashRange | None,
        with_payload: bool | list[str],
        with_vectors: bool,
        limit: int | None,
    ) -> Iterator[Sequence[qe.Record]]:
        shard = self._open(collection)
        if shard is None:
            return iter(())
        selector: Any = (
            with_payload
            if isinstance(with_payload, bool)
            else qe.PayloadSelector.Include(with_payload)
        )

        def fetch(offset: Any, n: int) -> tuple[list[qe.Record], Any]:
            request = qe.ScrollRequest(
                offset=offset,
                limit=n,
                filter=points_filter(doc_ids, key_hashes),
                with_payload=selector,
                with_vector=with_vectors,
            )
            return shard.scroll(request)

        return paged(fetch, limit)

    def _vector(self, raw: Any) -> np.ndarray | None:
        # Edge returns named vectors as a dict; the unnamed one is "".
        return super()._vector(raw.get("") if isinstance(raw, dict) else raw)

    def search(self, collection: str, vector: np.ndarray, k: int) -> list[ScoredPoint]:
        if k < 1:
            raise ValueError("k must be at least 1")
        shard = self._open(collection)
        if shard is None:
            return []
        return scored(shard.search(search_request(vector, k, self._search_params)))

    def query(
        self,
        collection: str,
        k: int,
        dense: np.ndarray | None = None,
        sparse: SparseVector | None = None,
        fusion: Fusion | None = None,
    ) -> list[ScoredPoint]:
        if k < 1:
            raise ValueError("k must be at least 1")
        shard = self._open(collection)
        if shard is None:
            return []
        plan = plan_query(
            collection, k, dense, sparse, lambda: self.sparse_vector(collection), fusion
        )
        return plan.cut(scored(shard.query(query_request(plan, self._search_params))))
