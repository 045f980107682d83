"""Deployment settings: read from the environment once, validated, handed to every definition.

``Settings`` holds what shapes the definitions and decides results (prefixes, shards, run
sizes, chunking, the embedder's vector space, where data lives). Secrets (AWS, Qdrant API key,
Modal tokens) never pass through here: resources read them through ``dagster.EnvVar``.
Configuration mistakes are refused when the code location loads, with the variable named.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from rag_ingest.core.documents.limits import DocumentLimits
from rag_ingest.core.index.fingerprint import Fingerprint, physical_collection
from rag_ingest.core.planning.shards import ALLOWED_COUNTS, DEFAULT_SHARDS, Shards
from rag_ingest.core.registry.model import Scope
from rag_ingest.core.text.chunking import CHUNKER_VERSION, MAX_CHUNK_TOKENS, MIN_CHUNK_TOKENS
from rag_ingest.core.text.encoder import (
    DEFAULT_BACKEND,
    DIMENSION,
    MODEL_PACKAGE,
    MODEL_PACKAGE_VERSION,
    check_backend,
    vector_space,
)

DEFAULT_MONITOR_CRON = "0 6 * * *"  # daily, 06:00 UTC
ENGINES = ("edge", "local", "server")
_COLLECTION = re.compile(r"^[A-Za-z0-9_-]{1,200}$")


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int:
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


def _float(env: Mapping[str, str], name: str, default: float, minimum: float = 0.0) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a number, got {raw!r}") from exc
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be true or false, got {raw!r}")


def check_prefixes(prefixes: tuple[str, ...]) -> tuple[str, ...]:
    """Refuse prefixes that overlap: one object would belong to two sensors."""
    for a in prefixes:
        for b in prefixes:
            if a != b and a.startswith(b):
                raise ValueError(
                    f"RAG_S3_PREFIXES: {a!r} lies inside {b!r}; watch {b!r} alone (an object "
                    "must belong to exactly one prefix)"
                )
    return prefixes


@dataclass(frozen=True)
class Settings:
    bucket: str = ""
    prefixes: tuple[str, ...] = ("",)
    data_dir: Path = field(default_factory=lambda: Path("data").resolve())
    sensor_interval_seconds: int = 30
    max_new_per_tick: int = 200_000
    shards: int = DEFAULT_SHARDS
    documents_per_run: int = 2000
    shards_per_backfill_run: int = 16
    full_reconcile_hours: float = 24.0
    retry_backoff_seconds: float = 30.0
    embedder: str = "local"
    embed_backend: str = DEFAULT_BACKEND
    chunk_max_tokens: int = MAX_CHUNK_TOKENS
    chunk_overlap_tokens: int = 32
    qdrant_engine: str = "edge"
    qdrant_dir: str = ""
    collection: str = "documents"
    auto_promote: bool = True
    storage_base: str = ""
    document_timeout_seconds: float = 120.0
    document_memory_mb: int = 2048
    max_object_bytes: int = 64 * 1024 * 1024
    extract_workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    events_queue_url: str = ""
    events_interval_seconds: int = 10
    monitor_cron: str = DEFAULT_MONITOR_CRON

    def __post_init__(self) -> None:
        Shards(self.shards)  # raises on an unsupported count
        check_backend(self.embed_backend)
        check_prefixes(self.prefixes)
        if self.embedder not in ("local", "modal"):
            raise ValueError(f"RAG_EMBEDDER must be 'local' or 'modal', got {self.embedder!r}")
        if self.qdrant_engine not in ENGINES:
            raise ValueError(f"Qdrant engine must be one of {ENGINES}, got {self.qdrant_engine!r}")
        if not _COLLECTION.match(self.collection):
            raise ValueError(
                f"RAG_QDRANT_COLLECTION must be 1-200 of [A-Za-z0-9_-], got {self.collection!r}"
            )
        if not MIN_CHUNK_TOKENS <= self.chunk_max_tokens <= MAX_CHUNK_TOKENS:
            raise ValueError(
                f"RAG_CHUNK_MAX_TOKENS must be in {MIN_CHUNK_TOKENS}..{MAX_CHUNK_TOKENS}, got "
                f"{self.chunk_max_tokens}"
            )
        if not 0 <= self.chunk_overlap_tokens < self.chunk_max_tokens // 2:
            raise ValueError(
                "RAG_CHUNK_OVERLAP_TOKENS must be below half of RAG_CHUNK_MAX_TOKENS, got "
                f"{self.chunk_overlap_tokens}"
            )
        self._check_storage_outside_watched()

    def _check_storage_outside_watched(self) -> None:
        base = self.storage_base
        if not (self.bucket and base.startswith("s3://")):
            return
        bucket, _, prefix = base.removeprefix("s3://").partition("/")
        prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        if bucket != self.bucket:
            return
        for watched in self.prefixes:
            if prefix.startswith(watched) or watched.startswith(prefix):
                raise ValueError(
                    f"RAG_STORAGE_BASE {base!r} lies inside the watched s3://{self.bucket}/"
                    f"{watched}: the pipeline would ingest its own intermediate files. Use "
                    "another bucket or a prefix outside RAG_S3_PREFIXES"
                )

    @property
    def bucket_configured(self) -> bool:
        return bool(self.bucket)

    @property
    def scope(self) -> Scope:
        return Scope(self.bucket, self.prefixes)

    @property
    def shard_layout(self) -> Shards:
        return Shards(self.shards)

    @property
    def fingerprint(self) -> Fingerprint:
        """The vector space and chunking the pipeline writes now (Modal runs torch fp32)."""
        backend = "torch" if self.embedder == "modal" else self.embed_backend
        return Fingerprint(
            model=f"{MODEL_PACKAGE}=={MODEL_PACKAGE_VERSION}",
            vector_space=vector_space(backend),
            dimension=DIMENSION,
            max_tokens=self.chunk_max_tokens,
            overlap_tokens=self.chunk_overlap_tokens,
            chunker_version=CHUNKER_VERSION,
        )

    @property
    def physical_collection(self) -> str:
        return physical_collection(self.collection, self.fingerprint)

    @property
    def qdrant_path(self) -> Path:
        """The embedded engine's folder (one per engine: their formats differ)."""
        if self.qdrant_dir:
            return Path(self.qdrant_dir).resolve()
        return self.data_dir / ("qdrant-edge" if self.qdrant_engine == "edge" else "qdrant")

    @property
    def document_limits(self) -> DocumentLimits:
        """Per-document bounds of fetching and extraction (see ``core.limits``)."""
        return DocumentLimits(
            max_object_bytes=self.max_object_bytes,
            max_decompressed_bytes=max(
                self.max_object_bytes, DocumentLimits.max_decompressed_bytes
            ),
            max_text_chars=max(self.max_object_bytes, DocumentLimits.max_text_chars),
            timeout_seconds=self.document_timeout_seconds,
            memory_bytes=self.document_memory_mb * 1024 * 1024,
        )

    @property
    def intermediate_base(self) -> str:
        return self.storage_base or str(self.data_dir / "storage")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        raw_prefixes = env.get("RAG_S3_PREFIXES", "")
        prefixes = tuple(dict.fromkeys(p.strip() for p in raw_prefixes.split(",") if p.strip()))
        queue = env.get("RAG_S3_EVENTS_QUEUE_URL", "").strip()
        engine = (
            "server"
            if env.get("RAG_QDRANT_URL", "").strip()
            else (env.get("RAG_QDRANT_EMBEDDED", "").strip().lower() or "edge")
        )
        shards = _int(env, "RAG_SHARDS", DEFAULT_SHARDS)
        if shards not in ALLOWED_COUNTS:
            raise ValueError(f"RAG_SHARDS must be one of {ALLOWED_COUNTS}, got {shards}")
        return cls(
            bucket=env.get("RAG_S3_BUCKET", "").strip(),
            prefixes=prefixes or ("",),
            data_dir=Path(env.get("RAG_DATA_DIR", "data")).resolve(),
            # With an event queue the listing is only the safety net: hourly by default.
            sensor_interval_seconds=_int(env, "RAG_SENSOR_INTERVAL_SECONDS", 3600 if queue else 30),
            max_new_per_tick=_int(env, "RAG_SENSOR_MAX_NEW_PER_TICK", 200_000),
            shards=shards,
            documents_per_run=_int(env, "RAG_DOCUMENTS_PER_RUN", 2000),
            shards_per_backfill_run=_int(env, "RAG_SHARDS_PER_BACKFILL_RUN", 16),
            full_reconcile_hours=_float(env, "RAG_FULL_RECONCILE_HOURS", 24.0),
            retry_backoff_seconds=_float(env, "RAG_RETRY_BACKOFF_SECONDS", 30.0, 1.0),
            embedder=env.get("RAG_EMBEDDER", "local").strip().lower() or "local",
            embed_backend=env.get("RAG_EMBED_BACKEND", "").strip().lower() or DEFAULT_BACKEND,
            chunk_max_tokens=_int(env, "RAG_CHUNK_MAX_TOKENS", MAX_CHUNK_TOKENS),
            chunk_overlap_tokens=_int(env, "RAG_CHUNK_OVERLAP_TOKENS", 32, minimum=0),
            qdrant_engine=engine,
            qdrant_dir=env.get("RAG_QDRANT_PATH", "").strip(),
            collection=env.get("RAG_QDRANT_COLLECTION", "").strip() or "documents",
            auto_promote=_bool(env, "RAG_AUTO_PROMOTE", True),
            storage_base=env.get("RAG_STORAGE_BASE", "").strip(),
            document_timeout_seconds=_float(env, "RAG_DOCUMENT_TIMEOUT_SECONDS", 120.0, 1.0),
            document_memory_mb=_int(env, "RAG_DOCUMENT_MEMORY_MB", 2048, minimum=256),
            max_object_bytes=_int(env, "RAG_MAX_OBJECT_BYTES", 64 * 1024 * 1024),
            extract_workers=_int(env, "RAG_EXTRACT_WORKERS", os.cpu_count() or 1),
            events_queue_url=queue,
            events_interval_seconds=_int(env, "RAG_EVENTS_INTERVAL_SECONDS", 10),
            monitor_cron=env.get("RAG_MONITOR_CRON", "").strip() or DEFAULT_MONITOR_CRON,
        )


@functools.cache
def load_settings() -> Settings:
    """The process's settings, read from the environment once."""
    return Settings.from_env()
