"""Gathering what the health report compares: S3 listing, registry records, Qdrant points."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from rag_ingest.core.index.health import SyncReport, compare_sync
from rag_ingest.core.keys import document_id
from rag_ingest.core.registry import Registry, Scope, Target
from rag_ingest.core.storage.s3 import list_objects
from rag_ingest.core.vectorstore.base import VectorStore, holds_version

Progress = Callable[[str, int], None]


def _quiet(_stage: str, _n: int) -> None:
    return None


@dataclass(frozen=True)
class Audit:
    sync: SyncReport
    live_objects: int
    mismatched_documents: list[str]
    collection_dimension: int | None
    sample: np.ndarray
    status_counts: dict[str, int]


def live_documents(
    s3_client: Any, bucket: str, prefixes: Iterable[str], progress: Progress = _quiet
) -> set[str]:
    """Partition keys of every object that exists now under ``prefixes``."""
    live: set[str] = set()
    for prefix in prefixes:
        for obj in list_objects(s3_client, bucket, prefix):
            live.add(document_id(obj.bucket, obj.key))
            progress("s3 objects listed", 1)
    return live


def document_vectors(
    store: VectorStore, collection: str, doc_ids: list[str], limit: int
) -> np.ndarray:
    """Up to ``limit`` stored vectors of these documents, as float32 rows."""
    if not doc_ids:
        return np.zeros((0, 0), dtype=np.float32)
    rows = [
        p.vector
        for p in store.scroll(collection, doc_ids=doc_ids, with_vectors=True, limit=limit)
        if p.vector is not None
    ]
    return np.asarray(rows, dtype=np.float32) if rows else np.zeros((0, 0), dtype=np.float32)


def audit_collection(
    s3_client: Any,
    scope: Scope,
    registry: Registry,
    store: VectorStore,
    collection: str,
    target: Target | None,
    sample_documents: int = 200,
    max_sample_vectors: int = 2000,
    progress: Progress = _quiet,
    live: set[str] | None = None,
) -> Audit:
    """Compare a collection with S3 and the registry; sample recent vectors for drift.

    ``target`` is the registry's record of the collection (None: nothing recorded for it).
    ``live``: the S3 listing (:func:`live_documents`), taken *before* ``store`` was opened, so
    an embedded store's folder lock is not held through a listing of the whole bucket (writers
    wait for it); None lists here, inside whatever hold the caller has.
    """
    if live is None:
        live = live_documents(s3_client, scope.bucket, scope.prefixes, progress)
    versions = registry.ingested_versions(target.id, scope=scope) if target else {}
    recorded = {d: n for d, (_, n) in versions.items()}
    held = store.versions_per_document(
        collection, on_page=lambda n: progress("qdrant points scanned", n)
    )
    per_doc = {d: sum(by_etag.values()) for d, by_etag in held.items()}
    recent = registry.recently_ingested(target.id, sample_documents) if target else []
    sample = document_vectors(store, collection, recent, max_sample_vectors)
    return Audit(
        sync=compare_sync(per_doc, live, recorded),
        live_objects=len(live),
        # Points of another version than the one recorded count as mismatched, like a count.
        mismatched_documents=sorted(
            d for d, (e, n) in versions.items() if d in held and not holds_version(held[d], e, n)
        ),
        collection_dimension=store.dimension(collection),
        sample=sample,
        status_counts=registry.status_counts(scope),
    )
