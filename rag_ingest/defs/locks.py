"""Steps that must not run beside each other in two runs hold a lock of the deployment.

``qdrant`` (``qdrant_collection``'s write and verification, ``collection_health``'s
comparison): a writer's "newer version wins" check and its write must not interleave with
another writer's, and an embedded store is one process's at a time anyway. ``embedder``
(``embeddings`` with an embedder whose :attr:`~rag_ingest.resources.Embedder.serializes_runs`
says so): CPU embedding in two runs at once only makes both slower and doubles the memory.

These were Dagster op-level pools. Dagster 1.13.27's slot claim can leave a step waiting forever
beside a free slot (``core/registry/lock.py`` says how), so the project holds its own locks:
freed when the holder's process or database session ends, waited for with a bound, and a wait
that runs out fails the step with the lock's name (run retries try again). Steps report the
seconds they waited in their metadata (``run_lock_wait_seconds``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import dagster as dg

from rag_ingest.core.registry import Registry
from rag_ingest.core.registry.lock import LockTimeout, exclusive

QDRANT_LOCK = "qdrant"
EMBEDDER_LOCK = "embedder"
# Waits shorter than this are not worth a log line.
_LOGGED_WAIT_SECONDS = 1.0


@contextlib.contextmanager
def step_lock(
    context: dg.AssetExecutionContext,
    registry: Registry,
    name: str,
    wait_seconds: float,
    needed: bool = True,
) -> Iterator[float]:
    """Hold the deployment's lock ``name`` for the block (when ``needed``); yields the seconds
    waited for it. A wait that runs out is a :class:`dagster.Failure` naming the lock."""
    if not needed:
        yield 0.0
        return
    with contextlib.ExitStack() as stack:
        try:
            waited = stack.enter_context(exclusive(registry, name, wait_seconds))
        except LockTimeout as exc:
            raise dg.Failure(
                description=f"{exc}: another run held it for the whole wait; run retries and the "
                "sensors try again",
                metadata={"lock": name, "lock_wait_seconds": wait_seconds},
            ) from exc
        if waited >= _LOGGED_WAIT_SECONDS:
            context.log.info(f"waited {waited:.1f} s for lock {name!r}")
        yield waited
