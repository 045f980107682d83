"""The vector store over qdrant-client: a Qdrant server, or the client's embedded local mode.

Local mode keeps every point in memory, searches by brute force and lets one process open its
folder at a time; it suits development and tests. Production points at a server by URL.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import numpy as np
from qdrant_client import QdrantClient, models

from rag_ingest.core.text.sparse import SparseVector
from rag_ingest.core.vectorstore.base import (
    DOC_ID_FIELD,
    KEY_HASH_FIELD,
    CollectionMismatch,
    DocumentPoints,
    KeyHashRange,
    PagedStore,
    ReplaceStats,
    StoreLocked,
    check_dimension,
    paged,
)
from rag_ingest.core.vectorstore.fusion import Fusion, ScoredPoint, Stage, plan_query
from rag_ingest.core.vectorstore.location import folder_location, server_location
from rag_ingest.core.vectorstore.rows import row_batches

# What qdrant-client's local mode says about its own limits; we document them instead.
_LOCAL_NOTICES = ("Payload indexes have no effect", "Local mode is not recommended")


@contextmanager
def _quiet_local() -> Iterator[None]:
    with warnings.catch_warnings():
        for notice in _LOCAL_NOTICES:
            warnings.filterwarnings("ignore", message=notice, category=UserWarning)
        yield


def _open_local(path: str, lock_wait_seconds: float, poll_seconds: float) -> QdrantClient:
    deadline = time.monotonic() + lock_wait_seconds
    while True:
        try:
            with _quiet_local():
                return QdrantClient(path=path)
        except RuntimeError as exc:
            if "already accessed" not in str(exc):
                raise
            if time.monotonic() >= deadline:
                raise StoreLocked(
                    f"embedded Qdrant at {path} is held by another process (waited "
                    f"{lock_wait_seconds:g}s); stop it, or use a Qdrant server (RAG_QDRANT_URL)"
                ) from exc
            time.sleep(poll_seconds)


def _doc_filter(doc_ids: Sequence[str]) -> models.FieldCondition:
    return models.FieldCondition(key=DOC_ID_FIELD, match=models.MatchAny(any=list(doc_ids)))


def _range_filter(key_hashes: KeyHashRange) -> models.FieldCondition:
    low, high = key_hashes
    return models.FieldCondition(key=KEY_HASH_FIELD, range=models.Range(gte=low, lte=high))


def _vectors(dense: list[float], sparse_name: str | None, bm25: SparseVector | None) -> Any:
    if sparse_name is None or bm25 is None:
        return dense
    return {"": dense, sparse_name: models.SparseVector(indices=bm25.indices, values=bm25.values)}


def _filter(doc_ids: Sequence[str] | None, key_hashes: KeyHashRange | None) -> models.Filter | None:
    must: list[models.Condition] = []
    if doc_ids is not None:
        must.append(_doc_filter(doc_ids))
    if key_hashes is not None:
        must.append(_range_filter(key_hashes))
    return models.Filter(must=must) if must else None


class QdrantClientStore(PagedStore):
    """:class:`~rag_ingest.core.vectorstore.base.VectorStore` over qdrant-client.

    Give ``url`` (+ ``api_key``) for a server, or ``path`` for local mode. Local mode holds the
    folder's lock from construction to :meth:`close`; a second opener waits up to
    ``lock_wait_seconds`` and then raises :class:`StoreLocked`.
    """

    def __init__(
        self,
        *,
        url: str | None = None,
        api_key: str | None = None,
        path: str | os.PathLike[str] | None = None,
        timeout: int = 60,
        lock_wait_seconds: float = 600.0,
        poll_seconds: float = 0.5,
    ) -> None:
        if (url is None) == (path is None):
            raise ValueError("give either url (a Qdrant server) or path (local mode)")
        if url is not None:
            self._client = QdrantClient(url=url, api_key=api_key, timeout=timeout)
            self._location = server_location(url)
        else:
            folder = os.path.realpath(os.fspath(path or ""))
            self._client = _open_local(folder, lock_wait_seconds, poll_seconds)
            self._location = folder_location("local", folder)
        self._local = url is None
        self._closed = False

    @property
    def location(self) -> str:
        return self._location

    @property
    def client(self) -> QdrantClient:
        """The underlying client, for what the boundary does not cover (snapshots, admin)."""
        return self._client

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._client.close()

    def _quiet(self) -> AbstractContextManager[None]:
        return _quiet_local() if self._local else nullcontext()

    # collections

    def list_collections(self) -> list[str]:
        return sorted(c.name for c in self._client.get_collections().collections)

    def collection_exists(self, name: str) -> bool:
        return self._client.collection_exists(name) or name in self.aliases()

    def dimension(self, name: str) -> int | None:
        target = self.resolve(name)
        if target is None:
            return None
        params = self._client.get_collection(target).config.params.vectors
        if not isinstance(params, models.VectorParams):
            raise CollectionMismatch(
                f"collection {name!r} uses named vectors; rag-ingest writes one unnamed vector"
            )
        if params.distance != models.Distance.COSINE:
            raise CollectionMismatch(
                f"collection {name!r} uses {params.distance.value} distance; rag-ingest writes "
                "cosine vectors. Use another collection name."
            )
        return params.size

    def sparse_vector(self, name: str) -> str | None:
        target = self.resolve(name)
        if target is None:
            return None
        sparse = self._client.get_collection(target).config.params.sparse_vectors
        return next(iter(sparse or {}), None)

    def ensure_collection(self, name: str, dimension: int, sparse_vector: str = "") -> bool:
        existing = self.dimension(name)
        if existing is not None:
            check_dimension(name, existing, dimension)
            return False
        self._client.create_collection(
            name,
            vectors_config=models.VectorParams(size=dimension, distance=models.Distance.COSINE),
            sparse_vectors_config=(
                {sparse_vector: models.SparseVectorParams(modifier=models.Modifier.IDF)}
                if sparse_vector
                else None
            ),
        )
        with self._quiet():
            self._client.create_payload_index(
                name, DOC_ID_FIELD, models.PayloadSchemaType.KEYWORD, wait=True
            )
            self._client.create_payload_index(
                name, KEY_HASH_FIELD, models.PayloadSchemaType.INTEGER, wait=True
            )
        return True

    def drop_collection(self, name: str) -> None:
        if name in self.list_collections():
            self._client.delete_collection(name)

    # aliases

    def aliases(self) -> dict[str, str]:
        return {a.alias_name: a.collection_name for a in self._client.get_aliases().aliases}

    def set_alias(self, alias: str, collection: str) -> None:
        collections = self.list_collections()
        # Checked here so every engine fails alike (a server would answer with an HTTP error).
        if collection not in collections:
            raise ValueError(f"collection {collection!r} not found (aliases point at collections)")
        if alias in collections:
            raise ValueError(f"{alias!r} is a collection; an alias cannot take its name")
        operations: list[models.AliasOperations] = []
        if alias in self.aliases():
            # Delete and create in one request: Qdrant applies the list atomically, so readers
            # of the alias never find it missing.
            operations.append(
                models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias))
            )
        operations.append(
            models.CreateAliasOperation(
                create_alias=models.CreateAlias(collection_name=collection, alias_name=alias)
            )
        )
        self._client.update_collection_aliases(change_aliases_operations=operations)

    def resolve(self, name: str) -> str | None:
        aliases = self.aliases()
        if name in aliases:
            return aliases[name]
        return name if self._client.collection_exists(name) else None

    # points

    def replace_documents(
        self, collection: str, docs: Sequence[DocumentPoints], batch_size: int = 256
    ) -> ReplaceStats:
        written = 0
        new_ids: list[models.ExtendedPointId] = []
        with self._quiet():
            sparse_name = self.sparse_vector(collection)
            for batch in row_batches(docs, batch_size, with_sparse=sparse_name is not None):
                points = [
                    models.PointStruct(id=i, vector=_vectors(v, sparse_name, bm25), payload=p)
                    for i, v, p, bm25 in batch
                ]
                self._client.upsert(collection, points=points, wait=True)
                written += len(batch)
                new_ids.extend(row[0] for row in batch)
        if not docs:
            return ReplaceStats(documents=0, points_written=0, stale_points_removed=0)
        stale = models.Filter(
            must=[_doc_filter([d.info.doc_id for d in docs])],
            must_not=[models.HasIdCondition(has_id=new_ids)] if new_ids else [],
        )
        removed = self._client.count(collection, count_filter=stale, exact=True).count
        if removed:
            self._client.delete(
                collection, points_selector=models.FilterSelector(filter=stale), wait=True
            )
        return ReplaceStats(
            documents=len(docs), points_written=written, stale_points_removed=removed
        )

    def delete_documents(self, collection: str, doc_ids: Sequence[str]) -> int:
        if not doc_ids or not self.collection_exists(collection):
            return 0
        selector = models.Filter(must=[_doc_filter(doc_ids)])
        count = self._client.count(collection, count_filter=selector, exact=True).count
        if count:
            self._client.delete(
                collection, points_selector=models.FilterSelector(filter=selector), wait=True
            )
        return count

    def count(self, collection: str, key_hashes: KeyHashRange | None = None) -> int:
        if not self.collection_exists(collection):
            return 0
        found = self._client.count(collection, count_filter=_filter(None, key_hashes), exact=True)
        return found.count

    def _pages(
        self,
        collection: str,
        doc_ids: Sequence[str] | None,
        key_hashes: KeyHashRange | None,
        with_payload: bool | Sequence[str],
        with_vectors: bool,
        limit: int | None,
    ) -> Iterator[Sequence[models.Record]]:
        if not self.collection_exists(collection):
            return iter(())
        selector: models.WithPayloadInterface = (
            with_payload
            if isinstance(with_payload, bool)
            else models.PayloadSelectorInclude(include=list(with_payload))
        )

        def fetch(offset: Any, n: int) -> tuple[list[models.Record], Any]:
            return self._client.scroll(
                collection,
                scroll_filter=_filter(doc_ids, key_hashes),
                limit=n,
                offset=offset,
                with_payload=selector,
                with_vectors=with_vectors,
            )

        return paged(fetch, limit)

    def search(self, collection: str, vector: np.ndarray, k: int) -> list[ScoredPoint]:
        if k < 1:
            raise ValueError("k must be at least 1")
        if not self.collection_exists(collection):
            return []
        response = self._client.query_points(
            collection,
            query=np.asarray(vector, dtype=np.float32).tolist(),
            limit=k,
            with_payload=True,
        )
        return [
            ScoredPoint(id=str(p.id), score=float(p.score), payload=dict(p.payload or {}))
            for p in response.points
        ]

    def _vector(self, raw: Any) -> np.ndarray | None:
        # With a sparse vector beside it, the unnamed dense vector comes back under "".
        return super()._vector(raw.get("") if isinstance(raw, dict) else raw)

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
        if not self.collection_exists(collection):
            return []
        plan = plan_query(
            collection, k, dense, sparse, lambda: self.sparse_vector(collection), fusion
        )

        def vector(stage: Stage) -> Any:
            v = stage.vector
            if not isinstance(v, SparseVector):
                return v
            return models.SparseVector(indices=v.indices, values=v.values)

        if not plan.fused:
            (stage,) = plan.stages
            query, using, prefetch = vector(stage), stage.using, None
        else:
            limit = plan.prefetch_limit
            prefetch = [
                models.Prefetch(query=vector(s), using=s.using, limit=limit) for s in plan.stages
            ]
            if plan.fusion.method == "dbsf":
                query = models.FusionQuery(fusion=models.Fusion.DBSF)
            else:
                weights = plan.fusion.rrf_weights(plan.stages)
                query = models.RrfQuery(rrf=models.Rrf(k=plan.fusion.rrf_k, weights=weights))
            using = None
        with self._quiet():
            response = self._client.query_points(
                collection,
                query=query,
                using=using,
                prefetch=prefetch,
                limit=plan.limit,
                with_payload=True,
            )
        return plan.cut(
            ScoredPoint(id=str(p.id), score=float(p.score), payload=dict(p.payload or {}))
            for p in response.points
        )

    def optimize(self, collection: str) -> bool:
        # A server's optimizer runs on its own; local mode has no index to build.
        return False
