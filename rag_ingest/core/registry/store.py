"""The document registry: which S3 objects exist, and where each stands, per target.

One SQL database (SQLite under the data folder by default, any SQLAlchemy URL in production)
is the single record of what is ingested: a document counts as done only for the target it was
written to (``target_id``) at the version it holds (``etag``). Sensors write what S3 holds;
runs write outcomes, conditional on the version they processed, so an older version finishing
last can never overwrite a newer one. Every change is also appended to ``document_events``,
which ``rag-ingest status`` prints as the document's history.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event, exc

from rag_ingest.core.keys import key_hash, partition_key
from rag_ingest.core.registry.model import (
    GONE_STATUSES,
    WORK_STATUSES,
    DocumentRecord,
    Event,
    Known,
    Outcome,
    Scope,
)
from rag_ingest.core.registry.schema import counters, documents, events, upgrade
from rag_ingest.core.registry.targets import TargetsMixin
from rag_ingest.core.s3 import S3Object

_CHUNK = 500
# Rows per INSERT when registering a burst (bounds the sensor's memory).
INSERT_BATCH = 5000


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


def work_condition(target_id: int | None) -> sa.ColumnElement[bool]:
    """Documents whose state in ``target_id`` is not final for the version they hold."""
    if target_id is None:
        return documents.c.status != "removed"
    return sa.and_(
        documents.c.status != "removed",
        sa.or_(
            documents.c.status.in_(WORK_STATUSES),
            documents.c.target_id.is_(None),
            documents.c.target_id != target_id,
        ),
    )


class Registry(TargetsMixin):
    """Thread- and process-safe access to the registry tables.

    Args:
        url: SQLAlchemy database URL.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            self.engine = sa.create_engine(url, connect_args={"timeout": 60})
            event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            self.engine = sa.create_engine(url, pool_pre_ping=True)
        upgrade(self.engine)
        with self.engine.begin() as conn, contextlib.suppress(exc.IntegrityError):
            # Another process may create the counter row first; either way it exists after.
            found = conn.execute(sa.select(counters.c.value).where(counters.c.name == "seq"))
            if found.first() is None:
                conn.execute(counters.insert().values(name="seq", value=0))

    def close(self) -> None:
        self.engine.dispose()

    def _next_seq(self, conn: sa.Connection) -> int:
        stmt = (
            counters.update()
            .where(counters.c.name == "seq")
            .values(value=counters.c.value + 1)
            .returning(counters.c.value)
        )
        return int(conn.execute(stmt).scalar_one())

    @staticmethod
    def _log(conn: sa.Connection, rows: list[dict[str, object]]) -> None:
        for start in range(0, len(rows), INSERT_BATCH):
            conn.execute(events.insert(), rows[start : start + INSERT_BATCH])

    # --- what S3 holds (sensors) -------------------------------------------------------------

    def known(self, bucket: str, prefix: str) -> dict[str, Known]:
        """Registered objects under a prefix (case-sensitive, literal), by key."""
        stmt = sa.select(
            documents.c.key,
            documents.c.doc_id,
            documents.c.etag,
            documents.c.status,
            documents.c.last_modified,
        ).where(documents.c.bucket == bucket, _prefix_condition(prefix))
        with self.engine.connect() as conn:
            return {
                row.key: Known(row.doc_id, row.etag, row.status, row.last_modified)
                for row in conn.execute(stmt)
                if row.key.startswith(prefix)
            }

    def known_keys(self, bucket: str, keys: Iterable[str]) -> dict[str, Known]:
        """Registered objects among exact ``keys`` of ``bucket``, by key (absent: unknown)."""
        wanted = list(dict.fromkeys(keys))
        found: dict[str, Known] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(wanted):
                stmt = sa.select(
                    documents.c.key,
                    documents.c.doc_id,
                    documents.c.etag,
                    documents.c.status,
                    documents.c.last_modified,
                ).where(documents.c.bucket == bucket, documents.c.key.in_(chunk))
                for row in conn.execute(stmt):
                    found[row.key] = Known(row.doc_id, row.etag, row.status, row.last_modified)
        # A case-insensitive collation (MySQL) could match another key: keep exact ones only.
        exact = set(wanted)
        return {k: v for k, v in found.items() if k in exact}

    def register(self, objects: Sequence[S3Object], run_id: str | None = None) -> list[str]:
        """Add new objects as pending documents; returns their doc ids.

        Objects registered meanwhile by another writer (the event sensor and a listing sensor
        can both see a new key) are left as they are: their next event or listing compares
        versions as usual.
        """
        if not objects:
            return []
        now = time.time()
        doc_ids = [partition_key(o.bucket, o.key) for o in objects]
        with self.engine.begin() as conn:
            # The counter update serializes registry writers (SQLite's write lock, a row lock
            # elsewhere), so no other writer can insert between this check and our inserts.
            seq = self._next_seq(conn)
            taken = self._existing(conn, doc_ids)
            for start in range(0, len(objects), INSERT_BATCH):
                rows, logged = [], []
                for i in range(start, min(start + INSERT_BATCH, len(objects))):
                    o, doc_id = objects[i], doc_ids[i]
                    if doc_id in taken:
                        continue
                    rows.append(
                        {
                            "doc_id": doc_id,
                            "bucket": o.bucket,
                            "key": o.key,
                            "etag": o.etag,
                            "size": o.size,
                            "last_modified": _iso(o.last_modified),
                            "seq": seq,
                            "status": "pending",
                            "reason": None,
                            "ingested_etag": None,
                            "chunk_count": None,
                            "updated_at": now,
                            "key_hash": key_hash(doc_id),
                            "target_id": None,
                            "run_id": run_id,
                        }
                    )
                    logged.append(_event(doc_id, now, "registered", "pending", o.etag, run_id))
                if rows:
                    conn.execute(documents.insert(), rows)
                self._log(conn, logged)
        return doc_ids

    @staticmethod
    def _existing(conn: sa.Connection, doc_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for chunk in _chunks(doc_ids):
            stmt = sa.select(documents.c.doc_id).where(documents.c.doc_id.in_(chunk))
            found.update(conn.execute(stmt).scalars())
        return found

    def requeue(
        self, objects: Sequence[S3Object], reason: str = "object changed in S3"
    ) -> list[str]:
        """Registered objects changed (or came back after a delete): store the new version and
        mark them pending."""
        if not objects:
            return []
        now = time.time()
        doc_ids = [partition_key(o.bucket, o.key) for o in objects]
        with self.engine.begin() as conn:
            seq = self._next_seq(conn)
            params = [
                {
                    "b_doc": doc_id,
                    "etag": o.etag,
                    "size": o.size,
                    "last_modified": _iso(o.last_modified),
                }
                for doc_id, o in zip(doc_ids, objects, strict=True)
            ]
            for start in range(0, len(params), INSERT_BATCH):
                conn.execute(
                    documents.update()
                    .where(documents.c.doc_id == sa.bindparam("b_doc"))
                    .values(seq=seq, status="pending", reason=reason, updated_at=now),
                    params[start : start + INSERT_BATCH],
                )
            self._log(
                conn,
                [
                    _event(d, now, "changed", "pending", o.etag, None, reason)
                    for d, o in zip(doc_ids, objects, strict=True)
                ],
            )
        return doc_ids

    def mark_deleting(self, doc_ids: Sequence[str]) -> None:
        """The objects are gone from S3: their points are to be removed."""
        self._set_status(doc_ids, "deleting", "object deleted from S3", "deleted")

    def mark_pending(
        self, doc_ids: Sequence[str], reason: str, run_id: str | None = None
    ) -> list[str]:
        """Ask for these documents to be processed again (re-ingest, repair); documents whose
        object is gone are left alone. Returns the doc ids marked."""
        live = [r.doc_id for r in self.lookup(doc_ids).values() if r.status not in GONE_STATUSES]
        self._set_status(live, "pending", reason, "requeued", run_id)
        return live

    def _set_status(
        self,
        doc_ids: Sequence[str],
        status: str,
        reason: str,
        event_name: str,
        run_id: str | None = None,
    ) -> None:
        if not doc_ids:
            return
        now = time.time()
        with self.engine.begin() as conn:
            seq = self._next_seq(conn)
            for chunk in _chunks(doc_ids):
                conn.execute(
                    documents.update()
                    .where(documents.c.doc_id.in_(chunk))
                    .values(status=status, reason=reason, seq=seq, updated_at=now)
                )
            self._log(
                conn, [_event(d, now, event_name, status, None, run_id, reason) for d in doc_ids]
            )

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
    ) -> dict[int, tuple[int, int]]:
        """Per shard index (``key_hash // width``): documents needing work and their highest
        change number."""
        shard = (documents.c.key_hash // width).label("shard")
        stmt = (
            sa.select(shard, sa.func.count(), sa.func.max(documents.c.seq))
            .where(scope_condition(scope), work_condition(target_id))
            .group_by(shard)
        )
        with self.engine.connect() as conn:
            return {int(s): (int(n), int(m)) for s, n, m in conn.execute(stmt)}

    def work_count(self, scope: Scope, target_id: int | None) -> int:
        """Documents in scope whose state in ``target_id`` is not final."""
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
        condition = work_condition(target_id) if only_work else documents.c.status != "removed"
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

    # --- outcomes (runs) ---------------------------------------------------------------------

    def record(
        self, outcomes: Sequence[Outcome], target_id: int | None, run_id: str | None = None
    ) -> set[str]:
        """Store what a run did, for documents still at the version it processed.

        Returns:
            The doc ids whose row took the outcome (the others moved on meanwhile: a newer
            version, or the object's deletion, is registered and waits for its own run).
        """
        if not outcomes:
            return set()
        now = time.time()
        applied: set[str] = set()
        with self.engine.begin() as conn:
            for o in outcomes:
                values: dict[str, object] = {
                    "status": o.status,
                    "reason": o.reason,
                    "updated_at": now,
                    "target_id": target_id,
                    "run_id": run_id,
                    "ingested_etag": o.etag if o.status == "ok" else None,
                    "chunk_count": o.chunk_count if o.status == "ok" else 0,
                }
                stmt = (
                    documents.update()
                    .where(
                        documents.c.doc_id == o.doc_id,
                        documents.c.etag == o.etag,
                        documents.c.status.not_in(GONE_STATUSES),
                    )
                    .values(values)
                )
                if conn.execute(stmt).rowcount:
                    applied.add(o.doc_id)
            self._log(
                conn,
                [
                    _event(
                        o.doc_id,
                        now,
                        "ingested" if o.status == "ok" else o.status,
                        o.status,
                        o.etag,
                        run_id,
                        o.reason,
                        o.chunk_count,
                        target_id,
                    )
                    for o in outcomes
                    if o.doc_id in applied
                ],
            )
        return applied

    def mark_removed(self, doc_ids: Sequence[str], run_id: str | None = None) -> set[str]:
        """Points of deleted objects are gone: ``deleting`` → ``removed`` (rows stay, for their
        history; a re-created key is registered as changed)."""
        now = time.time()
        applied: set[str] = set()
        with self.engine.begin() as conn:
            for doc_id in doc_ids:
                stmt = (
                    documents.update()
                    .where(documents.c.doc_id == doc_id, documents.c.status == "deleting")
                    .values(
                        status="removed",
                        updated_at=now,
                        run_id=run_id,
                        target_id=None,
                        ingested_etag=None,
                        chunk_count=0,
                    )
                )
                if conn.execute(stmt).rowcount:
                    applied.add(doc_id)
            self._log(
                conn,
                [
                    _event(d, now, "removed", "removed", None, run_id, "object deleted from S3")
                    for d in doc_ids
                    if d in applied
                ],
            )
        return applied

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

    def history(self, doc_id: str, limit: int = 50) -> list[Event]:
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
            Event(r.at, r.event, r.status, r.reason, r.etag, r.chunk_count, r.target_id, r.run_id)
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


def _event(
    doc_id: str,
    at: float,
    name: str,
    status: str,
    etag: str | None,
    run_id: str | None,
    reason: str | None = None,
    chunk_count: int | None = None,
    target_id: int | None = None,
) -> dict[str, object]:
    return {
        "doc_id": doc_id,
        "at": at,
        "event": name,
        "status": status,
        "reason": reason,
        "etag": etag,
        "chunk_count": chunk_count,
        "target_id": target_id,
        "run_id": run_id,
    }


def _iso(value: datetime) -> str:
    return value.isoformat()


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    # WAL lets the sensor read while a run writes; the busy timeout waits out short locks.
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=60000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
