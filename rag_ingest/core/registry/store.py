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
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event, exc

from rag_ingest.core.keys import document_id, key_hash, storable_key
from rag_ingest.core.registry.holds import HoldsMixin
from rag_ingest.core.registry.model import (
    GONE_STATUSES,
    Outcome,
)
from rag_ingest.core.registry.reads import (
    ReadsMixin,
    _chunks,
    default_url,
    scope_condition,
    work_condition,
)
from rag_ingest.core.registry.schema import counters, documents, event_row, events, upgrade
from rag_ingest.core.registry.targets import TargetsMixin
from rag_ingest.core.storage.s3 import S3Object

__all__ = ["INSERT_BATCH", "Registry", "default_url", "scope_condition", "work_condition"]
# Rows per INSERT when registering a burst (bounds the sensor's memory).
INSERT_BATCH = 5000
# Built once: one outcome per document, and building the statement cost more than running it.
_RECORD_OUTCOME = (
    documents.update()
    .where(
        documents.c.doc_id == sa.bindparam("o_doc_id"),
        documents.c.etag == sa.bindparam("o_etag"),
        documents.c.status.not_in(GONE_STATUSES),
        # No change number given: any; else the row's must still be the one planned with.
        sa.func.coalesce(sa.bindparam("o_seq", type_=sa.BigInteger), documents.c.seq)
        == documents.c.seq,
    )
    .values(
        {
            name: sa.bindparam(name)
            for name in (
                "status",
                "reason",
                "updated_at",
                "target_id",
                "run_id",
                "ingested_etag",
                "chunk_count",
                "attempts",
                "retry_at",
            )
        }
    )
)


class Registry(HoldsMixin, ReadsMixin, TargetsMixin):
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

    def register(self, objects: Sequence[S3Object], run_id: str | None = None) -> list[str]:
        """Add new objects as pending documents; returns their doc ids.

        Objects registered meanwhile by another writer (the event sensor and a listing sensor
        can both see a new key) are left as they are: their next event or listing compares
        versions as usual.
        """
        if not objects:
            return []
        now = time.time()
        doc_ids = [document_id(o.bucket, o.key) for o in objects]
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
                            "key": storable_key(o.key),
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
                    logged.append(event_row(doc_id, now, "registered", "pending", o.etag, run_id))
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
        self,
        objects: Sequence[S3Object],
        reason: str = "object changed in S3",
        unchanged_since: int | None = None,
    ) -> list[str]:
        """Registered objects changed (or came back after a delete): store the new version and
        mark them pending. Returns the doc ids changed.

        ``unchanged_since``: a change number read before the caller looked at S3 (a listing's
        snapshot): rows a writer changed after it (the events sensor registering a newer
        version meanwhile) are left alone; the next listing compares them again.
        """
        if not objects:
            return []
        now = time.time()
        doc_ids = [document_id(o.bucket, o.key) for o in objects]
        with self.engine.begin() as conn:
            seq = self._next_seq(conn)
            if unchanged_since is not None:
                # Writers are serialized by the counter update above: nothing changes between
                # this read and the update below.
                current = self._unchanged(conn, doc_ids, unchanged_since)
                kept = [(d, o) for d, o in zip(doc_ids, objects, strict=True) if d in current]
                doc_ids, objects = [d for d, _ in kept], [o for _, o in kept]
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
                    .values(
                        seq=seq,
                        status="pending",
                        reason=reason,
                        updated_at=now,
                        attempts=0,
                        retry_at=None,
                    ),
                    params[start : start + INSERT_BATCH],
                )
            self._log(
                conn,
                [
                    event_row(d, now, "changed", "pending", o.etag, None, reason)
                    for d, o in zip(doc_ids, objects, strict=True)
                ],
            )
        return doc_ids

    def mark_deleting(
        self, doc_ids: Sequence[str], unchanged_since: int | None = None
    ) -> list[str]:
        """The objects are gone from S3: their points are to be removed. Returns the doc ids
        marked (``unchanged_since``: as for :meth:`requeue`)."""
        return self._set_status(
            doc_ids, "deleting", "object deleted from S3", "deleted", None, unchanged_since
        )

    @staticmethod
    def _unchanged(conn: sa.Connection, doc_ids: Sequence[str], since: int) -> set[str]:
        found: set[str] = set()
        for chunk in _chunks(doc_ids):
            stmt = sa.select(documents.c.doc_id).where(
                documents.c.doc_id.in_(chunk), documents.c.seq <= since
            )
            found.update(conn.execute(stmt).scalars())
        return found

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
        unchanged_since: int | None = None,
    ) -> list[str]:
        if not doc_ids:
            return []
        now = time.time()
        with self.engine.begin() as conn:
            seq = self._next_seq(conn)
            if unchanged_since is not None:
                current = self._unchanged(conn, doc_ids, unchanged_since)
                doc_ids = [d for d in doc_ids if d in current]
            for chunk in _chunks(doc_ids):
                conn.execute(
                    documents.update()
                    .where(documents.c.doc_id.in_(chunk))
                    .values(
                        status=status,
                        reason=reason,
                        seq=seq,
                        updated_at=now,
                        attempts=0,
                        retry_at=None,
                    )
                )
            self._log(
                conn, [event_row(d, now, event_name, status, None, run_id, reason) for d in doc_ids]
            )
        return list(doc_ids)

    # --- outcomes (runs) ---------------------------------------------------------------------

    def record(
        self, outcomes: Sequence[Outcome], target_id: int | None, run_id: str | None = None
    ) -> set[str]:
        """Store what a run did, for documents still at the version it processed and, when the
        outcome names one, still at the change number (``seq``) the run planned with.

        Returns:
            The doc ids whose row took the outcome (the others moved on meanwhile: a newer
            version, or the object's deletion, is registered and waits for its own run; or a
            re-ingest was asked for since the run planned, and the document stays work).
        """
        if not outcomes:
            return set()
        now = time.time()
        applied: set[str] = set()
        with self.engine.begin() as conn:
            for o in outcomes:
                ok = o.status == "ok"
                params = {
                    "o_doc_id": o.doc_id,
                    "o_etag": o.etag,
                    "o_seq": o.seq,
                    "status": o.status,
                    "reason": o.reason,
                    "updated_at": now,
                    "target_id": target_id,
                    "run_id": run_id,
                    "ingested_etag": o.etag if ok else None,
                    "chunk_count": o.chunk_count if ok else 0,
                    "attempts": o.attempts,
                    "retry_at": o.retry_at,
                }
                if conn.execute(_RECORD_OUTCOME, params).rowcount:
                    applied.add(o.doc_id)
            self._log(
                conn,
                [
                    event_row(
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
                    event_row(d, now, "removed", "removed", None, run_id, "object deleted from S3")
                    for d in doc_ids
                    if d in applied
                ],
            )
        return applied


def _iso(value: datetime) -> str:
    return value.isoformat()


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    # WAL lets the sensor read while a run writes; the busy timeout waits out short locks.
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=60000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
