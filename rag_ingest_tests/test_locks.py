"""Registry locks: one holder at a time across processes, released when the holder dies.

These replace Dagster's op-level pools, whose slot claim can leave a step waiting forever with a
free slot (see ``core/registry/lock.py``). Each test runs the holder in a separate process and
kills it with SIGKILL, the way a run worker dies on OOM or node loss.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rag_ingest.core.registry import Registry
from rag_ingest.core.registry.lock import LockTimeout, exclusive
from rag_ingest.testing.postgres import PgServer

HOLDER = """
import sys, time
from rag_ingest.core.registry import Registry
from rag_ingest.core.registry.lock import exclusive
registry = Registry(sys.argv[1])
with exclusive(registry, "qdrant", 5):
    print("held", flush=True)
    time.sleep(600)
"""


def _start_holder(url: str) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, url],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "held"
    return holder


def _check_lock_follows_its_holder(url: str) -> None:
    registry = Registry(url)
    holder = _start_holder(url)
    try:
        started = time.monotonic()
        with pytest.raises(LockTimeout, match="'qdrant'"), exclusive(registry, "qdrant", 1.0):
            pass
        assert time.monotonic() - started >= 1.0
        # Another name is another lock.
        with exclusive(registry, "embedder", 1.0) as waited:
            assert waited < 1.0
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        # The killed holder's lock is free at once: no slot is left assigned to a dead process.
        with exclusive(registry, "qdrant", 10.0) as waited:
            assert waited < 10.0
            # And it is exclusive again while we hold it.
            second = subprocess.run(
                [sys.executable, "-c", HOLDER.replace('"qdrant", 5', '"qdrant", 0.5'), url],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert second.returncode != 0 and "LockTimeout" in second.stderr
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        registry.close()


def test_a_sqlite_registry_lock_is_exclusive_and_freed_by_a_killed_holder(tmp_path: Path) -> None:
    _check_lock_follows_its_holder(f"sqlite:///{tmp_path / 'registry.sqlite'}")


def test_a_postgres_registry_lock_is_exclusive_and_freed_by_a_killed_holder(
    registry_db: PgServer,
) -> None:
    _check_lock_follows_its_holder(registry_db.url)
