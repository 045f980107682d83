"""Where the vectors live: one :class:`VectorStore` protocol, three ways to open it.

``server`` is a Qdrant server (qdrant-client over HTTP), ``local`` qdrant-client's embedded
mode under a folder, ``edge`` Qdrant Edge under a folder. Implementations import lazily, so a
deployment that never uses Edge does not load it.
"""

from __future__ import annotations

import os
from typing import Literal, get_args

from rag_ingest.core.vectorstore.base import (
    DOC_ID_FIELD,
    KEY_HASH_FIELD,
    CollectionMismatch,
    DocumentPoints,
    KeyHashRange,
    ReplaceStats,
    StoredPoint,
    StoreLocked,
    VectorStore,
)
from rag_ingest.core.vectorstore.fusion import DEFAULT_FUSION, Fusion, ScoredPoint
from rag_ingest.core.vectorstore.rows import payload, point_rows

Engine = Literal["server", "local", "edge"]
ENGINES: tuple[str, ...] = get_args(Engine)

__all__ = [
    "DEFAULT_FUSION",
    "DOC_ID_FIELD",
    "ENGINES",
    "KEY_HASH_FIELD",
    "CollectionMismatch",
    "DocumentPoints",
    "Engine",
    "Fusion",
    "KeyHashRange",
    "ReplaceStats",
    "ScoredPoint",
    "StoreLocked",
    "StoredPoint",
    "VectorStore",
    "open_vector_store",
    "payload",
    "point_rows",
]


def open_vector_store(
    engine: str,
    *,
    url: str | None = None,
    api_key: str | None = None,
    path: str | os.PathLike[str] | None = None,
    timeout: int = 60,
    lock_wait_seconds: float = 600.0,
) -> VectorStore:
    """Open a vector store; close it (or use it as a context manager) to release it.

    Args:
        engine: ``"server"`` (needs ``url``), ``"local"`` or ``"edge"`` (need ``path``).
        url: Qdrant server URL.
        api_key: Qdrant server API key.
        path: Folder of an embedded store.
        timeout: Seconds per server request.
        lock_wait_seconds: How long an embedded store waits for another process to let go of
            its folder before raising :class:`StoreLocked`.
    """
    if engine == "server":
        if not url:
            raise ValueError("engine 'server' needs url")
        from rag_ingest.core.vectorstore.qdrant import QdrantClientStore

        return QdrantClientStore(url=url, api_key=api_key, timeout=timeout)
    if engine not in ("local", "edge"):
        raise ValueError(f"unknown vector store engine {engine!r}; expected one of {ENGINES}")
    if path is None:
        raise ValueError(f"engine {engine!r} needs path")
    if engine == "local":
        from rag_ingest.core.vectorstore.qdrant import QdrantClientStore

        return QdrantClientStore(path=path, lock_wait_seconds=lock_wait_seconds)
    from rag_ingest.core.vectorstore.edge import EdgeStore

    return EdgeStore(path, lock_wait_seconds=lock_wait_seconds)
