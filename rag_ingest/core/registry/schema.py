"""Registry tables, and the in-place upgrade of a registry written by an earlier version."""

from __future__ import annotations

import time

import sqlalchemy as sa
from sqlalchemy import exc

from rag_ingest.core.keys import key_hash

meta = sa.MetaData()
documents = sa.Table(
    "documents",
    meta,
    sa.Column("doc_id", sa.String(64), primary_key=True),
    sa.Column("bucket", sa.String(255), nullable=False),
    sa.Column("key", sa.String(1024), nullable=False),
    sa.Column("etag", sa.String(128), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("last_modified", sa.String(40), nullable=False),
    # The change number of the last registry change that asked for work on this document.
    sa.Column("seq", sa.BigInteger, nullable=False, index=True),
    # pending → ok | empty | unsupported | failed | missing; gone from S3: deleting → removed
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("ingested_etag", sa.String(128)),
    sa.Column("chunk_count", sa.Integer),
    sa.Column("updated_at", sa.Float, nullable=False),
    # Where the document sits in the key space (keys.key_hash): shards are ranges of it.
    sa.Column("key_hash", sa.Integer, nullable=False, server_default="0", index=True),
    # The target (Qdrant location + physical collection) its current status was reached in.
    sa.Column("target_id", sa.Integer),
    sa.Column("run_id", sa.String(64)),
    # Transient failures (S3 throttling/5xx/timeouts, an extraction timeout, a 404 during a
    # delete-then-put): how many in a row at this version, and when to try again (NULL: no
    # retry due). See ``core.pipeline.retries``.
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("retry_at", sa.Float),
    sa.UniqueConstraint("bucket", "key", name="uq_documents_bucket_key"),
    # A shard's rows of a bucket (every scoped key-hash range read). Without it SQLite serves
    # "bucket = ? AND key_hash BETWEEN ..." from the unique index, reading the whole bucket.
    sa.Index("ix_documents_bucket_key_hash", "bucket", "key_hash"),
)
events = sa.Table(
    "document_events",
    meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("doc_id", sa.String(64), nullable=False, index=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("event", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("etag", sa.String(128)),
    sa.Column("chunk_count", sa.Integer),
    sa.Column("target_id", sa.Integer),
    sa.Column("run_id", sa.String(64)),
)
targets = sa.Table(
    "targets",
    meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("location", sa.String(1024), nullable=False),
    sa.Column("collection", sa.String(255), nullable=False),
    sa.Column("alias", sa.String(255), nullable=False),
    sa.Column("fingerprint", sa.String(32), nullable=False),
    sa.Column("spec", sa.Text, nullable=False),
    # building → live → retired; rolled_back (never promoted again by itself); dropped
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("promoted_at", sa.Float),
    # Set by ``index rollback``, cleared by an explicit promotion; a collection of the same
    # location and name registered again (dropped or lost meanwhile) inherits it.
    sa.Column("rolled_back_at", sa.Float),
)
# The last run request made for each shard (see ``core.requests``), shared by all sensors.
shard_requests = sa.Table(
    "shard_requests",
    meta,
    sa.Column("shards", sa.Integer, primary_key=True),
    sa.Column("shard", sa.Integer, primary_key=True),
    sa.Column("signature", sa.String(64), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("requested_at", sa.Float, nullable=False),
)
counters = sa.Table(
    "counters",
    meta,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)
# A listing pass held back from marking documents deleted (the delete guard, see
# ``core.planning.listing.DeleteGuard``): one row per watched prefix while held, until a pass
# comes back below the threshold or an operator confirms (``rag-ingest confirm-deletes``).
delete_holds = sa.Table(
    "delete_holds",
    meta,
    sa.Column("bucket", sa.String(255), primary_key=True),
    sa.Column("prefix", sa.String(1024), primary_key=True),
    sa.Column("held_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    # Deletions the held pass would make, of how many live documents registered under prefix.
    sa.Column("would_delete", sa.BigInteger, nullable=False),
    sa.Column("registered", sa.BigInteger, nullable=False),
    sa.Column("confirmed_at", sa.Float),
)
# Chunk vectors by sha256(embedding identity, text), shared by runs (``embedding_cache``).
embedding_cache = sa.Table(
    "embedding_cache",
    meta,
    sa.Column("key", sa.String(64), primary_key=True),
    # sha256 of the embedding identity: model, weights, runtime, precision, document prompt.
    sa.Column("identity", sa.String(64), nullable=False),
    sa.Column("dimension", sa.Integer, nullable=False),
    sa.Column("vector", sa.LargeBinary, nullable=False),  # little-endian float32
    sa.Column("checksum", sa.String(64), nullable=False),
    sa.Column("last_used", sa.Float, nullable=False, index=True),
    sa.Column("created", sa.Float, nullable=False),
)
# Columns added after the first release, with how to fill them on an existing registry.
_ADDED = ("key_hash", "target_id", "run_id", "attempts", "retry_at")
_ADDED_TARGETS = ("rolled_back_at",)
_NOT_NULL_ZERO = ("key_hash", "attempts")


def upgrade(engine: sa.Engine, attempts: int = 5) -> None:
    """Create missing tables; add and fill columns an older registry lacks.

    Rows of an older registry have no target: every document counts as not ingested in the
    current target, so the next reconcile re-checks it (writes are idempotent). Processes that
    open a new registry at the same moment race to create it; the losers' "already exists"
    errors are retried, and the retry finds everything in place.
    """
    for attempt in range(attempts):
        try:
            _upgrade(engine)
            return
        except (exc.OperationalError, exc.ProgrammingError, exc.IntegrityError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))


def _upgrade(engine: sa.Engine) -> None:
    meta.create_all(engine)
    if engine.dialect.name == "postgresql":
        # Listing ranges compare keys in S3's order (UTF-8 bytes: COLLATE "C"), which the
        # unique index in the database's collation cannot serve.
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "CREATE INDEX IF NOT EXISTS ix_documents_bucket_key_c "
                    'ON documents (bucket, key COLLATE "C")'
                )
            )
    inspector = sa.inspect(engine)
    present = {c["name"] for c in inspector.get_columns("documents")}
    indexes = {i["name"] for i in inspector.get_indexes("documents")}
    missing = [name for name in _ADDED if name not in present]
    present_targets = {c["name"] for c in inspector.get_columns("targets")}
    missing_targets = [name for name in _ADDED_TARGETS if name not in present_targets]
    if missing_targets:
        with engine.begin() as conn:
            for name in missing_targets:
                kind = targets.c[name].type.compile(engine.dialect)
                conn.execute(sa.text(f"ALTER TABLE targets ADD COLUMN {name} {kind}"))
    if not missing and all(i.name in indexes for i in documents.indexes):
        return
    with engine.begin() as conn:
        for name in missing:
            column = documents.c[name]
            kind = column.type.compile(engine.dialect)
            default = " DEFAULT 0 NOT NULL" if name in _NOT_NULL_ZERO else ""
            conn.execute(sa.text(f"ALTER TABLE documents ADD COLUMN {name} {kind}{default}"))
        # create_all skips the indexes of a table that exists: those on added columns, and any
        # index added since.
        for index in documents.indexes:
            index.create(conn, checkfirst=True)
        if "key_hash" in missing:
            ids = list(conn.execute(sa.select(documents.c.doc_id)).scalars())
            conn.execute(
                documents.update()
                .where(documents.c.doc_id == sa.bindparam("b_doc"))
                .values(key_hash=sa.bindparam("b_hash")),
                [{"b_doc": d, "b_hash": key_hash(d)} for d in ids],
            )


def event_row(
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
    """One ``events`` row: a change in a document's status, for its history."""
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
