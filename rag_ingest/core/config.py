"""Deployment settings: read from the environment once, validated, handed to every definition.

``Settings`` holds what shapes the definitions and decides results (prefixes, shards, run
sizes, chunking, the embedder's vector space, where data lives). Secrets (AWS, Qdrant API key,
Modal tokens) never pass through here: resources read them through ``dagster.EnvVar``.
Configuration mistakes are refused when the code location loads, with the variable named.

Parsing is pydantic-settings' (``BaseSettings``), not hand-written. This module stays free of
Dagster so that the CLI, the benchmarks and ``core`` read the same settings without it.

Variables: each field is read from its name upper-cased with the ``RAG_`` prefix
(``shards`` ← ``RAG_SHARDS``, ``chunk_max_tokens`` ← ``RAG_CHUNK_MAX_TOKENS``), except:

- ``bucket`` ← ``RAG_S3_BUCKET``; ``prefixes`` ← ``RAG_S3_PREFIXES`` (comma-separated; blanks
  and repeats dropped; none means the whole bucket); ``events_queue_url`` ←
  ``RAG_S3_EVENTS_QUEUE_URL``;
- ``max_new_per_tick`` ← ``RAG_SENSOR_MAX_NEW_PER_TICK``;
- ``listing_keys_per_tick`` / ``listing_seconds_per_tick`` (``RAG_LISTING_KEYS_PER_TICK``,
  ``RAG_LISTING_SECONDS_PER_TICK``) bound one listing tick; ``delete_guard_percent`` /
  ``delete_guard_min_documents`` (``RAG_DELETE_GUARD_PERCENT``,
  ``RAG_DELETE_GUARD_MIN_DOCUMENTS``) hold a pass that would delete too much;
- ``collection`` ← ``RAG_QDRANT_COLLECTION``; ``qdrant_dir`` ← ``RAG_QDRANT_PATH``;
  ``qdrant_engine`` ← ``RAG_QDRANT_EMBEDDED`` (``edge`` or ``local``), and ``server`` whenever
  ``RAG_QDRANT_URL`` is set (the URL itself belongs to the ``vectors`` resource);
- ``sparse`` ← ``RAG_SPARSE`` (true: every point also gets a BM25 sparse vector) and
  ``sparse_vector_name`` ← ``RAG_SPARSE_VECTOR_NAME`` (LangChain's ``langchain-sparse`` unless
  set; the dense vector is the unnamed one, so the sparse one must have a name);
  ``hybrid_sparse_weight`` ← ``RAG_HYBRID_SPARSE_WEIGHT`` (hybrid queries' RRF weight of BM25
  against the dense side's 1; 1: plain RRF, as LangChain's hybrid mode).

Values are stripped and a blank one counts as unset, except the ``RAG_EMBED_*_PROMPT``s (kept
verbatim; set empty: no prompt). Unset, the chunk budget and overlap follow ``RAG_EMBED_MODEL``'s
limit. With ``RAG_S3_EVENTS_QUEUE_URL`` set,
``sensor_interval_seconds`` defaults to 3600 (the listing is only the safety net), else 30.

Only :meth:`Settings.from_env` (and :func:`load_settings`) read the environment:
``Settings(...)`` built with keywords sees its arguments and the defaults, nothing else, so a
test's settings never pick up the shell's. ``from_env`` and :meth:`Settings.replace` refuse a
bad value with a :class:`SettingsError` (a ``ValueError``) on one line naming the variable;
``Settings(...)`` raises pydantic's ``ValidationError`` (also a ``ValueError``), same words.
Instances are frozen and hashable.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from rag_ingest.core.documents.limits import DocumentLimits
from rag_ingest.core.index.fingerprint import Fingerprint, physical_collection, pipeline_fingerprint
from rag_ingest.core.planning.listing import DeleteGuard
from rag_ingest.core.planning.shards import ALLOWED_COUNTS, DEFAULT_SHARDS, Shards
from rag_ingest.core.refusals import SettingsError as SettingsError
from rag_ingest.core.refusals import refusing
from rag_ingest.core.registry.model import Scope
from rag_ingest.core.text.chunking import CHUNKER_VERSION, DEFAULT_OVERLAP, chunk_shape
from rag_ingest.core.text.encoder import DEFAULT_BACKEND, check_backend, vector_space
from rag_ingest.core.text.export import check_exportable
from rag_ingest.core.text.model import DEFAULT_MODEL, ModelSpec, resolve_model
from rag_ingest.core.vectorstore import Engine
from rag_ingest.core.vectorstore.base import DEFAULT_SPARSE_VECTOR, DENSE_VECTOR

DEFAULT_MONITOR_CRON = "0 6 * * *"  # daily, 06:00 UTC
PREFIX = "RAG_"
_VERBATIM = frozenset({"RAG_EMBED_QUERY_PROMPT", "RAG_EMBED_DOCUMENT_PROMPT"})  # "query: "
_FOLLOWING = ("chunk_max_tokens", "chunk_overlap_tokens")
_COLLECTION = re.compile(r"[A-Za-z0-9_-]{1,200}")
_VECTOR_NAME = re.compile(r"[A-Za-z0-9_.-]{1,200}")


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


# The mapping Settings.from_env reads while it builds; None: keywords and defaults only.
_ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("rag_environ", default=None)


class _Environ(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping instead of ``os.environ``."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {k if self.case_sensitive else k.lower(): v for k, v in self._environ.items()}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=PREFIX,
        frozen=True,
        extra="forbid",
        validate_by_name=True,  # keywords are the fields' names, the aliases are variables
        validate_by_alias=True,
    )

    bucket: str = Field(default="", validation_alias="RAG_S3_BUCKET")
    prefixes: Annotated[tuple[str, ...], NoDecode] = Field(
        default=("",), validation_alias="RAG_S3_PREFIXES"
    )
    data_dir: Path = Field(default_factory=lambda: Path("data").resolve())
    sensor_interval_seconds: int = Field(default=30, ge=1)
    max_new_per_tick: int = Field(
        default=200_000, ge=1, validation_alias="RAG_SENSOR_MAX_NEW_PER_TICK"
    )
    # One listing tick's share of a prefix (a pass spans ticks): well inside Dagster's 60-s
    # sensor timeout, the registry writes and run requests included.
    listing_keys_per_tick: int = Field(default=50_000, ge=1)
    listing_seconds_per_tick: float = Field(default=20.0, gt=0.0)
    # The delete guard: a listing pass that would mark more than this % of a prefix's
    # documents deleted (and at least delete_guard_min_documents) is held for an operator.
    delete_guard_percent: float = Field(default=20.0, ge=0.0, le=100.0)
    delete_guard_min_documents: int = Field(default=100, ge=1)
    shards: int = DEFAULT_SHARDS
    documents_per_run: int = Field(default=2000, ge=1)
    # A run's size in bytes too: a range of a few huge objects is as much work as thousands of
    # notes (one 64 MiB text is ~150,000 chunks). A shard over it is a run of its own.
    bytes_per_run: int = Field(default=256 * 1024 * 1024, ge=1)
    # Extraction stops taking documents after this long; the rest stay pending for the next
    # run, so a run of slow documents ends well inside run monitoring's max_runtime_seconds.
    run_extract_budget_seconds: float = Field(default=3600.0, gt=0.0)
    # Runs sized by cost: a run bridges idle shards while their bookkeeping costs less than
    # starting another run (process, imports, code location, model). Defaults: bench/RESULTS.md
    # ("Run creation with shards"), docs/architecture.md.
    run_fixed_seconds: float = Field(default=6.0, gt=0.0)
    idle_shard_seconds: float = Field(default=0.05, gt=0.0)
    shards_per_backfill_run: int = Field(default=16, ge=1)
    full_reconcile_hours: float = Field(default=24.0, ge=0.0)
    retry_backoff_seconds: float = Field(default=30.0, ge=1.0)
    embedder: Literal["local", "modal"] = "local"
    embed_backend: str = DEFAULT_BACKEND
    embed_model: str = DEFAULT_MODEL  # a hub name (in the local cache) or a folder
    embed_model_revision: str = ""
    embed_query_prompt: str | None = None  # None: the model's own prompts; "": none
    embed_document_prompt: str | None = None
    # Chunk vectors kept for re-use in the registry database (core.registry.embedding_cache);
    # 0: no cache.
    embed_cache_max_entries: int = Field(default=1_000_000, ge=0)
    chunk_max_tokens: int = 0  # unset: the model's limit, filled in by _together
    chunk_overlap_tokens: int = Field(default=DEFAULT_OVERLAP, ge=0)  # below half the budget
    qdrant_engine: Engine = Field(default="edge", validation_alias="RAG_QDRANT_EMBEDDED")
    qdrant_dir: str = Field(default="", validation_alias="RAG_QDRANT_PATH")
    collection: str = Field(default="documents", validation_alias="RAG_QDRANT_COLLECTION")
    auto_promote: bool = True
    sparse: bool = Field(default=True, validation_alias="RAG_SPARSE")
    sparse_vector_name: str = Field(
        default=DEFAULT_SPARSE_VECTOR, validation_alias="RAG_SPARSE_VECTOR_NAME"
    )
    # Queries only (not the fingerprint): BM25's weight in hybrid RRF against the dense side's 1.
    hybrid_sparse_weight: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    storage_base: str = ""
    document_timeout_seconds: float = Field(default=120.0, ge=1.0)
    document_memory_mb: int = Field(default=2048, ge=256)
    max_object_bytes: int = Field(default=64 * 1024 * 1024, ge=1)
    extract_workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    events_queue_url: str = Field(default="", validation_alias="RAG_S3_EVENTS_QUEUE_URL")
    events_interval_seconds: int = Field(default=10, ge=1)
    monitor_cron: str = DEFAULT_MONITOR_CRON

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        environ = _ENVIRON.get()
        if environ is None:
            return (init_settings,)
        return init_settings, _Environ(settings_cls, environ)

    @field_validator("prefixes", mode="before")
    @classmethod
    def _split_prefixes(cls, value: Any) -> Any:
        if isinstance(value, str):  # from the environment: "docs/, reports/"
            return tuple(dict.fromkeys(p.strip() for p in value.split(",") if p.strip())) or ("",)
        return value

    @field_validator("embedder", "embed_backend", "qdrant_engine", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("data_dir")
    @classmethod
    def _resolve(cls, value: Path) -> Path:
        return value.resolve()

    @field_validator("prefixes")
    @classmethod
    def _prefixes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return check_prefixes(value)

    @field_validator("shards")
    @classmethod
    def _shards(cls, value: int) -> int:
        if value not in ALLOWED_COUNTS:
            raise ValueError(f"RAG_SHARDS must be one of {ALLOWED_COUNTS}, got {value}")
        return value

    @field_validator("embed_backend")
    @classmethod
    def _backend(cls, value: str) -> str:
        try:
            return check_backend(value)
        except ValueError as exc:
            raise ValueError(f"RAG_EMBED_BACKEND: {exc}") from None

    @field_validator("collection")
    @classmethod
    def _collection(cls, value: str) -> str:
        if not _COLLECTION.fullmatch(value):
            raise ValueError(f"RAG_QDRANT_COLLECTION must be 1-200 of [A-Za-z0-9_-], got {value!r}")
        return value

    @field_validator("sparse_vector_name")
    @classmethod
    def _sparse_vector_name(cls, value: str) -> str:
        if value == DENSE_VECTOR:
            raise ValueError(
                "RAG_SPARSE_VECTOR_NAME must not be empty: the dense vector is the unnamed one "
                "and the sparse vector needs a name of its own"
            )
        if not _VECTOR_NAME.fullmatch(value):
            raise ValueError(
                f"RAG_SPARSE_VECTOR_NAME must be 1-200 of [A-Za-z0-9_.-], got {value!r}"
            )
        return value

    @model_validator(mode="after")
    def _together(self) -> Settings:
        spec = self.model_spec  # refuses an unusable RAG_EMBED_MODEL, then an unfit backend
        check_exportable(spec, "torch" if self.embedder == "modal" else self.embed_backend)
        given = [getattr(self, k) if k in self.model_fields_set else None for k in _FOLLOWING]
        for name, value in zip(_FOLLOWING, chunk_shape(spec, *given), strict=True):
            object.__setattr__(self, name, value)  # frozen: set while validating
        if not self.chunk_overlap_tokens < self.chunk_max_tokens // 2:
            raise ValueError(
                "RAG_CHUNK_OVERLAP_TOKENS must be below half of RAG_CHUNK_MAX_TOKENS, got "
                f"{self.chunk_overlap_tokens}"
            )
        self._check_storage_outside_watched()
        return self

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
    def bridge_shards(self) -> int:
        """Idle shards a sensor run may bridge (and reach an edge of the key space over)."""
        return int(self.run_fixed_seconds // self.idle_shard_seconds)

    @property
    def bucket_configured(self) -> bool:
        return bool(self.bucket)

    @property
    def delete_guard(self) -> DeleteGuard:
        return DeleteGuard(self.delete_guard_percent, self.delete_guard_min_documents)

    @property
    def scope(self) -> Scope:
        return Scope(self.bucket, self.prefixes)

    @property
    def shard_layout(self) -> Shards:
        return Shards(self.shards)

    @property
    def model_spec(self) -> ModelSpec:
        """The embedding model, resolved offline (cached per process)."""
        prompts = (self.embed_query_prompt, self.embed_document_prompt)
        return resolve_model(self.embed_model, self.embed_model_revision, *prompts)

    @property
    def fingerprint(self) -> Fingerprint:
        """The model, vector space and chunking the pipeline writes now (Modal: torch fp32)."""
        space = vector_space("torch" if self.embedder == "modal" else self.embed_backend)
        chunking = (self.chunk_max_tokens, self.chunk_overlap_tokens, CHUNKER_VERSION)
        sparse = self.sparse_vector_name if self.sparse else ""
        return pipeline_fingerprint(self.model_spec, space, *chunking, sparse_vector=sparse)

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

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes``, validated again; a budget that followed the model still does."""
        kept = {
            k: v for k, v in dict(self).items() if k in self.model_fields_set or k not in _FOLLOWING
        }
        return refusing(lambda: type(self)(**{**kept, **changes}), env_name)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``environ`` (default ``os.environ``): the ``RAG_`` variables only."""
        env = {
            k: v if k in _VERBATIM else v.strip()
            for k, v in (os.environ if environ is None else environ).items()
            if k.startswith(PREFIX) and (v.strip() or k in _VERBATIM)
        }
        if env.get("RAG_QDRANT_URL"):
            env["RAG_QDRANT_EMBEDDED"] = "server"
        if env.get("RAG_S3_EVENTS_QUEUE_URL"):
            env.setdefault("RAG_SENSOR_INTERVAL_SECONDS", "3600")
        token = _ENVIRON.set(env)
        try:
            return refusing(cls, env_name)
        finally:
            _ENVIRON.reset(token)


def env_name(field: str) -> str:
    """The environment variable of a field (or of an alias, which is one already)."""
    info = Settings.model_fields.get(field)
    alias = info.validation_alias if info else None
    if isinstance(alias, str):
        return alias
    return field if field.startswith(PREFIX) else PREFIX + field.upper()


@functools.cache
def load_settings() -> Settings:
    """The process's settings, read from the environment once."""
    return Settings.from_env()
