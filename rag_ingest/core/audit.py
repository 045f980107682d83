"""Gathering what the health report compares: S3 listing, registry records, Qdrant points."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from qdrant_client import QdrantClient

from rag_ingest.core.health import SyncReport, compare_sync
from rag_ingest.core.index import collection_dimension, document_vectors, points_per_document
from rag_ingest.core.keys import partition_key
from rag_ingest.core.registry import Registry
from rag_ingest.core.s3 import list_objects

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
            live.add(partition_key(obj.bucket, obj.key))
            progress("s3 objects listed", 1)
    return live


def audit_collection(
    s3_client: Any,
    bucket: str,
    prefixes: Iterable[str],
    registry: Registry,
    client: QdrantClient,
    collection: str,
    sample_documents: int = 200,
    max_sample_vectors: int = 2000,
    progress: Progress = _quiet,
) -> Audit:
    """Compare the collection with S3 and the registry; sample recent vectors for drift."""
    live = live_documents(s3_client, bucket, prefixes, progress)
    recorded = registry.recorded_chunks()
    per_doc = points_per_document(
        client, collection, on_page=lambda n: progress("qdrant points scanned", n)
    )
    recent = registry.recently_ingested(sample_documents)
    sample = document_vectors(client, collection, recent, max_sample_vectors)
    return Audit(
        sync=compare_sync(per_doc, live, recorded),
        live_objects=len(live),
        mismatched_documents=sorted(
            d for d, n in recorded.items() if d in per_doc and per_doc[d] != n
        ),
        collection_dimension=collection_dimension(client, collection),
        sample=sample,
        status_counts=registry.status_counts(),
    )
