"""Noticing, cheaply and on every sensor tick, that the current target's collection was lost.

A collection deleted or emptied by hand (or lost with a volume) leaves the registry saying its
documents are ingested: no sensor would see work until the periodic full reconcile, up to a
day later. The sensors therefore ask the store two cheap questions about the current target:
does its collection exist, and does it hold at least as many points as the registry records
for the documents ingested there (one exact count)? A collection that is gone ends its target,
so every document is work again at once; one that holds fewer points asks for a verification
pass over every shard, whose runs re-queue exactly the documents whose points are short.

More points than recorded is normal (the points of a version whose replacement waits for a
retry, pending documents, documents of other deployments) and says nothing. The check waits at
most a moment for the writers' lock and for an embedded store's folder lock: a sensor never
queues behind a run, and a locked store is checked on a later tick. Holding both, no writer is
between writing points and recording their outcome, so the count and the registry agree.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from rag_ingest.core.registry import Registry, Scope, Target
from rag_ingest.core.registry.lock import LockTimeout, exclusive
from rag_ingest.core.vectorstore.base import StoreLocked, VectorStore

# Seconds a sensor waits for the writers' lock (and an embedded store's folder lock).
CHECK_LOCK_WAIT_SECONDS = 1.0
# The lock writers hold around their write section (see core.registry.lock).
WRITERS_LOCK = "qdrant"


@dataclass(frozen=True)
class TargetCheck:
    """What the store says about a target's collection; ``state``: ``ok``, ``missing``,
    ``short`` (fewer points than recorded) or ``skipped`` (a lock was busy)."""

    state: str
    points: int = 0
    recorded: int = 0

    def describe(self, target: Target) -> str:
        if self.state == "missing":
            return f"collection {target.collection} is gone: every document is work again"
        if self.state == "short":
            return (
                f"collection {target.collection} holds {self.points} points, the registry "
                f"records {self.recorded}: verifying every shard"
            )
        return f"collection {target.collection}: {self.state}"


def check_target(
    open_store: Callable[[float], AbstractContextManager[VectorStore]],
    registry: Registry,
    target: Target,
    scope: Scope,
    wait_seconds: float = CHECK_LOCK_WAIT_SECONDS,
) -> TargetCheck:
    """Compare ``target``'s collection with the registry (existence, then one count).

    ``open_store(wait)`` opens the store, waiting at most ``wait`` seconds for an embedded
    store's folder lock.
    """
    try:
        writers: AbstractContextManager[object] = exclusive(registry, WRITERS_LOCK, wait_seconds)
        with contextlib.ExitStack() as stack:
            # A registry with no cross-process lock (ValueError): the store's own lock only.
            with contextlib.suppress(ValueError):
                stack.enter_context(writers)
            store = stack.enter_context(open_store(wait_seconds))
            if not store.collection_exists(target.collection):
                return TargetCheck("missing")
            recorded = registry.ingested_points(target.id, scope)
            points = store.count(target.collection) if recorded else 0
    except (LockTimeout, StoreLocked):
        return TargetCheck("skipped")
    return TargetCheck("short" if points < recorded else "ok", points, recorded)
