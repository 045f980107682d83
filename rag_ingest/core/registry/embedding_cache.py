"""A chunk-level embedding cache in the registry database, shared by runs and workers.

An entry maps ``sha256(identity, text)`` to the float32 vector the model gave that text, where
the identity (``core.index.fingerprint.embedding_identity``) is everything besides the text
that decides the vector: model and weights, runtime and precision, dimension, document prompt.
A vector of another model or prompt therefore sits under another key and is never found.

Each row carries a checksum of its key, dimension and bytes: a truncated or altered row reads as
a miss (and is deleted, so the fresh vector can take its place), never as a wrong vector.

The cache is an optimisation only: any database error (table missing, database locked or
read-only, connection lost) turns it off for the rest of the run with one warning, and every
text is then embedded as if the cache did not exist.
"""

from __future__ import annotations

import hashlib
import logging
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.dialects import postgresql, sqlite

from rag_ingest.core.registry.schema import embedding_cache

logger = logging.getLogger(__name__)
# Keys per IN (...) query or INSERT statement: well under SQLite's bound-parameter limit.
LOOKUP_BATCH = 500
# Rows deleted per eviction statement, so an eviction never holds a long write lock.
EVICT_BATCH = 5000


def identity_digest(identity: str) -> str:
    return hashlib.sha256(identity.encode()).hexdigest()


def cache_key(identity: str, text: str) -> str:
    """The key of ``text`` embedded under ``identity``; the identity's length is hashed first
    so no identity/text split of the same bytes can collide."""
    raw = identity.encode()
    digest = hashlib.sha256(struct.pack("<Q", len(raw)))
    digest.update(raw)
    digest.update(text.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def checksum(key: str, dimension: int, data: bytes) -> str:
    digest = hashlib.sha256(key.encode())
    digest.update(struct.pack("<I", dimension))
    digest.update(data)
    return digest.hexdigest()


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    stored: int = 0
    corrupt: int = 0
    evictions: int = 0


class EmbeddingCache:
    """Vectors of one identity in the ``embedding_cache`` table of ``engine``'s database.

    ``max_entries`` bounds the table (all identities together); 0 turns the cache off.
    ``warn`` receives the one message logged when the cache turns itself off.
    """

    def __init__(
        self,
        engine: sa.Engine,
        identity: str,
        dimension: int,
        max_entries: int,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.engine = engine
        self.identity = identity
        self.identity_id = identity_digest(identity)
        self.dimension = dimension
        self.max_entries = max_entries
        self.enabled = max_entries > 0
        self.stats = CacheStats()
        self._warn = warn or logger.warning

    def _disable(self, what: str, error: Exception) -> None:
        self.enabled = False
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        self._warn(
            f"embedding cache off for the rest of this run ({what} failed: {first}); "
            "every chunk is embedded"
        )

    def keys(self, texts: Sequence[str]) -> list[str]:
        return [cache_key(self.identity, t) for t in texts]

    def lookup(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """The valid cached vectors among ``keys``; counts hits and misses per key given."""
        found: dict[str, np.ndarray] = {}
        if self.enabled and keys:
            try:
                found = self._lookup(sorted(set(keys)))
            except exc.SQLAlchemyError as error:
                self._disable("lookup", error)
                found = {}
        hits = sum(1 for k in keys if k in found)
        self.stats.hits += hits
        self.stats.misses += len(keys) - hits
        return found

    def _lookup(self, unique: list[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        corrupt: list[str] = []
        table = embedding_cache
        columns = (table.c.key, table.c.dimension, table.c.checksum, table.c.vector)
        for start in range(0, len(unique), LOOKUP_BATCH):
            batch = unique[start : start + LOOKUP_BATCH]
            with self.engine.connect() as conn:
                rows = conn.execute(
                    sa.select(*columns).where(
                        table.c.key.in_(batch), table.c.identity == self.identity_id
                    )
                ).all()
            for key, dimension, stored_sum, data in rows:
                vector = self._decode(key, dimension, stored_sum, data)
                if vector is None:
                    corrupt.append(key)
                else:
                    found[key] = vector
        now = time.time()
        with self.engine.begin() as conn:
            hit = sorted(found)
            for start in range(0, len(hit), LOOKUP_BATCH):
                batch = hit[start : start + LOOKUP_BATCH]
                conn.execute(table.update().where(table.c.key.in_(batch)).values(last_used=now))
            if corrupt:
                # Gone, so this run's fresh vector can be stored under the key.
                conn.execute(table.delete().where(table.c.key.in_(corrupt)))
        self.stats.corrupt += len(corrupt)
        return found

    def _decode(self, key: str, dimension: int, stored_sum: str, data: object) -> np.ndarray | None:
        if dimension != self.dimension or not isinstance(data, bytes | bytearray | memoryview):
            return None
        raw = bytes(data)
        if len(raw) != 4 * dimension or checksum(key, dimension, raw) != stored_sum:
            return None
        return np.frombuffer(raw, dtype="<f4").astype(np.float32)

    def store(
        self, keys: Sequence[str], vectors: np.ndarray, norm_tolerance: float | None = None
    ) -> None:
        """Add the vectors of ``keys`` (rows of ``vectors``); keys already present are kept.

        Rows that are not finite, or (with ``norm_tolerance``) not unit length, are left out:
        the run's blocking check refuses them, and cached they would be refused again in every
        later run, however healthy its embedder.
        """
        if not self.enabled or not len(keys):
            return
        norms = np.linalg.norm(vectors.astype(np.float64), axis=1)
        good = np.isfinite(norms)
        if norm_tolerance is not None:
            good &= np.abs(norms - 1.0) <= norm_tolerance
        now = time.time()
        rows: dict[str, dict[str, object]] = {}
        for key, vector, ok in zip(keys, vectors, good, strict=True):
            if key in rows or not ok:
                continue
            data = np.ascontiguousarray(vector, dtype="<f4").tobytes()
            rows[key] = {
                "key": key,
                "identity": self.identity_id,
                "dimension": self.dimension,
                "vector": data,
                "checksum": checksum(key, self.dimension, data),
                "last_used": now,
                "created": now,
            }
        values = list(rows.values())
        try:
            for start in range(0, len(values), LOOKUP_BATCH):
                self._insert(values[start : start + LOOKUP_BATCH])
        except exc.SQLAlchemyError as error:
            self._disable("store", error)
            return
        self.stats.stored += len(values)

    def _insert(self, values: list[dict[str, object]]) -> None:
        dialect = self.engine.dialect.name
        with self.engine.begin() as conn:
            if dialect == "sqlite":
                conn.execute(sqlite.insert(embedding_cache).on_conflict_do_nothing(), values)
            elif dialect == "postgresql":
                conn.execute(postgresql.insert(embedding_cache).on_conflict_do_nothing(), values)
            else:
                present = set(
                    conn.execute(
                        sa.select(embedding_cache.c.key).where(
                            embedding_cache.c.key.in_([v["key"] for v in values])
                        )
                    ).scalars()
                )
                fresh = [v for v in values if v["key"] not in present]
                if fresh:
                    conn.execute(embedding_cache.insert(), fresh)

    def evict(self) -> int:
        """Delete least recently used entries beyond ``max_entries``; returns how many."""
        if not self.enabled:
            return 0
        evicted = 0
        try:
            with self.engine.connect() as conn:
                count = conn.execute(sa.select(sa.func.count()).select_from(embedding_cache))
                excess = int(count.scalar_one()) - self.max_entries
            while excess > 0:
                batch = min(excess, EVICT_BATCH)
                oldest = (
                    sa.select(embedding_cache.c.key)
                    .order_by(embedding_cache.c.last_used, embedding_cache.c.key)
                    .limit(batch)
                    .scalar_subquery()
                )
                with self.engine.begin() as conn:
                    deleted = conn.execute(
                        embedding_cache.delete().where(embedding_cache.c.key.in_(oldest))
                    ).rowcount
                if deleted <= 0:
                    break
                evicted += deleted
                excess -= deleted
        except exc.SQLAlchemyError as error:
            self._disable("eviction", error)
        self.stats.evictions += evicted
        return evicted


@dataclass
class WindowPlan:
    """A window of texts split into cached vectors and the distinct texts left to embed."""

    keys: list[str]
    found: dict[str, np.ndarray]
    miss_keys: list[str]
    miss_texts: list[str]

    def text_spans(self, miss_spans: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
        """The window's text spans whose vectors depended on the failed ``miss_spans`` (indices
        into :attr:`miss_texts`), so a failure names the right documents."""
        failed = {self.miss_keys[i] for a, b in miss_spans for i in range(a, b)}
        return [(i, i + 1) for i, key in enumerate(self.keys) if key in failed]

    def assemble(self, embedded: np.ndarray, dimension: int) -> np.ndarray:
        """Every text's vector, in window order: cached ones and rows of ``embedded`` (the
        vectors of :attr:`miss_texts`)."""
        fresh = dict(zip(self.miss_keys, embedded, strict=True))
        out = np.empty((len(self.keys), dimension), dtype=np.float32)
        for i, key in enumerate(self.keys):
            out[i] = self.found[key] if key in self.found else fresh[key]
        return out


def plan_window(cache: EmbeddingCache, texts: Sequence[str]) -> WindowPlan:
    """Look ``texts`` up; a text repeated in the window is embedded once."""
    keys = cache.keys(texts)
    found = cache.lookup(keys)
    miss: dict[str, str] = {}
    for key, text in zip(keys, texts, strict=True):
        if key not in found and key not in miss:
            miss[key] = text
    return WindowPlan(keys, found, list(miss), list(miss.values()))


def cache_report(cache: EmbeddingCache, spent: dict[str, float]) -> dict[str, float | int | bool]:
    """The run's cache figures for its metadata. What the hits saved is estimated from this
    run's own cost per embedded text (``spent``: ``embedded`` texts took ``seconds``,
    ``gpu`` seconds and ``cost`` dollars); a run that embedded nothing measured no cost, and
    says so (``cache_savings_measured``)."""
    stats, embedded = cache.stats, int(spent["embedded"])
    per_text = 1.0 / embedded if embedded else 0.0
    return {
        "cache_enabled": cache.enabled,
        "cache_hits": stats.hits,
        "cache_misses": stats.misses,
        "cache_corrupt": stats.corrupt,
        "cache_stored": stats.stored,
        "cache_evictions": stats.evictions,
        "texts_embedded": embedded,
        "cache_savings_measured": bool(embedded),
        "cache_embed_seconds_saved": round(stats.hits * spent["seconds"] * per_text, 3),
        "cache_gpu_seconds_saved": round(stats.hits * spent["gpu"] * per_text, 3),
        "cache_usd_saved": round(stats.hits * spent["cost"] * per_text, 8),
    }
