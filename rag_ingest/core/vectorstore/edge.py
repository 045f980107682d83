"""The vector store over Qdrant Edge: Qdrant's engine inside this process, one shard per folder.

Edge has shards only, so this module adds what a server has::

    <path>/.lock                      held (flock) while a store is open: one process at a time
    <path>/aliases.json               alias → collection, replaced atomically
    <path>/collections/<name>/        one Edge shard per collection

Edge cannot share a shard between processes (its WAL lock makes a second ``load`` fail at
once), so readers cannot run beside a writer: every opener takes the folder lock, waiting up to
``lock_wait_seconds``. Only :func:`read_aliases` reads without it.

Writes land in an unindexed segment that searches scan exhaustively, so results are exact but
slow to compute until :meth:`EdgeStore.optimize` builds the HNSW index; :meth:`EdgeStore.close`
does that too once ``auto_optimize_points`` points were written or deleted since the last build.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe

from rag_ingest.core.vectorstore.base import (
    DOC_ID_FIELD,
    KEY_HASH_FIELD,
    CollectionMismatch,
    DocumentPoints,
    KeyHashRange,
    ReplaceStats,
    ScoredPoint,
    StoredPoint,
    check_dimension,
    paged,
    row_batches,
    tally_documents,
)
from rag_ingest.core.vectorstore.folder import fsync_dir, lock_folder, read_mapping, write_mapping

ALIASES_FILE = "aliases.json"
LOCK_FILE = ".lock"
COLLECTIONS_DIR = "collections"
# Edge's own per-shard config file; read for the vector size since the shard API has no getter.
_SHARD_CONFIG = "edge_config.json"
_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,254}$")
# Below this many changed points an index rebuild on close costs more than brute force saves.
DEFAULT_AUTO_OPTIMIZE_POINTS = 10_000


def _check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(
            f"invalid collection or alias name {name!r}: use letters, digits, '.', '_', '-'"
        )
    return name


def read_aliases(path: str | os.PathLike[str]) -> dict[str, str]:
    """Alias → collection of the store at ``path``, read without its lock (the file is only
    ever replaced whole)."""
    return read_mapping(Path(path) / ALIASES_FILE)


def _doc_match(doc_ids: Sequence[str]) -> qe.FieldCondition:
    return qe.FieldCondition(DOC_ID_FIELD, match=qe.MatchAny(list(doc_ids)))


def _filter(doc_ids: Sequence[str] | None, key_hashes: KeyHashRange | None) -> qe.Filter | None:
    must: list[Any] = []
    if doc_ids is not None:
        must.append(_doc_match(doc_ids))
    if key_hashes is not None:
        low, high = key_hashes
        must.append(qe.FieldCondition(KEY_HASH_FIELD, range=qe.RangeFloat(gte=low, lte=high)))
    return qe.Filter(must=must) if must else None


def _vector(raw: Any) -> np.ndarray | None:
    if isinstance(raw, dict):
        raw = raw.get("")
    return None if raw is None else np.asarray(raw, dtype=np.float32)


class EdgeStore:
    """:class:`~rag_ingest.core.vectorstore.base.VectorStore` over Qdrant Edge under ``path``.

    Holds the folder lock from construction to :meth:`close`; shards open on first use.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        lock_wait_seconds: float = 600.0,
        poll_seconds: float = 0.5,
        auto_optimize_points: int | None = DEFAULT_AUTO_OPTIMIZE_POINTS,
    ) -> None:
        self._root = Path(os.path.abspath(os.fspath(path)))
        (self._root / COLLECTIONS_DIR).mkdir(parents=True, exist_ok=True)
        self._lock_fd: int | None = lock_folder(
            self._root / LOCK_FILE,
            f"Qdrant Edge store {self._root}",
            "Edge lets one process open it at a time, readers included: wait for the run to "
            "finish, or use a Qdrant server (RAG_QDRANT_URL)",
            lock_wait_seconds,
            poll_seconds,
        )
        self._auto_optimize = auto_optimize_points
        self._shards: dict[str, qe.EdgeShard] = {}
        # Points written or deleted per collection since its index was last built.
        self._changed: Counter[str] = Counter()
        self._sweep()

    def _sweep(self) -> None:
        # Half-made or half-dropped collections of a process that died mid-way.
        for entry in (self._root / COLLECTIONS_DIR).iterdir():
            if entry.name.startswith("."):
                shutil.rmtree(entry, ignore_errors=True)

    @property
    def location(self) -> str:
        return f"edge:{self._root}"

    def close(self) -> None:
        if self._lock_fd is None:
            return
        try:
            for name in list(self._shards):
                self._close_shard(name, optimize=True)
        finally:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    def __enter__(self) -> EdgeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _close_shard(self, name: str, optimize: bool) -> None:
        shard = self._shards.pop(name)
        try:
            if optimize and self._due(name):
                shard.optimize()
            shard.flush()
        finally:
            shard.close()
            self._changed.pop(name, None)

    def _due(self, name: str) -> bool:
        return self._auto_optimize is not None and self._changed[name] >= self._auto_optimize

    def _dir(self, collection: str) -> Path:
        return self._root / COLLECTIONS_DIR / _check_name(collection)

    def _open(self, name: str) -> qe.EdgeShard | None:
        """The shard of collection (or alias) ``name``; None when there is none."""
        if self._lock_fd is None:
            raise RuntimeError(f"{self.location} is closed")
        collection = self.resolve(name)
        if collection is None:
            return None
        shard = self._shards.get(collection)
        if shard is None:
            shard = self._shards[collection] = qe.EdgeShard.load(str(self._dir(collection)))
        return shard

    def _require(self, name: str) -> tuple[str, qe.EdgeShard]:
        shard = self._open(name)
        if shard is None:
            raise ValueError(f"collection {name!r} does not exist in {self.location}")
        return self.resolve(name) or name, shard

    # collections

    def list_collections(self) -> list[str]:
        return sorted(
            entry.name
            for entry in (self._root / COLLECTIONS_DIR).iterdir()
            if not entry.name.startswith(".") and (entry / _SHARD_CONFIG).is_file()
        )

    def collection_exists(self, name: str) -> bool:
        return self.resolve(name) is not None

    def dimension(self, name: str) -> int | None:
        collection = self.resolve(name)
        if collection is None:
            return None
        config = json.loads((self._dir(collection) / _SHARD_CONFIG).read_text())
        vectors = config.get("vectors", {})
        if set(vectors) != {""}:
            raise CollectionMismatch(
                f"collection {name!r} uses named vectors; rag-ingest writes one unnamed vector"
            )
        if vectors[""].get("distance") != "Cosine":
            raise CollectionMismatch(
                f"collection {name!r} uses {vectors[''].get('distance')} distance; rag-ingest "
                "writes cosine vectors. Use another collection name."
            )
        return int(vectors[""]["size"])

    def ensure_collection(self, name: str, dimension: int) -> bool:
        existing = self.dimension(name)
        if existing is not None:
            check_dimension(name, existing, dimension)
            return False
        final = self._dir(name)
        # Built beside its final place and renamed in, so a collection folder is always whole.
        staging = final.with_name(f".new-{name}-{uuid.uuid4().hex[:8]}")
        params = qe.EdgeVectorParams(size=dimension, distance=qe.Distance.Cosine)
        shard = qe.EdgeShard.create(str(staging), qe.EdgeConfig(vectors={"": params}))
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
            self._close_shard(name, optimize=False)
        doomed = self._dir(name).with_name(f".drop-{name}-{uuid.uuid4().hex[:8]}")
        os.rename(self._dir(name), doomed)
        aliases = self.aliases()
        kept = {a: c for a, c in aliases.items() if c != name}
        if kept != aliases:
            write_mapping(self._root / ALIASES_FILE, kept)
        shutil.rmtree(doomed)

    # aliases

    def aliases(self) -> dict[str, str]:
        return read_aliases(self._root)

    def set_alias(self, alias: str, collection: str) -> None:
        _check_name(alias)
        collections = self.list_collections()
        if collection not in collections:
            raise ValueError(f"collection {collection!r} not found (aliases point at collections)")
        if alias in collections:
            raise ValueError(f"{alias!r} is a collection; an alias cannot take its name")
        write_mapping(self._root / ALIASES_FILE, {**self.aliases(), alias: collection})

    def resolve(self, name: str) -> str | None:
        target = self.aliases().get(name, name)
        if not _NAME.match(target):
            return None
        return target if (self._dir(target) / _SHARD_CONFIG).is_file() else None

    # points

    def replace_documents(
        self, collection: str, docs: Sequence[DocumentPoints], batch_size: int = 256
    ) -> ReplaceStats:
        name, shard = self._require(collection)
        written = 0
        new_ids: set[qe.PointId] = set()
        for batch in row_batches(docs, batch_size):
            shard.update(qe.UpdateOperation.upsert_points([qe.Point(*row) for row in batch]))
            written += len(batch)
            new_ids.update(pid for pid, _, _ in batch)
        removed = 0
        if docs:
            keep: list[qe.ConditionType] = [qe.HasIdCondition(new_ids)] if new_ids else []
            stale = qe.Filter(must=[_doc_match([d.info.doc_id for d in docs])], must_not=keep)
            removed = shard.count(qe.CountRequest(exact=True, filter=stale))
            if removed:
                shard.update(qe.UpdateOperation.delete_points_by_filter(stale))
        self._changed[name] += written + removed
        return ReplaceStats(
            documents=len(docs), points_written=written, stale_points_removed=removed
        )

    def delete_documents(self, collection: str, doc_ids: Sequence[str]) -> int:
        shard = self._open(collection) if doc_ids else None
        if shard is None:
            return 0
        selector = _filter(doc_ids, None)
        count = shard.count(qe.CountRequest(exact=True, filter=selector))
        if count and selector is not None:
            shard.update(qe.UpdateOperation.delete_points_by_filter(selector))
            self._changed[self.resolve(collection) or collection] += count
        return count

    def count(self, collection: str, key_hashes: KeyHashRange | None = None) -> int:
        shard = self._open(collection)
        if shard is None:
            return 0
        return shard.count(qe.CountRequest(exact=True, filter=_filter(None, key_hashes)))

    def _pages(
        self,
        collection: str,
        flt: qe.Filter | None,
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
                offset=offset, limit=n, filter=flt, with_payload=selector, with_vector=with_vectors
            )
            return shard.scroll(request)

        return paged(fetch, limit)

    def points_per_document(
        self,
        collection: str,
        doc_ids: Sequence[str] | None = None,
        key_hashes: KeyHashRange | None = None,
        on_page: Callable[[int], None] | None = None,
    ) -> Counter[str]:
        if doc_ids is not None and not doc_ids:
            return Counter()
        pages = self._pages(collection, _filter(doc_ids, key_hashes), [DOC_ID_FIELD], False, None)
        return tally_documents(([r.payload for r in page] for page in pages), on_page)

    def scroll(
        self,
        collection: str,
        doc_ids: Sequence[str] | None = None,
        with_vectors: bool = False,
        limit: int | None = None,
    ) -> Iterator[StoredPoint]:
        if doc_ids is not None and not doc_ids:
            return
        for records in self._pages(collection, _filter(doc_ids, None), True, with_vectors, limit):
            for record in records:
                yield StoredPoint(
                    id=str(record.id),
                    payload=dict(record.payload or {}),
                    vector=_vector(record.vector) if with_vectors else None,
                )

    def search(self, collection: str, vector: np.ndarray, k: int) -> list[ScoredPoint]:
        if k < 1:
            raise ValueError("k must be at least 1")
        shard = self._open(collection)
        if shard is None:
            return []
        query = qe.Query.Nearest(np.asarray(vector, dtype=np.float32).tolist())
        hits = shard.search(qe.SearchRequest(query=query, limit=k, with_payload=True))
        return [
            ScoredPoint(id=str(h.id), score=float(h.score), payload=dict(h.payload or {}))
            for h in hits
        ]

    def optimize(self, collection: str) -> bool:
        shard = self._open(collection)
        if shard is None:
            return False
        built = shard.optimize()
        shard.flush()
        self._changed.pop(self.resolve(collection) or collection, None)
        return built

    def index_status(self, collection: str) -> tuple[int, int]:
        """(points, indexed vectors) of a collection: how much a search still scans."""
        shard = self._open(collection)
        if shard is None:
            return 0, 0
        info = shard.info()
        return info.points_count, info.indexed_vectors_count
