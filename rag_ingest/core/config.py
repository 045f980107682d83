"""Deployment settings read from the environment once, at code-location load time.

Only structural settings live here (how many sensors, their interval, run sizes, default
paths). Values that resources use at run time, secrets above all, are wired with
``dagster.EnvVar`` in ``definitions.py`` so they never land in run config or the UI.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from rag_ingest.core.encoder import DEFAULT_BACKEND, check_backend

DEFAULT_PARTITIONS_PER_RUN = 200
DEFAULT_MAX_NEW_PER_TICK = 5000
DEFAULT_SENSOR_INTERVAL = 30
DEFAULT_MONITOR_CRON = "0 6 * * *"  # daily, 06:00 UTC


def _int(env: dict[str, str], name: str, default: int, minimum: int = 1) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return value


@dataclass(frozen=True)
class Settings:
    bucket_configured: bool
    prefixes: tuple[str, ...]
    data_dir: Path
    sensor_interval_seconds: int
    max_new_per_tick: int
    partitions_per_run: int
    embedder: str
    monitor_cron: str = DEFAULT_MONITOR_CRON
    embed_backend: str = DEFAULT_BACKEND

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        raw_prefixes = env.get("RAG_S3_PREFIXES", "")
        prefixes = tuple(dict.fromkeys(p.strip() for p in raw_prefixes.split(",") if p.strip()))
        embedder = env.get("RAG_EMBEDDER", "local").strip().lower() or "local"
        if embedder not in ("local", "modal"):
            raise ValueError(f"RAG_EMBEDDER must be 'local' or 'modal', got {embedder!r}")
        return cls(
            bucket_configured=bool(env.get("RAG_S3_BUCKET", "").strip()),
            prefixes=prefixes or ("",),
            data_dir=Path(env.get("RAG_DATA_DIR", "data")).resolve(),
            sensor_interval_seconds=_int(
                env, "RAG_SENSOR_INTERVAL_SECONDS", DEFAULT_SENSOR_INTERVAL
            ),
            max_new_per_tick=_int(env, "RAG_SENSOR_MAX_NEW_PER_TICK", DEFAULT_MAX_NEW_PER_TICK),
            partitions_per_run=_int(env, "RAG_PARTITIONS_PER_RUN", DEFAULT_PARTITIONS_PER_RUN),
            embedder=embedder,
            monitor_cron=env.get("RAG_MONITOR_CRON", "").strip() or DEFAULT_MONITOR_CRON,
            embed_backend=check_backend(
                env.get("RAG_EMBED_BACKEND", "").strip().lower() or DEFAULT_BACKEND
            ),
        )
