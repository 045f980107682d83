from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from rag_ingest.core.keys import document_id, key_hash
from rag_ingest.core.registry import Known, Outcome, Registry, Scope
from rag_ingest.core.registry.reads import scope_condition
from rag_ingest.core.registry.schema import documents
from rag_ingest.core.storage.s3 import S3Object

NOW = datetime(2026, 11, 28, tzinfo=UTC)
ALL = (0, 65535)


def _obj(key: str, etag: str = "e1") -> S3Object:
    return S3Object("bkt", key, etag, 10, NOW)


def _registry(tmp_path: Path) -> Registry:
    return Registry(f"sqlite:///{tmp_path / 'r.sqlite'}")


def test_register_lookup_and_outcomes_in_a_target(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    ids = registry.register([_obj("a/1.md"), _obj("a/2.md"), _obj("b/3.md")])
    assert ids == [document_id("bkt", k) for k in ("a/1.md", "a/2.md", "b/3.md")]
    iso = NOW.isoformat()
    assert registry.known("bkt", "a/") == {
        "a/1.md": Known(ids[0], "e1", "pending", iso),
        "a/2.md": Known(ids[1], "e1", "pending", iso),
    }
    target = registry.new_target("edge:/x", "documents__fp", "documents", "fp", "{}")
    scope = Scope("bkt")
    assert registry.work_count(scope, target.id) == 3
    applied = registry.record(
        [
            Outcome(ids[0], "ok", etag="e1", chunk_count=4),
            Outcome(ids[1], "failed", "corrupt PDF", "e1"),
        ],
        target.id,
        "run-1",
    )
    assert applied == {ids[0], ids[1]}
    found = registry.lookup([ids[0], ids[1], "unknown~0000000000000000"])
    assert set(found) == {ids[0], ids[1]}
    assert found[ids[0]].status == "ok" and found[ids[0]].chunk_count == 4
    assert found[ids[0]].target_id == target.id and found[ids[0]].key_hash == key_hash(ids[0])
    assert found[ids[1]].reason == "corrupt PDF"
    assert registry.status_counts() == {"ok": 1, "failed": 1, "pending": 1}
    assert [r.key for r in registry.by_status(["failed"])] == ["a/2.md"]
    # Done in this target: only the pending one is left; in another target, everything.
    assert registry.work_count(scope, target.id) == 1
    other = registry.new_target("edge:/x", "documents__other", "documents", "other", "{}")
    assert registry.work_count(scope, other.id) == 3
    assert registry.ingested_chunks(target.id) == {ids[0]: 4}
    assert [e.event for e in registry.history(ids[0])] == ["registered", "ingested"]


def test_an_outcome_for_an_older_version_is_not_applied(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    (doc,) = registry.register([_obj("v.md", "e1")])
    registry.requeue([_obj("v.md", "e2")])
    assert registry.record([Outcome(doc, "ok", etag="e1", chunk_count=2)], 1) == set()
    record = registry.lookup([doc])[doc]
    assert (record.etag, record.status, record.ingested_etag) == ("e2", "pending", None)
    registry.mark_deleting([doc])
    assert registry.record([Outcome(doc, "ok", etag="e2", chunk_count=2)], 1) == set()
    assert registry.mark_removed([doc]) == {doc}
    assert registry.lookup([doc])[doc].status == "removed"


def test_prefix_match_is_literal_and_case_sensitive(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    registry.register(
        [_obj("100%_done/x.md"), _obj("100abc/y.md"), _obj("docs/a.md"), _obj("Docs/b.md")]
    )
    assert list(registry.known("bkt", "100%_")) == ["100%_done/x.md"]
    assert list(registry.known("bkt", "docs/")) == ["docs/a.md"]
    assert list(registry.known("bkt", "Docs/")) == ["Docs/b.md"]
    assert len(registry.live_doc_ids(Scope("bkt", ("docs/",)))) == 1


def test_two_registries_on_one_file_share_the_change_numbers(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    first, second = Registry(url), Registry(url)
    first.register([_obj("x.md")])
    second.register([_obj("y.md")])
    seqs = sorted(
        r.seq for r in first.lookup(second.select(Scope("bkt"), ["x.md", "y.md"])).values()
    )
    assert seqs == [1, 2]


def test_work_per_shard_counts_and_change_numbers(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    ids = registry.register([_obj(f"k/{i}.md") for i in range(200)])
    width = 65536 // 16
    work = registry.work_by_hash_bucket(Scope("bkt"), None, width)
    assert sum(w.documents for w in work.values()) == 200
    assert set(work) == {key_hash(d) // width for d in ids}
    per_shard = registry.count_by_hash_bucket(Scope("bkt"), ALL, width)
    assert per_shard == {s: w.documents for s, w in work.items()}
    registry.requeue([_obj("k/0.md", "e2")])
    shard = key_hash(ids[0]) // width
    assert registry.work_by_hash_bucket(Scope("bkt"), None, width)[shard][1] == 2
    # And their registered bytes (10 each), which size runs beside the document count.
    assert sum(w.bytes for w in work.values()) == 200 * 10
    big = S3Object("bkt", "k/huge.md", "e1", 64 * 1024 * 1024, NOW)
    (huge,) = registry.register([big])
    work = registry.work_by_hash_bucket(Scope("bkt"), None, width)
    assert work[key_hash(huge) // width].bytes >= 64 * 1024 * 1024


def test_a_registry_of_the_first_release_is_upgraded_in_place(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    engine = sa.create_engine(url)
    doc = document_id("bkt", "old.md")
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE documents (doc_id VARCHAR(64) PRIMARY KEY, bucket VARCHAR(255) NOT "
                "NULL, key VARCHAR(1024) NOT NULL, etag VARCHAR(128) NOT NULL, size BIGINT NOT "
                "NULL, last_modified VARCHAR(40) NOT NULL, seq BIGINT NOT NULL, status "
                "VARCHAR(16) NOT NULL, reason TEXT, ingested_etag VARCHAR(128), chunk_count "
                "INTEGER, updated_at FLOAT NOT NULL, UNIQUE (bucket, key))"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO documents VALUES (:d, 'bkt', 'old.md', 'e1', 1, :lm, 1, 'ok', NULL, "
                "'e1', 3, 0)"
            ),
            {"d": doc, "lm": NOW.isoformat()},
        )
        conn.execute(
            sa.text(
                "CREATE TABLE targets (id INTEGER PRIMARY KEY, location VARCHAR(1024) NOT NULL, "
                "collection VARCHAR(255) NOT NULL, alias VARCHAR(255) NOT NULL, fingerprint "
                "VARCHAR(32) NOT NULL, spec TEXT NOT NULL, state VARCHAR(16) NOT NULL, "
                "created_at FLOAT NOT NULL, promoted_at FLOAT)"
            )
        )
    engine.dispose()
    registry = Registry(url)
    record = registry.lookup([doc])[doc]
    assert record.key_hash == key_hash(doc) and record.target_id is None
    assert (record.attempts, record.retry_at) == (0, None)  # no retry waiting
    target = registry.new_target("loc", "c", "a", "f", "{}")
    assert (target.state, target.rolled_back_at) == ("building", None)
    # Not ingested in any target yet: the next reconcile re-checks it.
    assert registry.work_count(Scope("bkt"), 1) == 1


def test_a_registry_without_the_bucket_key_hash_index_gets_it_and_range_reads_use_it(
    tmp_path: Path,
) -> None:
    """A scoped key-hash range (one shard of a bucket) is read through (bucket, key_hash): the
    unique (bucket, key) index would read every row of the bucket for each shard."""
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    registry = Registry(url)
    registry.register([_obj(f"k/{i}.md") for i in range(50)])
    registry.close()
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # as the release before the index left it
        conn.execute(sa.text("DROP INDEX ix_documents_bucket_key_hash"))
    engine.dispose()
    registry = Registry(url)
    stmt = sa.select(documents.c.doc_id).where(
        documents.c.key_hash.between(0, 4095), scope_condition(Scope("bkt", ("k/",)))
    )
    sql = str(stmt.compile(registry.engine, compile_kwargs={"literal_binds": True}))
    with registry.engine.connect() as conn:
        plan = " ".join(str(row) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))
    assert "ix_documents_bucket_key_hash" in plan
    wanted = {d for d in registry.live_doc_ids(Scope("bkt")) if key_hash(d) <= 4095}
    assert registry.live_doc_ids(Scope("bkt", ("k/",)), (0, 4095)) == wanted
    registry.close()


def test_processes_opening_a_new_registry_at_once_all_succeed(tmp_path: Path) -> None:
    import threading

    url = f"sqlite:///{tmp_path / 'race.sqlite'}"
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def open_it() -> None:
        start.wait()
        try:
            Registry(url).register([_obj(f"{threading.get_ident()}.md")])
        except BaseException as exc:  # collected: the assertion below names it
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(Registry(url).known("bkt", "")) == 6


def test_a_reingest_asked_for_while_a_run_processes_the_version_survives_its_outcome(
    tmp_path: Path,
) -> None:
    """L7: the outcome is conditional on the change number the run planned with, so a request
    made meanwhile (re-ingest job, CLI re-queue, verification) keeps the document work."""
    from rag_ingest.core.pipeline.retries import settle
    from rag_ingest.core.records import DocumentInfo

    registry = _registry(tmp_path)
    scope = Scope("bkt")
    (doc,) = registry.register([_obj("r.md", "e1")])
    target = registry.new_target("edge:/x", "documents__fp", "documents", "fp", "{}")
    assert registry.record([Outcome(doc, "ok", etag="e1", chunk_count=2)], target.id) == {doc}
    registry.mark_pending([doc], "re-ingest asked for")

    def plan() -> list[Outcome]:
        # What a run does: plan from the registry, then settle each processed document.
        planned = list(registry.documents_in(scope, ALL, target.id))
        infos = [DocumentInfo.from_record(r) for r in planned]
        return [
            settle(i, 3, registry.lookup([i.doc_id])[i.doc_id], target.id).outcome for i in infos
        ]

    outcomes = plan()
    assert [o.doc_id for o in outcomes] == [doc]
    # While the run embeds, the document is asked for again (same ETag).
    assert registry.mark_pending([doc], "re-ingest asked for again", "reingest-run") == [doc]
    assert registry.record(outcomes, target.id, "run-a") == set()
    record = registry.lookup([doc])[doc]
    assert (record.status, record.reason) == ("pending", "re-ingest asked for again")
    assert registry.work_count(scope, target.id) == 1
    # The next run plans with the new change number and its outcome applies.
    assert registry.record(plan(), target.id, "run-b") == {doc}
    assert registry.work_count(scope, target.id) == 0
    assert registry.lookup([doc])[doc].chunk_count == 3
