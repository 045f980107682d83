"""Index maintenance, free of Dagster: which collections want their vector index built, and
building it outside the writing runs.

Only Qdrant Edge has work here (a server indexes in the background; qdrant-client's local mode
has no index). Writers never build: they record each collection's points and indexed vectors
beside the store (``index_status.json``), so whether a build is wanted is known without opening
the store or waiting for its lock.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from rag_ingest.core.vectorstore.base import VectorStore


@runtime_checkable
class Indexed(Protocol):
    """A store whose index is built on request (Edge)."""

    def index_status(self, collection: str) -> tuple[int, int, int]: ...


@dataclass(frozen=True)
class IndexBuild:
    """One collection's build: the unindexed backlog before and after, and how long it took
    (holding the store for the build alone)."""

    collection: str
    backlog_before: int
    backlog_after: int
    segments: int
    seconds: float
    built: bool

    @property
    def points_indexed(self) -> int:
        return max(0, self.backlog_before - self.backlog_after)


def build_index(store: VectorStore, collection: str) -> IndexBuild:
    """Build ``collection``'s index now (a no-op but for the report where the engine indexes by
    itself or has no index)."""
    started = time.perf_counter()
    if not isinstance(store, Indexed):
        return IndexBuild(collection, 0, 0, 0, 0.0, store.optimize(collection))
    points, indexed, _ = store.index_status(collection)
    built = store.optimize(collection)
    after_points, after_indexed, segments = store.index_status(collection)
    return IndexBuild(
        collection,
        points - indexed,
        after_points - after_indexed,
        segments,
        time.perf_counter() - started,
        built,
    )


def live_and_current(
    engine: str, path: str | os.PathLike[str], alias: str, current: str
) -> list[str]:
    """The collection ``alias`` serves (read without the store's lock) and ``current``, once
    each; nothing for engines that index by themselves."""
    if engine != "edge":
        return []
    from rag_ingest.core.vectorstore.edge import read_aliases

    live = read_aliases(path).get(alias)
    return list(dict.fromkeys(name for name in (live, current) if name))


@dataclass(frozen=True)
class Backlog:
    collection: str
    points: int
    unindexed: int


def index_wanted(
    engine: str,
    path: str | os.PathLike[str],
    collections: Iterable[str],
    threshold: int | None = None,
) -> tuple[list[Backlog], list[Backlog]]:
    """(wanted, all) backlogs of ``collections`` in the embedded store at ``path``, as its
    writers last recorded them; wanted: an unindexed backlog of ``threshold`` or more (None:
    the store's default indexing threshold). Read without the store's lock; nothing for engines
    that index by themselves."""
    if engine != "edge":
        return [], []
    from rag_ingest.core.vectorstore.edge import (
        DEFAULT_INDEXING_THRESHOLD_POINTS,
        read_index_status,
    )

    threshold = DEFAULT_INDEXING_THRESHOLD_POINTS if threshold is None else threshold
    recorded = read_index_status(path)
    seen = [
        Backlog(name, recorded[name].points, recorded[name].backlog)
        for name in dict.fromkeys(collections)
        if name in recorded
    ]
    return [b for b in seen if b.unindexed >= threshold], seen
