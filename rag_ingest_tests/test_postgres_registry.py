"""The registry's SQL on a real PostgreSQL server, not only SQLite: grouping by shard (integer
division), literal ``substr`` prefixes, conditional updates, targets, run requests, history,
concurrent writers and the in-place upgrade of a first-release registry.

The server: see ``test_postgres.py`` (fixtures ``pg_server``, ``registry_db`` and
``pg_registry`` live in ``conftest.py``).
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime

import sqlalchemy as sa

from rag_ingest.core.keys import document_id, key_hash
from rag_ingest.core.registry import Known, Outcome, Registry, Scope
from rag_ingest.core.registry.model import ShardRequest
from rag_ingest.core.storage.s3 import S3Object
from rag_ingest.testing.postgres import REGISTRY_TABLES, PgServer, public_tables

NOW = datetime(2026, 11, 28, tzinfo=UTC)


def _obj(key: str, etag: str = "e1", bucket: str = "bkt") -> S3Object:
    return S3Object(bucket, key, etag, 10, NOW)


def test_registry_sql_on_postgres(pg_registry: Registry) -> None:
    """The queries whose SQL differs between dialects give SQLite's answers on PostgreSQL."""
    registry = pg_registry
    assert registry.engine.dialect.name == "postgresql"
    ids = registry.register([_obj(f"k/{i}.md") for i in range(300)])
    # Grouping by shard is integer division of the key hash, for every shard count.
    scope = Scope("bkt")
    for shards in (16, 256, 4096):
        width = 65536 // shards
        expected = dict(Counter(key_hash(d) // width for d in ids))
        work = registry.work_by_hash_bucket(scope, None, width)
        assert {s: w.documents for s, w in work.items()} == expected, shards
        assert registry.count_by_hash_bucket(scope, (0, 65535), width) == expected, shards
    # A key-hash range (the lower half of the key space), grouped and listed in hash order.
    half = [d for d in ids if key_hash(d) <= 32767]
    assert registry.count_by_hash_bucket(scope, (0, 32767), 4096) == dict(
        Counter(key_hash(d) // 4096 for d in half)
    )
    listed = [r.key_hash for r in registry.documents_in(scope, (0, 32767))]
    assert listed == sorted(key_hash(d) for d in half)

    # Prefixes match literally and case-sensitively (substr, not LIKE), in characters.
    registry.register(
        [
            _obj("100%_done/x.md"),
            _obj("100abc/y.md"),
            _obj("docs/a.md"),
            _obj("Docs/b.md"),
            _obj("日本語/c.md"),
            _obj("日本/d.md"),
        ]
    )
    assert list(registry.known("bkt", "100%_")) == ["100%_done/x.md"]
    assert list(registry.known("bkt", "docs/")) == ["docs/a.md"]
    assert list(registry.known("bkt", "Docs/")) == ["Docs/b.md"]
    assert list(registry.known("bkt", "日本語/")) == ["日本語/c.md"]
    assert len(registry.live_doc_ids(Scope("bkt", ("docs/", "日本語/")))) == 2
    assert registry.work_count(Scope("bkt", ("100%_",)), None) == 1
    assert set(registry.known("bkt", "日本")) == {"日本語/c.md", "日本/d.md"}
    assert sorted(registry.select(Scope("bkt"), prefix="日本")) == sorted(
        document_id("bkt", k) for k in ("日本語/c.md", "日本/d.md")
    )

    # Targets: a re-created collection is a new target; the older one is dropped.
    first = registry.new_target("edge:/x", "documents__fp", "documents", "fp", "{}")
    second = registry.new_target("edge:/x", "documents__fp", "documents", "fp", "{}")
    assert second.id > first.id
    assert registry.target("edge:/x", "documents__fp") == second
    assert [t.state for t in registry.targets("edge:/x", "documents")] == ["dropped", "building"]
    registry.set_target_state(second.id, "live", promoted=True)
    live = registry.target_by_id(second.id)
    assert live is not None and live.state == "live" and live.promoted_at

    # Outcomes are conditional on the version the run processed.
    doc = ids[0]
    assert registry.record([Outcome(doc, "ok", etag="e1", chunk_count=3)], second.id, "r1") == {doc}
    registry.requeue([_obj("k/0.md", "e2")])
    assert registry.record([Outcome(doc, "ok", etag="e1", chunk_count=3)], second.id) == set()
    record = registry.lookup([doc])[doc]
    assert (record.etag, record.status, record.ingested_etag) == ("e2", "pending", "e1")
    assert registry.known("bkt", "k/0.md")["k/0.md"] == Known(doc, "e2", "pending", NOW.isoformat())
    # ... and on the change number the run planned with (L7): a request since survives.
    planned = registry.lookup([doc])[doc].seq
    registry.mark_pending([doc], "re-ingest asked for")
    stale = Outcome(doc, "ok", etag="e2", chunk_count=3, seq=planned)
    assert registry.record([stale], second.id) == set()
    now = registry.lookup([doc])[doc]
    assert now.status == "pending" and now.seq > planned
    fresh = Outcome(doc, "ok", etag="e2", chunk_count=3, seq=now.seq)
    assert registry.record([fresh], second.id) == {doc}
    registry.mark_deleting([doc])
    assert registry.record([Outcome(doc, "ok", etag="e2", chunk_count=3)], second.id) == set()
    assert registry.mark_removed([doc], "r2") == {doc}
    assert registry.mark_removed([doc], "r3") == set()  # only from 'deleting'
    assert registry.lookup([doc])[doc].status == "removed"
    assert [e.event for e in registry.history(doc)] == [
        "registered",
        "ingested",
        "changed",
        "requeued",
        "ingested",
        "deleted",
        "removed",
    ]
    assert registry.ingested_chunks(second.id) == {}

    # What sensors asked for, and counters.
    registry.save_shard_requests(
        16, {1: ShardRequest("3@1", 0, 1.0), 2: ShardRequest("1@2", 0, 2.0)}
    )
    registry.save_shard_requests(16, {1: ShardRequest("3@1", 1, 5.0)})
    assert registry.shard_requests(16) == {
        1: ShardRequest("3@1", 1, 5.0),
        2: ShardRequest("1@2", 0, 2.0),
    }
    assert registry.shard_requests(256) == {}
    registry.set_counter("full_reconcile_at", 100)
    registry.set_counter("full_reconcile_at", 200)
    assert registry.counter("full_reconcile_at") == 200


def test_registries_in_several_threads_share_the_change_numbers(registry_db: PgServer) -> None:
    registries = [Registry(registry_db.url) for _ in range(4)]
    try:
        errors: list[BaseException] = []

        def register(n: int) -> None:
            try:
                for i in range(10):
                    registries[n].register([_obj(f"t{n}/{i}.md")])
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=register, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors
        seqs = sorted(int(str(row[0])) for row in registry_db.query("SELECT seq FROM documents"))
        assert seqs == list(range(1, 41))  # one change number per registration, none shared
        assert registries[0].max_seq() == 40
    finally:
        for registry in registries:
            registry.close()


_first_release = sa.MetaData()
sa.Table(
    "documents",
    _first_release,
    sa.Column("doc_id", sa.String(64), primary_key=True),
    sa.Column("bucket", sa.String(255), nullable=False),
    sa.Column("key", sa.String(1024), nullable=False),
    sa.Column("etag", sa.String(128), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("last_modified", sa.String(40), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False, index=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("ingested_etag", sa.String(128)),
    sa.Column("chunk_count", sa.Integer),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.UniqueConstraint("bucket", "key", name="uq_documents_bucket_key"),
)
sa.Table(
    "counters",
    _first_release,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)


def test_a_first_release_registry_is_upgraded_in_place_on_postgres(
    registry_db: PgServer,
) -> None:
    # The tables exactly as the first release created them on PostgreSQL, with its rows.
    engine = sa.create_engine(registry_db.url)
    old = {
        "ok.md": ("ok", 3),
        "failed.pdf": ("failed", 0),
        "pending.md": ("pending", None),
        "gone.md": ("removed", 0),
    }
    ids = {key: document_id("bkt", key) for key in old}
    try:
        _first_release.create_all(engine)
        with engine.begin() as conn:
            conn.execute(
                _first_release.tables["documents"].insert(),
                [
                    {
                        "doc_id": ids[key],
                        "bucket": "bkt",
                        "key": key,
                        "etag": "e1",
                        "size": 1,
                        "last_modified": NOW.isoformat(),
                        "seq": seq,
                        "status": status,
                        "reason": None,
                        "ingested_etag": "e1" if status == "ok" else None,
                        "chunk_count": chunks,
                        "updated_at": 0.0,
                    }
                    for seq, (key, (status, chunks)) in enumerate(old.items(), start=1)
                ],
            )
            conn.execute(_first_release.tables["counters"].insert().values(name="seq", value=4))
    finally:
        engine.dispose()

    registry = Registry(registry_db.url)
    try:
        assert public_tables(registry_db) >= REGISTRY_TABLES
        columns = {
            str(name): (str(kind), nullable, default)
            for name, kind, nullable, default in registry_db.query(
                "SELECT column_name, data_type, is_nullable, column_default "
                "FROM information_schema.columns WHERE table_name = 'documents'"
            )
        }
        assert columns["key_hash"] == ("integer", "NO", "0")
        assert columns["target_id"][:2] == ("integer", "YES")
        assert columns["run_id"][:2] == ("character varying", "YES")
        indexes = {
            str(row[0])
            for row in registry_db.query(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'documents'"
            )
        }
        assert {
            "ix_documents_seq",
            "ix_documents_key_hash",
            "ix_documents_bucket_key_hash",
        } <= indexes
        records = registry.lookup(ids.values())
        assert {r.key: (r.status, r.key_hash, r.target_id) for r in records.values()} == {
            key: (status, key_hash(ids[key]), None) for key, (status, _) in old.items()
        }
        # Not ingested in any target yet: the next reconcile re-checks every live document.
        target = registry.new_target("edge:/x", "documents__fp", "documents", "fp", "{}")
        assert registry.work_count(Scope("bkt"), target.id) == 3
        width = 65536 // 16
        work = registry.work_by_hash_bucket(Scope("bkt"), target.id, width)
        assert sum(w.documents for w in work.values()) == 3
        # Change numbers go on from the old counter; history starts with the upgrade.
        (new,) = registry.register([_obj("new.md")])
        assert registry.lookup([new])[new].seq == 5
        assert registry.history(ids["ok.md"]) == []
        # A second open finds nothing left to upgrade.
        Registry(registry_db.url).close()
    finally:
        registry.close()
