"""The document registry: which S3 objects exist, under which partition key, in which state.

Dagster partition keys are short hashes (see ``keys``), so runs need a way back to the S3 key;
the sensor needs the last seen ETag of every object without carrying 100k keys in its cursor;
users need a list of what failed and why. One SQL table serves all three. SQLite under the data
folder by default, any SQLAlchemy URL (e.g. ``postgresql+psycopg2://...``) in production.

``seq`` is a global, increasing change number: registering or re-queueing a document gives it
a new one, and the sensor's cursor is the highest ``seq`` it has requested work for. A tick that
crashed after registering but before its runs were launched is therefore repaired by the next.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event, exc

from rag_ingest.core.keys import partition_key
from rag_ingest.core.s3 import S3Object

_meta = sa.MetaData()
documents = sa.Table(
    "documents",
    _meta,
    sa.Column("doc_id", sa.String(64), primary_key=True),
    sa.Column("bucket", sa.String(255), nullable=False),
    sa.Column("key", sa.String(1024), nullable=False),
    sa.Column("etag", sa.String(128), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("last_modified", sa.String(40), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False, index=True),
    # pending → ok | empty | unsupported | failed | missing; gone from S3: deleting → removed
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("ingested_etag", sa.String(128)),
    sa.Column("chunk_count", sa.Integer),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.UniqueConstraint("bucket", "key", name="uq_documents_bucket_key"),
)
counters = sa.Table(
    "counters",
    _meta,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)
_LOOKUP_CHUNK = 500
# Rows per INSERT when registering a burst of new objects (bounds the sensor's memory).
INSERT_BATCH = 5000


@dataclass(frozen=True)
class DocumentRecord:
    doc_id: str
    bucket: str
    key: str
    etag: str
    size: int
    last_modified: str
    seq: int
    status: str
    reason: str | None
    ingested_etag: str | None
    chunk_count: int | None
    updated_at: float


# Statuses of documents whose S3 object is gone: their points are being / have been removed.
GONE_STATUSES = ("deleting", "removed")
FAILED_STATUSES = ("failed", "empty", "unsupported", "missing")


@dataclass(frozen=True)
class Known:
    doc_id: str
    etag: str
    status: str


@dataclass(frozen=True)
class Outcome:
    """What a run did with one document, written back to the registry."""

    doc_id: str
    status: str
    reason: str | None = None
    etag: str | None = None
    chunk_count: int | None = None


def default_url(data_dir: str | Path) -> str:
    return f"sqlite:///{Path(data_dir).resolve() / 'registry.sqlite'}"


class Registry:
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
        _meta.create_all(self.engine)
        with self.engine.begin() as conn, contextlib.suppress(exc.IntegrityError):
            # Another process may create the counter row first; either way it exists after.
            exists = conn.execute(sa.select(counters.c.value).where(counters.c.name == "seq"))
            if exists.first() is None:
                conn.execute(counters.insert().values(name="seq", value=0))

    def close(self) -> None:
        self.engine.dispose()

    def _next_seqs(self, conn: sa.Connection, n: int) -> int:
        """Reserve ``n`` change numbers; returns the first."""
        stmt = (
            counters.update()
            .where(counters.c.name == "seq")
            .values(value=counters.c.value + n)
            .returning(counters.c.value)
        )
        last = conn.execute(stmt).scalar_one()
        return last - n + 1

    def known(self, bucket: str, prefix: str) -> dict[str, Known]:
        """Registered objects under a prefix, by key."""
        stmt = sa.select(
            documents.c.key, documents.c.doc_id, documents.c.etag, documents.c.status
        ).where(documents.c.bucket == bucket, documents.c.key.startswith(prefix, autoescape=True))
        with self.engine.connect() as conn:
            return {row.key: Known(row.doc_id, row.etag, row.status) for row in conn.execute(stmt)}

    def register(self, objects: Sequence[S3Object]) -> list[str]:
        """Add new objects as pending documents; returns their doc ids in ``seq`` order."""
        if not objects:
            return []
        now = time.time()
        doc_ids = [partition_key(o.bucket, o.key) for o in objects]
        with self.engine.begin() as conn:
            first = self._next_seqs(conn, len(objects))
            # One transaction, inserted in slices: the parameter rows of a 100k-object burst
            # at once took ~150 MB in the sensor process.
            for start in range(0, len(objects), INSERT_BATCH):
                rows = [
                    {
                        "doc_id": doc_ids[i],
                        "bucket": o.bucket,
                        "key": o.key,
                        "etag": o.etag,
                        "size": o.size,
                        "last_modified": _iso(o.last_modified),
                        "seq": first + i,
                        "status": "pending",
                        "reason": None,
                        "ingested_etag": None,
                        "chunk_count": None,
                        "updated_at": now,
                    }
                    for i, o in enumerate(objects[start : start + INSERT_BATCH], start)
                ]
                conn.execute(documents.insert(), rows)
        return doc_ids

    def requeue(self, objects: Sequence[S3Object]) -> list[str]:
        """A registered object changed (or came back): store its new version, mark it pending
        and give it a new change number so the sensor requests it again."""
        if not objects:
            return []
        now = time.time()
        with self.engine.begin() as conn:
            first = self._next_seqs(conn, len(objects))
            for i, o in enumerate(objects):
                conn.execute(
                    documents.update()
                    .where(documents.c.bucket == o.bucket, documents.c.key == o.key)
                    .values(
                        etag=o.etag,
                        size=o.size,
                        last_modified=_iso(o.last_modified),
                        seq=first + i,
                        status="pending",
                        reason=None,
                        updated_at=now,
                    )
                )
        return [partition_key(o.bucket, o.key) for o in objects]

    def mark_deleting(self, doc_ids: Sequence[str]) -> None:
        """The objects are gone from S3: request removal of their points."""
        self._set_status(doc_ids, "deleting", reason="object deleted from S3", bump=True)

    def mark_removed(self, doc_ids: Sequence[str]) -> None:
        """Points and files are removed; the sensor drops the partition and the row next."""
        self._set_status(doc_ids, "removed", reason="object deleted from S3", bump=False)

    def _set_status(self, doc_ids: Sequence[str], status: str, reason: str, bump: bool) -> None:
        if not doc_ids:
            return
        now = time.time()
        with self.engine.begin() as conn:
            first = self._next_seqs(conn, len(doc_ids)) if bump else 0
            for i, doc_id in enumerate(doc_ids):
                values: dict[str, object] = {"status": status, "reason": reason, "updated_at": now}
                if bump:
                    values["seq"] = first + i
                conn.execute(documents.update().where(documents.c.doc_id == doc_id).values(values))

    def forget(self, doc_ids: Sequence[str]) -> None:
        """Drop the rows of removed documents."""
        ids = list(doc_ids)
        with self.engine.begin() as conn:
            for i in range(0, len(ids), _LOOKUP_CHUNK):
                chunk = ids[i : i + _LOOKUP_CHUNK]
                conn.execute(documents.delete().where(documents.c.doc_id.in_(chunk)))

    def removed(self, bucket: str, prefix: str) -> list[str]:
        """Doc ids under a prefix whose points are gone, waiting for partition clean-up."""
        stmt = sa.select(documents.c.doc_id).where(
            documents.c.status == "removed",
            documents.c.bucket == bucket,
            documents.c.key.startswith(prefix, autoescape=True),
        )
        with self.engine.connect() as conn:
            return list(conn.execute(stmt).scalars())

    def max_seq(self) -> int:
        with self.engine.connect() as conn:
            stmt = sa.select(counters.c.value).where(counters.c.name == "seq")
            return int(conn.execute(stmt).scalar_one())

    def requested_after(self, seq: int, bucket: str, prefix: str) -> list[tuple[str, int, str]]:
        """(doc_id, seq, status) under a prefix with a change number above ``seq``, in order."""
        stmt = (
            sa.select(documents.c.doc_id, documents.c.seq, documents.c.status)
            .where(
                documents.c.seq > seq,
                documents.c.bucket == bucket,
                documents.c.key.startswith(prefix, autoescape=True),
            )
            .order_by(documents.c.seq)
        )
        with self.engine.connect() as conn:
            return [(row.doc_id, int(row.seq), row.status) for row in conn.execute(stmt)]

    def lookup(self, doc_ids: Iterable[str]) -> dict[str, DocumentRecord]:
        """Records for the given doc ids (unknown ids are absent from the result)."""
        ids = list(doc_ids)
        found: dict[str, DocumentRecord] = {}
        with self.engine.connect() as conn:
            for i in range(0, len(ids), _LOOKUP_CHUNK):
                stmt = sa.select(documents).where(
                    documents.c.doc_id.in_(ids[i : i + _LOOKUP_CHUNK])
                )
                for row in conn.execute(stmt):
                    found[row.doc_id] = DocumentRecord(**row._mapping)
        return found

    def record(self, outcomes: Sequence[Outcome]) -> None:
        """Store the outcome of processing documents."""
        if not outcomes:
            return
        now = time.time()
        with self.engine.begin() as conn:
            for o in outcomes:
                values: dict[str, object] = {
                    "status": o.status,
                    "reason": o.reason,
                    "updated_at": now,
                }
                if o.status == "ok":
                    values["ingested_etag"] = o.etag
                    values["chunk_count"] = o.chunk_count
                conn.execute(
                    documents.update().where(documents.c.doc_id == o.doc_id).values(values)
                )

    def by_status(self, statuses: Sequence[str], limit: int = 1000) -> list[DocumentRecord]:
        stmt = (
            sa.select(documents)
            .where(documents.c.status.in_(list(statuses)))
            .order_by(documents.c.seq)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [DocumentRecord(**row._mapping) for row in conn.execute(stmt)]

    def recorded_chunks(self) -> dict[str, int]:
        """Chunk count per ingested ('ok') document, as the pipeline recorded it."""
        stmt = sa.select(documents.c.doc_id, documents.c.chunk_count).where(
            documents.c.status == "ok"
        )
        with self.engine.connect() as conn:
            return {doc_id: int(n or 0) for doc_id, n in conn.execute(stmt)}

    def recently_ingested(self, limit: int) -> list[str]:
        """The ``limit`` ingested documents with points whose state changed last."""
        stmt = (
            sa.select(documents.c.doc_id)
            .where(documents.c.status == "ok", documents.c.chunk_count > 0)
            .order_by(documents.c.updated_at.desc(), documents.c.seq.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [row[0] for row in conn.execute(stmt)]

    def status_counts(self) -> dict[str, int]:
        stmt = sa.select(documents.c.status, sa.func.count()).group_by(documents.c.status)
        with self.engine.connect() as conn:
            return {status: int(n) for status, n in conn.execute(stmt)}


def _iso(value: datetime) -> str:
    return value.isoformat()


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    # WAL lets the sensor read while a run writes; the busy timeout waits out short locks.
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=60000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
