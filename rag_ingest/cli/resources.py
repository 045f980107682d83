"""The code location's resources for the CLI, so every command reads exactly what the pipeline
writes: one wiring (``defs.resources.build_resources``), never locations re-derived by hand."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from rag_ingest.core.config import Settings


@contextlib.contextmanager
def resources(settings: Settings, *names: str) -> Iterator[Any]:
    """The code location's resources ``names`` for ``settings``, initialized as a run would.

    ``EnvVar``-valued fields (bucket, endpoint, registry URL, Qdrant URL) resolve from this
    process's environment, as they do in a run worker.
    """
    from rag_ingest.defs.resources import build_resources

    wired = build_resources(settings)
    with dg.build_resources({name: wired[name] for name in names}) as initialized:
        yield initialized


def when(timestamp: float | None) -> str:
    """A recorded time for people: UTC to the second, ``-`` when there is none."""
    if not timestamp:
        return "-"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
