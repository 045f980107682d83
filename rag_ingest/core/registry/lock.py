"""Deployment-wide exclusive sections that the operating system or the database releases.

Steps that must not run beside each other in two runs (the Qdrant write, whose "newer version
wins" check must not interleave with another writer's; CPU embedding on one machine) used
Dagster's op-level pools. Dagster 1.13.27 can leave a step of a pool "blocked" forever with a
free slot: ``claim_concurrency_slot`` asks for a free slot, then inserts the step unassigned;
a slot freed in between assigns no one, and nothing re-checks. A run then waits with no
timeout and its shards are never requested again.

The locks here cannot be lost that way: the holder is a process (an ``flock`` on a file beside
a SQLite registry) or a database session (a PostgreSQL advisory lock), so a finished, failed or
killed holder releases it at once, and a waiter polls with a bounded wait that ends in a
:class:`LockTimeout` naming the lock, which fails the step and lets run retries take over.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

if TYPE_CHECKING:
    from rag_ingest.core.registry.store import Registry

POLL_SECONDS = 0.2


class LockTimeout(TimeoutError):
    """The lock was held by someone else for the whole wait."""


def _advisory_key(name: str) -> int:
    """A stable signed 64-bit key for ``name`` (PostgreSQL advisory locks take a bigint)."""
    digest = hashlib.sha256(f"rag_ingest:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _sqlite_path(url: str) -> Path | None:
    if not url.startswith("sqlite:///"):
        return None
    return Path(url.removeprefix("sqlite:///"))


@contextlib.contextmanager
def _file_lock(path: Path, name: str, wait_seconds: float) -> Iterator[float]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        started = time.monotonic()
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() - started >= wait_seconds:
                    raise LockTimeout(
                        f"lock {name!r} ({path}) still held after {wait_seconds:.0f} s"
                    ) from None
                time.sleep(POLL_SECONDS)
        yield time.monotonic() - started
    finally:
        os.close(fd)  # closing the descriptor releases the flock


@contextlib.contextmanager
def _advisory_lock(engine: sa.Engine, name: str, wait_seconds: float) -> Iterator[float]:
    key = _advisory_key(name)
    # A connection of its own, outside any transaction the caller runs: the lock belongs to
    # this session and ends with it, even when the process dies without unlocking.
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT")
        started = time.monotonic()
        while not conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar():
            if time.monotonic() - started >= wait_seconds:
                raise LockTimeout(f"lock {name!r} still held after {wait_seconds:.0f} s")
            time.sleep(POLL_SECONDS)
        try:
            yield time.monotonic() - started
        finally:
            conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})


@contextlib.contextmanager
def exclusive(registry: Registry, name: str, wait_seconds: float) -> Iterator[float]:
    """Hold the lock ``name`` of the deployment that shares ``registry``; yields the seconds
    spent waiting for it.

    Every process that shares the registry shares the lock: a file beside a SQLite registry
    (one machine), an advisory lock in a PostgreSQL one (any number of machines).
    """
    engine = registry.engine
    path = _sqlite_path(registry.url)
    if path is not None:
        lock_path = path.with_name(f".{path.name}.{name}.lock")
        with _file_lock(lock_path, name, wait_seconds) as waited:
            yield waited
    elif engine.dialect.name == "postgresql":
        with _advisory_lock(engine, name, wait_seconds) as waited:
            yield waited
    else:
        raise ValueError(
            f"no cross-process lock for a {engine.dialect.name} registry: use SQLite or PostgreSQL"
        )
