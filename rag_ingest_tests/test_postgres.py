"""The production setup on a real PostgreSQL server: deploy/dagster.yaml, and the registry.

The instance is built from the shipped file with only the ``DAGSTER_PG_*`` variables pointing
at the test server, and the document registry gets a database of its own on the same server
(``RAG_REGISTRY_URL=postgresql+psycopg2://…``). The real flow then runs on it: a sensor tick
registers the documents in the registry and requests runs over the shards that have work; the
runs embed them with the packaged model into an embedded Qdrant Edge. The test reads Dagster's
own tables and the registry's tables in PostgreSQL to see that runs, shard materializations,
run queue limits, documents, targets and history were stored there. The registry's SQL (integer
division grouping by shard, ``substr`` prefix matching, conditional updates, the in-place
upgrade of a first-release registry) is also exercised directly on PostgreSQL, not only SQLite.

The server: ``RAG_TEST_POSTGRES_URL`` if set (CI: ``scripts/ci_postgres.sh``), else a throwaway
cluster from Debian's ``postgresql`` binaries; the tests are skipped without them, except under
``CI``, where they fail.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from dagster_postgres import (
    PostgresEventLogStorage,
    PostgresRunStorage,
    PostgresScheduleStorage,
)

from rag_ingest.cli.dev import DAGSTER_ENV
from rag_ingest.core.keys import document_id, key_hash
from rag_ingest.core.md_table import md_cell
from rag_ingest.defs.ingestion.sensors import RANGE_END_TAG, RANGE_START_TAG
from rag_ingest.resources import DocumentRegistry
from rag_ingest.testing import REPO
from rag_ingest.testing.harness import Harness, make_resources, make_settings, shard_range
from rag_ingest.testing.postgres import REGISTRY_TABLES, PgServer, public_tables

DEPLOY_CONFIG = REPO / "deploy" / "dagster.yaml"
ASSETS = ("raw_documents", "chunks", "embeddings", "qdrant_collection")
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


@pytest.fixture()
def pg_home(postgres: PgServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A DAGSTER_HOME holding deploy/dagster.yaml as shipped; the server comes from env vars."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY_CONFIG, home / "dagster.yaml")
    for name, value in {**postgres.dagster_env(), **DAGSTER_ENV}.items():
        monkeypatch.setenv(name, value)  # DAGSTER_ENV: batched event writes, as deployed
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
    assert {"runs", "event_logs", "asset_keys", "concurrency_limits"} <= public_tables(postgres)

    assert isinstance(pg_instance.run_coordinator, dg.QueuedRunCoordinator)
    runs = config["concurrency"]["runs"]
    queue = pg_instance.get_concurrency_config().run_queue_config
    assert queue is not None
    assert queue.max_concurrent_runs == runs["max_concurrent_runs"] > 1
    assert [(limit["key"], limit["limit"]) for limit in queue.tag_concurrency_limits] == [
        (limit["key"], limit["limit"]) for limit in runs["tag_concurrency_limits"]
    ]
    # No op-level pools (their slot claim can hang a step forever): the project's locks
    # serialize the Qdrant writers and CPU embedding instead (defs/locks.py).
    assert "pools" not in config["concurrency"]
    assert pg_instance.global_op_concurrency_default_limit is None
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
    capfd: pytest.CaptureFixture[str],
) -> None:
    s3_client.create_bucket(Bucket=BUCKET)
    for key, text in DOCUMENTS.items():
        s3_client.put_object(Bucket=BUCKET, Key=key, Body=text.encode())
    expected = sorted(document_id(BUCKET, key) for key in DOCUMENTS)
    settings = make_settings(BUCKET, tmp_path / "data", documents_per_run=PER_RUN)
    layout = settings.shard_layout
    assert sorted({layout.of(d) for d in expected}, key=layout.index) == SHARDS
    resources = make_resources(s3_endpoint, settings)
    # The registry on PostgreSQL, as RAG_REGISTRY_URL configures it in production.
    resources["registry"] = DocumentRegistry(url=registry_db.url)
    harness = Harness(pg_instance, settings, resources)

    tick = harness.tick()
    requests = tick.run_requests or []
    # Two runs (PER_RUN documents each at most), reaching the key space's edges.
    assert [(r.tags[RANGE_START_TAG], r.tags[RANGE_END_TAG]) for r in requests] == [
        ("0", "7"),
        ("8", "f"),
    ]
    # The sensor registered the documents in the registry's own database (read back through a
    # new connection) with their place in the key space, and remembered what it requested.
    assert public_tables(registry_db) >= REGISTRY_TABLES
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
    # The per-shard materializations went in as batches (DAGSTER_EVENT_BATCH_SIZE): Dagster
    # says so on stderr when a batch write fails and it falls back to single writes.
    assert "storing event batch" not in capfd.readouterr().err

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
    assert [shard_range(run) for run in runs] == [("0", "7"), ("8", "f")]
    run_rows = postgres.query("SELECT run_id, status FROM runs")
    assert sorted(run_rows) == sorted((run.run_id, "SUCCESS") for run in runs)
    every_shard = sorted(layout.keys())  # the runs' ranges cover the whole key space
    for asset in ASSETS:
        materialized = pg_instance.get_materialized_partitions(dg.AssetKey(asset))
        assert sorted(materialized) == every_shard, asset
        rows = postgres.query(
            "SELECT partition FROM event_logs "
            "WHERE dagster_event_type = 'ASSET_MATERIALIZATION' AND asset_key = %s",
            (dg.AssetKey(asset).to_string(),),
        )
        assert sorted(str(row[0]) for row in rows) == every_shard, asset
    for key in DOCUMENTS:
        shard = layout.of(document_id(BUCKET, key))
        record = pg_instance.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=dg.AssetKey("qdrant_collection"), asset_partitions=[shard]
            ),
            limit=1,
        ).records[0]
        assert record.asset_materialization is not None
        metadata = record.asset_materialization.metadata
        assert metadata["ingested"].value == 1, shard
        assert "run_lock_wait_seconds" in metadata, shard  # it held the qdrant lock
        assert md_cell(f"s3://{BUCKET}/{key}") in str(metadata["changes"].value), shard
    # No step claimed a pool slot: no concurrency key exists, none is left assigned.
    assert postgres.query("SELECT count(*) FROM concurrency_limits") == [(0,)]
    assert postgres.query("SELECT count(*) FROM concurrency_slots") == [(0,)]

    # Nothing changed in S3: the next tick requests nothing and registers nothing.
    again = harness.tick()
    assert not again.run_requests
    assert registry_db.query("SELECT count(*) FROM documents") == [(len(DOCUMENTS),)]
    assert registry.work_count(settings.scope, target.id) == 0
    assert len(postgres.query("SELECT run_id FROM runs")) == len(runs)


def test_deploy_config_keys_are_those_documented() -> None:
    """Every env var the config reads is documented in docs/deployment.md."""
    text = DEPLOY_CONFIG.read_text()
    env_vars = sorted(set(_env_names(_deploy_config())))
    assert env_vars == sorted(PgServer("h", 1, "u", "p", "d").dagster_env())
    docs = (REPO / "docs" / "deployment.md").read_text()
    assert all(name in docs for name in env_vars)
    assert "postgresql+psycopg2" in text and "postgresql+psycopg2" in docs
    # The switches `make dev` gives Dagster's processes are the ones a deployment is told to set.
    for name, value in DAGSTER_ENV.items():
        assert f"{name}={value}" in docs, name


def _env_names(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        if set(node) == {"env"}:
            yield str(node["env"])
        for value in node.values():
            yield from _env_names(value)
    elif isinstance(node, list):
        for value in node:
            yield from _env_names(value)
