"""Reading the registry: what S3 holds, what needs work, documents and their history."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from rag_ingest.core.keys import document_id, storable_key
from rag_ingest.core.registry.model import (
    GONE_STATUSES,
    WORK_STATUSES,
    DocumentRecord,
    HistoryEntry,
    Known,
    Scope,
    ShardWork,
)
from rag_ingest.core.registry.schema import counters, documents, events

_CHUNK = 500


def default_url(data_dir: str | Path) -> str:
    return f"sqlite:///{Path(data_dir).resolve() / 'registry.sqlite'}"


def _prefix_condition(prefix: str) -> sa.ColumnElement[bool]:
    # substr equality, not LIKE: LIKE is case-insensitive in SQLite ("docs/" would match
    # "Docs/a.txt") and treats % and _ as patterns.
    if not prefix:
        return sa.true()
    return sa.func.substr(documents.c.key, 1, len(prefix)) == prefix


def scope_condition(scope: Scope) -> sa.ColumnElement[bool]:
    return sa.and_(
        documents.c.bucket == scope.bucket,
        sa.or_(*(_prefix_condition(p) for p in scope.prefixes)),
    )


def work_condition(target_id: int | None, due: float | None = None) -> sa.ColumnElement[bool]:
    """Documents whose state in ``target_id`` is not final for the version they hold.

    A document waiting to retry a transient failure counts once its retry is due at ``due``
    (a time: what to run now), or as soon as it waits (``due=None``: is the target complete?).
    """
    if target_id is None:
        return documents.c.status != "removed"
    retry = documents.c.retry_at.is_not(None) if due is None else documents.c.retry_at <= due
    return sa.and_(
        documents.c.status != "removed",
        sa.or_(
            documents.c.status.in_(WORK_STATUSES),
            documents.c.target_id.is_(None),
            documents.c.target_id != target_id,
            retry,
        ),
    )


_KNOWN_COLUMNS = (
    documents.c.key,
    documents.c.doc_id,
    documents.c.etag,
    documents.c.status,
    documents.c.last_modified,
    documents.c.seq,
)
# How a registry key escapes NUL (``keys.storable_key``): such rows sort by their real key.
_ESCAPED_NUL = "\\x00"


def _known(row: Any) -> Known:
    return Known(row.doc_id, row.etag, row.status, row.last_modified, int(row.seq))


def _real_key(bucket: str, key: str, doc_id: str) -> str:
    """The S3 key of a registry row (its stored key with NUL escaped, see storable_key)."""
    if _ESCAPED_NUL in key:
        real = key.replace(_ESCAPED_NUL, "\0")
        if document_id(bucket, real) == doc_id:
            return real
    return key


def _in_range(key: str, after: str | None, last: str | None) -> bool:
    return (after is None or key > after) and (last is None or key <= last)


class ReadsMixin:
    engine: sa.Engine

    # --- what S3 holds (sensors) -------------------------------------------------------------

    def known(self, bucket: str, prefix: str) -> dict[str, Known]:
        """Registered objects under a prefix (case-sensitive, literal), by key."""
        stmt = sa.select(*_KNOWN_COLUMNS).where(
            documents.c.bucket == bucket, _prefix_condition(prefix)
        )
        with self.engine.connect() as conn:
            return {
                row.key: _known(row) for row in conn.execute(stmt) if row.key.startswith(prefix)
            }

    def _key_order(self) -> sa.ColumnElement[str]:
        """The key column compared as S3 orders keys (UTF-8 bytes). SQLite's default BINARY
        collation already does; PostgreSQL compares in the database's collation unless told
        "C" (an index on ``key COLLATE "C"`` serves it, see schema)."""
        if self.engine.dialect.name == "postgresql":
            return documents.c.key.collate("C")
        return documents.c.key

    def known_range(
        self, bucket: str, prefix: str, after: str | None, last: str | None, escaped: bool = True
    ) -> dict[str, Known]:
        """Registered objects under ``prefix`` whose S3 key lies in (``after``, ``last``] in S3's
        order (None: unbounded on that side), by stored key. Rows of keys with NUL (stored
        escaped, so sorted elsewhere) are placed by their real key; ``escaped=False`` says the
        prefix has none (skips their scan)."""
        if after is None and last is None:
            return self.known(bucket, prefix)
        key = self._key_order()
        conditions = [documents.c.bucket == bucket, _prefix_condition(prefix)]
        if after is not None:
            conditions.append(key > storable_key(after))
        if last is not None:
            conditions.append(key <= storable_key(last))
        found: dict[str, Known] = {}
        with self.engine.connect() as conn:
            stmt = sa.select(*_KNOWN_COLUMNS).where(*conditions)
            for row in conn.execute(stmt):
                if row.key.startswith(prefix) and _in_range(
                    _real_key(bucket, row.key, row.doc_id), after, last
                ):
                    found[row.key] = _known(row)
            if escaped:
                stmt = sa.select(*_KNOWN_COLUMNS).where(
                    documents.c.bucket == bucket,
                    _prefix_condition(prefix),
                    documents.c.key.contains(_ESCAPED_NUL, autoescape=True),
                )
                for row in conn.execute(stmt):
                    real = _real_key(bucket, row.key, row.doc_id)
                    if row.key.startswith(prefix) and _in_range(real, after, last):
                        found[row.key] = _known(row)
        return found

    def prefix_stats(self, bucket: str, prefix: str) -> tuple[int, bool]:
        """Live (not deleted) documents registered under ``prefix``, and whether any of the
        prefix's keys is stored escaped (contains NUL): one scan, once per listing pass."""
        escaped = documents.c.key.contains(_ESCAPED_NUL, autoescape=True)
        stmt = sa.select(
            sa.func.count().filter(documents.c.status.not_in(GONE_STATUSES)),
            sa.func.count().filter(escaped),
        ).where(documents.c.bucket == bucket, _prefix_condition(prefix))
        with self.engine.connect() as conn:
            live, nul = conn.execute(stmt).one()
        return int(live or 0), bool(nul)

    def known_keys(self, bucket: str, keys: Iterable[str]) -> dict[str, Known]:
        """Registered objects among exact ``keys`` of ``bucket``, by key (absent: unknown)."""
        wanted = list(dict.fromkeys(storable_key(k) for k in keys))
        found: dict[str, Known] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(wanted):
                stmt = sa.select(*_KNOWN_COLUMNS).where(
                    documents.c.bucket == bucket, documents.c.key.in_(chunk)
                )
                for row in conn.execute(stmt):
                    found[row.key] = _known(row)
        # A case-insensitive collation (MySQL) could match another key: keep exact ones only.
        exact = set(wanted)
        return {k: v for k, v in found.items() if k in exact}

    def select(
        self, scope: Scope, keys: Sequence[str] = (), prefix: str | None = None
    ) -> list[str]:
        """Doc ids of registered, live documents in ``scope`` by exact keys and/or a key prefix."""
        conditions = [scope_condition(scope), documents.c.status.not_in(GONE_STATUSES)]
        found: list[str] = []
        with self.engine.connect() as conn:
            for chunk in _chunks(list(keys)):
                stmt = sa.select(documents.c.doc_id).where(*conditions, documents.c.key.in_(chunk))
                found += conn.execute(stmt).scalars()
            if prefix is not None:
                stmt = sa.select(documents.c.doc_id, documents.c.key).where(
                    *conditions, _prefix_condition(prefix)
                )
                found += [r.doc_id for r in conn.execute(stmt) if r.key.startswith(prefix)]
        return list(dict.fromkeys(found))

    # --- work (sensors plan runs; runs plan their documents) ---------------------------------

    def work_by_hash_bucket(
        self, scope: Scope, target_id: int | None, width: int
    ) -> dict[int, ShardWork]:
        """Per shard index (``key_hash // width``): documents needing work, their highest
        change number and their objects' registered bytes."""
        shard = (documents.c.key_hash // width).label("shard")
        stmt = (
            sa.select(
                shard,
                sa.func.count(),
                sa.func.max(documents.c.seq),
                sa.func.coalesce(sa.func.sum(documents.c.size), 0),
            )
            .where(scope_condition(scope), work_condition(target_id, time.time()))
            .group_by(shard)
        )
        with self.engine.connect() as conn:
            return {int(s): ShardWork(int(n), int(m), int(b)) for s, n, m, b in conn.execute(stmt)}

    def work_count(self, scope: Scope, target_id: int | None) -> int:
        """Documents in scope whose state in ``target_id`` is not final (retries waiting
        included: a version is not complete while any wait)."""
        stmt = sa.select(sa.func.count()).where(scope_condition(scope), work_condition(target_id))
        with self.engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())

    def live_doc_ids(self, scope: Scope, hashes: tuple[int, int] | None = None) -> set[str]:
        """Documents in scope whose object exists (not deleted), optionally in a hash range."""
        conditions = [scope_condition(scope), documents.c.status.not_in(GONE_STATUSES)]
        if hashes is not None:
            conditions.append(documents.c.key_hash.between(*hashes))
        stmt = sa.select(documents.c.doc_id, documents.c.bucket, documents.c.key).where(*conditions)
        with self.engine.connect() as conn:
            return {r.doc_id for r in conn.execute(stmt) if scope.contains(r.bucket, r.key)}

    def documents_in(
        self,
        scope: Scope,
        hashes: tuple[int, int],
        target_id: int | None = None,
        only_work: bool = True,
    ) -> Iterator[DocumentRecord]:
        """Documents of a key-hash range in key order: those needing work in ``target_id``, or
        (``only_work=False``) every live one."""
        condition = (
            work_condition(target_id, time.time()) if only_work else documents.c.status != "removed"
        )
        stmt = (
            sa.select(documents)
            .where(
                scope_condition(scope),
                documents.c.key_hash.between(*hashes),
                condition,
            )
            .order_by(documents.c.key_hash, documents.c.doc_id)
        )
        with self.engine.connect() as conn:
            for row in conn.execute(stmt):
                record = DocumentRecord(**row._mapping)
                if scope.contains(record.bucket, record.key):
                    yield record

    def count_by_hash_bucket(
        self, scope: Scope, hashes: tuple[int, int], width: int
    ) -> dict[int, int]:
        """Live documents per shard index in a key-hash range."""
        shard = (documents.c.key_hash // width).label("shard")
        stmt = (
            sa.select(shard, sa.func.count())
            .where(
                scope_condition(scope),
                documents.c.key_hash.between(*hashes),
                documents.c.status != "removed",
            )
            .group_by(shard)
        )
        with self.engine.connect() as conn:
            return {int(s): int(n) for s, n in conn.execute(stmt)}

    def ingested_chunks(
        self, target_id: int, hashes: tuple[int, int] | None = None, scope: Scope | None = None
    ) -> dict[str, int]:
        """Chunk count per document ingested ('ok') into ``target_id``."""
        conditions = [documents.c.status == "ok", documents.c.target_id == target_id]
        if hashes is not None:
            conditions.append(documents.c.key_hash.between(*hashes))
        if scope is not None:
            conditions.append(scope_condition(scope))
        stmt = sa.select(documents.c.doc_id, documents.c.chunk_count).where(*conditions)
        with self.engine.connect() as conn:
            return {doc_id: int(n or 0) for doc_id, n in conn.execute(stmt)}

    def ingested_versions(
        self, target_id: int, hashes: tuple[int, int] | None = None, scope: Scope | None = None
    ) -> dict[str, tuple[str, int]]:
        """(ingested ETag, chunk count) per document ingested ('ok') into ``target_id``: the
        version its points must carry, and how many there must be."""
        conditions = [documents.c.status == "ok", documents.c.target_id == target_id]
        if hashes is not None:
            conditions.append(documents.c.key_hash.between(*hashes))
        if scope is not None:
            conditions.append(scope_condition(scope))
        stmt = sa.select(
            documents.c.doc_id, documents.c.ingested_etag, documents.c.chunk_count
        ).where(*conditions)
        with self.engine.connect() as conn:
            return {
                doc_id: (str(etag or ""), int(n or 0)) for doc_id, etag, n in conn.execute(stmt)
            }

    def ingested_points(self, target_id: int, scope: Scope | None = None) -> int:
        """Points the documents ingested ('ok') into ``target_id`` hold, per the registry."""
        conditions = [documents.c.status == "ok", documents.c.target_id == target_id]
        if scope is not None:
            conditions.append(scope_condition(scope))
        stmt = sa.select(sa.func.coalesce(sa.func.sum(documents.c.chunk_count), 0)).where(
            *conditions
        )
        with self.engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())

    # --- reading -----------------------------------------------------------------------------

    def lookup(self, doc_ids: Iterable[str]) -> dict[str, DocumentRecord]:
        """Records for the given doc ids (unknown ids are absent from the result)."""
        found: dict[str, DocumentRecord] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(list(doc_ids)):
                for row in conn.execute(sa.select(documents).where(documents.c.doc_id.in_(chunk))):
                    found[row.doc_id] = DocumentRecord(**row._mapping)
        return found

    def find(self, ref: str) -> list[DocumentRecord]:
        """Documents matching an ``s3://bucket/key`` URI, a doc id or a key (any bucket)."""
        if ref.startswith("s3://"):
            bucket, _, key = ref.removeprefix("s3://").partition("/")
            condition = sa.and_(documents.c.bucket == bucket, documents.c.key == key)
        else:
            condition = sa.or_(documents.c.doc_id == ref, documents.c.key == ref)
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(documents).where(condition))
            return [DocumentRecord(**row._mapping) for row in rows]

    def history(self, doc_id: str, limit: int = 50) -> list[HistoryEntry]:
        """The document's latest events, oldest first."""
        stmt = (
            sa.select(events)
            .where(events.c.doc_id == doc_id)
            .order_by(events.c.id.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            rows = list(conn.execute(stmt))
        return [
            HistoryEntry(
                r.at, r.event, r.status, r.reason, r.etag, r.chunk_count, r.target_id, r.run_id
            )
            for r in reversed(rows)
        ]

    def by_status(
        self, statuses: Sequence[str], limit: int = 1000, scope: Scope | None = None
    ) -> list[DocumentRecord]:
        stmt = sa.select(documents).where(documents.c.status.in_(list(statuses)))
        if scope is not None:
            stmt = stmt.where(scope_condition(scope))
        stmt = stmt.order_by(documents.c.seq, documents.c.doc_id).limit(limit)
        with self.engine.connect() as conn:
            return [DocumentRecord(**row._mapping) for row in conn.execute(stmt)]

    def status_counts(self, scope: Scope | None = None) -> dict[str, int]:
        stmt = sa.select(documents.c.status, sa.func.count()).group_by(documents.c.status)
        if scope is not None:
            stmt = stmt.where(scope_condition(scope))
        with self.engine.connect() as conn:
            return {status: int(n) for status, n in conn.execute(stmt)}

    def recently_ingested(self, target_id: int, limit: int) -> list[str]:
        """The ``limit`` documents with points in ``target_id`` whose state changed last."""
        stmt = (
            sa.select(documents.c.doc_id)
            .where(
                documents.c.status == "ok",
                documents.c.chunk_count > 0,
                documents.c.target_id == target_id,
            )
            .order_by(documents.c.updated_at.desc(), documents.c.doc_id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [row[0] for row in conn.execute(stmt)]

    def max_seq(self) -> int:
        with self.engine.connect() as conn:
            stmt = sa.select(counters.c.value).where(counters.c.name == "seq")
            return int(conn.execute(stmt).scalar_one())


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]
