"""The production setup on a real PostgreSQL server: deploy/dagster.yaml, and the registry.

The instance is built from the shipped file with only the ``DAGSTER_PG_*`` variables pointing
at the test server, and the document registry gets a database of its own on the same server
(``RAG_REGISTRY_URL=postgresql+psycopg2://…``). The real flow then runs on it: a sensor tick
registers the documents in the registry and requests runs over the shards that have work; the
runs embed them with the packaged model into an embedded Qdrant Edge. The test reads Dagster's
own tables and the registry's tables in PostgreSQL to see that runs, shard materializations,
pool limits, documents, targets and history were stored there. The registry's SQL (integer
division grouping by shard, ``substr`` prefix matching, conditional updates, the in-place
upgrade of a first-release registry) is also exercised directly on PostgreSQL, not only SQLite.

The server: ``RAG_TEST_POSTGRES_URL`` if set (CI: ``scripts/ci_postgres.sh``), else a throwaway
cluster from Debian's ``postgresql`` binaries; the tests are skipped without them, except under
``CI``, where they fail.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml
from dagster_postgres import (
    PostgresEventLogStorage,
    PostgresRunStorage,
    PostgresScheduleStorage,
)

from rag_ingest.core.keys import key_hash, partition_key
from rag_ingest.core.registry import Known, Outcome, Registry, Scope
from rag_ingest.core.report import md_cell
from rag_ingest.core.requests import ShardRequest
from rag_ingest.core.s3 import S3Object
from rag_ingest.defs.ingestion.sensors import RANGE_END_TAG, RANGE_START_TAG
from rag_ingest.resources import DocumentRegistry
from rag_ingest_tests.helpers import (
    REPO,
    Harness,
    free_port,
    make_resources,
    make_settings,
    shard_range,
)
from rag_ingest_tests.pg import URL_ENV, PgServer, PostgresUnavailable, local_cluster
from rag_ingest_tests.pg import scratch_database as scratch_db

DEPLOY_CONFIG = REPO / "deploy" / "dagster.yaml"
ASSETS = ("raw_documents", "chunks", "embeddings", "qdrant_collection")
REGISTRY_TABLES = {"documents", "document_events", "targets", "shard_requests", "counters"}
# A bucket of its own with a fixed name: its documents' shards (of 16) are then fixed too.
BUCKET = "pg-e2e"
DOCUMENTS = {
    "pg/harbour-seals.md": "# Harbour seals\n\nSeals haul out on sandbanks at low tide.",
    "pg/sourdough.txt": "A sourdough starter needs flour, water and a warm kitchen.",
    "pg/lighthouses.html": (
        "<html><body><h1>Lighthouses</h1><p>Fresnel lenses bend light into a beam.</p>"
        "</body></html>"
    ),
}
SHARDS = ["6", "7", "8"]  # one document in each
PER_RUN = 2  # two runs for three documents: a range of two shards, then one
NOW = datetime(2026, 11, 28, tzinfo=UTC)


def _unavailable(exc: Exception) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"CI must test on PostgreSQL: {exc}")
    pytest.skip(str(exc))


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A real PostgreSQL server (given, or started here)."""
    url = os.environ.get(URL_ENV, "").strip()
    with ExitStack() as stack:
        if url:
            server = PgServer.from_url(url)
        else:
            try:
                server = stack.enter_context(local_cluster(free_port()))
            except PostgresUnavailable as exc:
                _unavailable(exc)
        yield server


@pytest.fixture(scope="session")
def postgres(pg_server: PgServer) -> Iterator[PgServer]:
    """A scratch database for Dagster's storage."""
    with scratch_db(pg_server) as db:
        yield db


@pytest.fixture()
def registry_db(pg_server: PgServer) -> Iterator[PgServer]:
    """An empty database of its own for the document registry."""
    with ExitStack() as stack:
        try:
            db = stack.enter_context(scratch_db(pg_server, own=True))
        except PostgresUnavailable as exc:
            _unavailable(exc)
        yield db


@pytest.fixture()
def pg_registry(registry_db: PgServer) -> Iterator[Registry]:
    registry = Registry(registry_db.url)
    try:
        yield registry
    finally:
        registry.close()


@pytest.fixture()
def pg_home(postgres: PgServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A DAGSTER_HOME holding deploy/dagster.yaml as shipped; the server comes from env vars."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY_CONFIG, home / "dagster.yaml")
    for name, value in postgres.dagster_env().items():
        monkeypatch.setenv(name, value)
    return home


@pytest.fixture()
def pg_instance(pg_home: Path) -> Iterator[dg.DagsterInstance]:
    instance = dg.DagsterInstance.from_config(str(pg_home))
    try:
        yield instance
    finally:
        # Not `with instance:`: in dagster 1.13.27 its __exit__ leaves the instance's state
        # storage in a context variable, which breaks definitions built by later tests.
        instance.dispose()


def _deploy_config() -> dict[str, Any]:
    loaded = yaml.safe_load(DEPLOY_CONFIG.read_text())
    assert isinstance(loaded, dict)
    return loaded


def _tables(db: PgServer) -> set[str]:
    rows = db.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
    )
    return {str(row[0]) for row in rows}


def test_deploy_config_builds_a_postgres_instance_with_queued_runs(
    pg_instance: dg.DagsterInstance, postgres: PgServer
) -> None:
    config = _deploy_config()
    assert isinstance(pg_instance.run_storage, PostgresRunStorage)
    assert isinstance(pg_instance.event_log_storage, PostgresEventLogStorage)
    assert isinstance(pg_instance.schedule_storage, PostgresScheduleStorage)
    # The driver named in the config, and the server/database of the env vars.
    url = pg_instance.run_storage.postgres_url
    assert url.startswith("postgresql+psycopg2://")
    assert url.endswith(f"@{postgres.host}:{postgres.port}/{postgres.dbname}")
    # dagster-postgres created its tables in the database on first connection.
    assert {"runs", "event_logs", "asset_keys", "concurrency_limits"} <= _tables(postgres)

    assert isinstance(pg_instance.run_coordinator, dg.QueuedRunCoordinator)
    runs = config["concurrency"]["runs"]
    queue = pg_instance.get_concurrency_config().run_queue_config
    assert queue is not None
    assert queue.max_concurrent_runs == runs["max_concurrent_runs"] > 1
    assert [(limit["key"], limit["limit"]) for limit in queue.tag_concurrency_limits] == [
        (limit["key"], limit["limit"]) for limit in runs["tag_concurrency_limits"]
    ]
    assert pg_instance.global_op_concurrency_default_limit == 1  # qdrant stays serialized
    assert pg_instance.event_log_storage.supports_global_concurrency_limits
    assert pg_instance.run_retries_enabled and pg_instance.run_retries_max_retries >= 1
    assert pg_instance.run_monitoring_enabled
    assert not pg_instance.telemetry_enabled


def test_sensor_and_runs_record_everything_in_postgres(
    pg_instance: dg.DagsterInstance,
    postgres: PgServer,
    registry_db: PgServer,
    s3_endpoint: str,
    s3_client: Any,
    tmp_path: Path,
) -> None:
    s3_client.create_bucket(Bucket=BUCKET)
    for key, text in DOCUMENTS.items():
        s3_client.put_object(Bucket=BUCKET, Key=key, Body=text.encode())
    expected = sorted(partition_key(BUCKET, key) for key in DOCUMENTS)
    settings = make_settings(BUCKET, tmp_path / "data", documents_per_run=PER_RUN)
    layout = settings.shard_layout
    assert sorted({layout.of(d) for d in expected}, key=layout.index) == SHARDS
    resources = make_resources(s3_endpoint, settings)
    # The registry on PostgreSQL, as RAG_REGISTRY_URL configures it in production.
    resources["registry"] = DocumentRegistry(url=registry_db.url)
    harness = Harness(pg_instance, settings, resources)

    tick = harness.tick()
    requests = tick.run_requests or []
    assert [(r.tags[RANGE_START_TAG], r.tags[RANGE_END_TAG]) for r in requests] == [
        ("6", "7"),
        ("8", "8"),
    ]
    # The sensor registered the documents in the registry's own database (read back through a
    # new connection) with their place in the key space, and remembered what it requested.
    assert _tables(registry_db) >= REGISTRY_TABLES
    rows = registry_db.query("SELECT doc_id, status, key_hash, target_id FROM documents")
    assert sorted(rows) == [(d, "pending", key_hash(d), None) for d in expected]
    assert registry_db.query(
        "SELECT shard, attempts FROM shard_requests WHERE shards = %s ORDER BY shard",
        (layout.count,),
    ) == [(int(s, 16), 0) for s in SHARDS]
    # Dagster's partitions are the fixed shards: nothing is registered with the instance.
    assert postgres.query("SELECT count(*) FROM dynamic_partitions") == [(0,)]

    runs = harness.launch(tick)
    assert [run.success for run in runs] == [True, True]

    # Qdrant holds every document's chunks, as the registry recorded them, in the live target.
    registry = harness.registry
    records = registry.lookup(expected)
    assert {r.status for r in records.values()} == {"ok"}
    with harness.store() as store:
        location = store.location
    target = registry.target(location, settings.physical_collection)
    assert target is not None and target.state == "live"
    assert {r.target_id for r in records.values()} == {target.id}
    points = harness.points()
    assert len(points) == sum(r.chunk_count or 0 for r in records.values()) >= len(DOCUMENTS)
    assert {p.payload["metadata"]["doc_id"] for p in points} == set(expected)
    assert {p.payload["metadata"]["source"] for p in points} == {
        f"s3://{BUCKET}/{key}" for key in DOCUMENTS
    }
    # ... and the registry's tables in PostgreSQL say the same.
    assert registry_db.query("SELECT id, location, collection, state FROM targets") == [
        (target.id, location, settings.physical_collection, "live")
    ]
    rows = registry_db.query("SELECT doc_id, status, target_id, run_id FROM documents")
    assert {(d, s, t) for d, s, t, _ in rows} == {(d, "ok", target.id) for d in expected}
    assert {run_id for *_, run_id in rows} == {run.run_id for run in runs}
    history = registry_db.query("SELECT doc_id, event FROM document_events ORDER BY id")
    assert sorted(history) == sorted(
        [(d, "registered") for d in expected] + [(d, "ingested") for d in expected]
    )

    # Dagster's API on this instance, and its tables in PostgreSQL, agree: each run
    # materialized every shard of its range, and nothing else.
    assert [shard_range(run) for run in runs] == [("6", "7"), ("8", "8")]
    run_rows = postgres.query("SELECT run_id, status FROM runs")
    assert sorted(run_rows) == sorted((run.run_id, "SUCCESS") for run in runs)
    for asset in ASSETS:
        materialized = pg_instance.get_materialized_partitions(dg.AssetKey(asset))
        assert sorted(materialized) == SHARDS, asset
        rows = postgres.query(
            "SELECT partition FROM event_logs "
            "WHERE dagster_event_type = 'ASSET_MATERIALIZATION' AND asset_key = %s",
            (dg.AssetKey(asset).to_string(),),
        )
        assert sorted(str(row[0]) for row in rows) == SHARDS, asset
    for key in DOCUMENTS:
        shard = layout.of(partition_key(BUCKET, key))
        record = pg_instance.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=dg.AssetKey("qdrant_collection"), asset_partitions=[shard]
            ),
            limit=1,
        ).records[0]
        assert record.asset_materialization is not None
        metadata = record.asset_materialization.metadata
        assert metadata["ingested"].value == 1, shard
        assert md_cell(f"s3://{BUCKET}/{key}") in str(metadata["changes"].value), shard
    # The steps claimed pool slots in PostgreSQL: both pools exist, at the default limit of 1.
    rows = postgres.query('SELECT concurrency_key, "limit" FROM concurrency_limits')
    limits = {str(key): limit for key, limit in rows}
    assert limits == {"embedder": 1, "qdrant": 1}
    assert postgres.query("SELECT count(*) FROM concurrency_slots WHERE run_id IS NOT NULL") == [
        (0,)
    ]

    # Nothing changed in S3: the next tick requests nothing and registers nothing.
    again = harness.tick()
    assert not again.run_requests
    assert registry_db.query("SELECT count(*) FROM documents") == [(len(DOCUMENTS),)]
    assert registry.work_count(settings.scope, target.id) == 0
    assert len(postgres.query("SELECT run_id FROM runs")) == len(runs)


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
        assert {s: n for s, (n, _) in work.items()} == expected, shards
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
        partition_key("bkt", k) for k in ("日本語/c.md", "日本/d.md")
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
    registry.mark_deleting([doc])
    assert registry.record([Outcome(doc, "ok", etag="e2", chunk_count=3)], second.id) == set()
    assert registry.mark_removed([doc], "r2") == {doc}
    assert registry.mark_removed([doc], "r3") == set()  # only from 'deleting'
    assert registry.lookup([doc])[doc].status == "removed"
    assert [e.event for e in registry.history(doc)] == [
        "registered",
        "ingested",
        "changed",
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
    ids = {key: partition_key("bkt", key) for key in old}
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
        assert _tables(registry_db) >= REGISTRY_TABLES
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
        assert {"ix_documents_seq", "ix_documents_key_hash"} <= indexes
        records = registry.lookup(ids.values())
        assert {r.key: (r.status, r.key_hash, r.target_id) for r in records.values()} == {
            key: (status, key_hash(ids[key]), None) for key, (status, _) in old.items()
        }
        # Not ingested in any target yet: the next reconcile re-checks every live document.
        target = registry.new_target("edge:/x", "documents__fp", "documents", "fp", "{}")
        assert registry.work_count(Scope("bkt"), target.id) == 3
        width = 65536 // 16
        work = registry.work_by_hash_bucket(Scope("bkt"), target.id, width)
        assert sum(n for n, _ in work.values()) == 3
        # Change numbers go on from the old counter; history starts with the upgrade.
        (new,) = registry.register([_obj("new.md")])
        assert registry.lookup([new])[new].seq == 5
        assert registry.history(ids["ok.md"]) == []
        # A second open finds nothing left to upgrade.
        Registry(registry_db.url).close()
    finally:
        registry.close()


def test_deploy_config_keys_are_those_documented() -> None:
    """Every env var the config reads is documented in docs/deployment.md."""
    text = DEPLOY_CONFIG.read_text()
    env_vars = sorted(set(_env_names(_deploy_config())))
    assert env_vars == sorted(PgServer("h", 1, "u", "p", "d").dagster_env())
    docs = (REPO / "docs" / "deployment.md").read_text()
    assert all(name in docs for name in env_vars)
    assert "postgresql+psycopg2" in text and "postgresql+psycopg2" in docs


def _env_names(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        if set(node) == {"env"}:
            yield str(node["env"])
        for value in node.values():
            yield from _env_names(value)
    elif isinstance(node, list):
        for value in node:
            yield from _env_names(value)
