"""The production instance config (deploy/dagster.yaml) on a real PostgreSQL server.

The instance is built from the shipped file with only the ``DAGSTER_PG_*`` variables pointing
at the test server, then runs the real flow: a sensor tick registers the documents as dynamic
partitions, its runs embed them with the packaged model into an embedded Qdrant, and the test
reads Dagster's own tables in PostgreSQL to see that partitions, runs, materializations and pool
limits were stored there.

The server: ``RAG_TEST_POSTGRES_URL`` if set (CI: ``scripts/ci_postgres.sh``), else a throwaway
cluster from Debian's ``postgresql`` binaries; the test is skipped without them, except under
``CI``, where it fails.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import ExitStack
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
from rag_ingest.partitions import DOCUMENTS_PARTITION

from rag_ingest.core.keys import partition_key
from rag_ingest_tests.conftest import REPO, free_port
from rag_ingest_tests.helpers import Harness, make_resources
from rag_ingest_tests.pg import URL_ENV, PgServer, PostgresUnavailable, local_cluster
from rag_ingest_tests.pg import scratch_database as scratch_db

DEPLOY_CONFIG = REPO / "deploy" / "dagster.yaml"
ASSETS = ("raw_documents", "chunks", "embeddings", "qdrant_collection")
DOCUMENTS = {
    "pg/harbour-seals.md": "# Harbour seals\n\nSeals haul out on sandbanks at low tide.",
    "pg/sourdough.txt": "A sourdough starter needs flour, water and a warm kitchen.",
    "pg/lighthouses.html": (
        "<html><body><h1>Lighthouses</h1><p>Fresnel lenses bend light into a beam.</p>"
        "</body></html>"
    ),
}
PER_RUN = 2  # two runs for three documents: a range of two, then one


@pytest.fixture(scope="session")
def postgres() -> Iterator[PgServer]:
    """A scratch database on a real PostgreSQL server (given, or started here)."""
    url = os.environ.get(URL_ENV, "").strip()
    with ExitStack() as stack:
        if url:
            server = PgServer.from_url(url)
        else:
            try:
                server = stack.enter_context(local_cluster(free_port()))
            except PostgresUnavailable as exc:
                if os.environ.get("CI"):
                    pytest.fail(f"CI must test on PostgreSQL: {exc}")
                pytest.skip(str(exc))
        yield stack.enter_context(scratch_db(server))


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
    tables = {
        row[0]
        for row in postgres.query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )
    }
    assert {"runs", "event_logs", "dynamic_partitions", "concurrency_limits"} <= tables

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
    s3_endpoint: str,
    s3_client: Any,
    bucket: str,
    tmp_path: Path,
) -> None:
    for key, text in DOCUMENTS.items():
        s3_client.put_object(Bucket=bucket, Key=key, Body=text.encode())
    expected = sorted(partition_key(bucket, key) for key in DOCUMENTS)
    harness = Harness(
        pg_instance,
        make_resources(s3_endpoint, bucket, tmp_path / "data"),
        partitions_per_run=PER_RUN,
    )

    tick = harness.tick()
    requests = tick.run_requests or []
    assert len(requests) == 2
    # The sensor registered the partitions in PostgreSQL, read back through a new connection.
    stored = postgres.query(
        "SELECT partition FROM dynamic_partitions WHERE partitions_def_name = %s",
        (DOCUMENTS_PARTITION,),
    )
    assert sorted(str(row[0]) for row in stored) == expected

    runs = harness.launch(tick)
    assert [run.success for run in runs] == [True, True]

    # Qdrant holds every document's chunks, as the registry recorded them.
    records = harness.registry.lookup(expected)
    assert {r.status for r in records.values()} == {"ok"}
    points = harness.points()
    assert len(points) == sum(r.chunk_count or 0 for r in records.values()) >= len(DOCUMENTS)
    assert {p.payload["metadata"]["doc_id"] for p in points} == set(expected)
    assert {p.payload["metadata"]["source"] for p in points} == {
        f"s3://{bucket}/{key}" for key in DOCUMENTS
    }

    # Dagster's API on this instance, and its tables in PostgreSQL, agree.
    assert sorted(pg_instance.get_dynamic_partitions(DOCUMENTS_PARTITION)) == expected
    run_rows = postgres.query("SELECT run_id, status FROM runs")
    assert sorted(run_rows) == sorted((run.run_id, "SUCCESS") for run in runs)
    for asset in ASSETS:
        materialized = pg_instance.get_materialized_partitions(dg.AssetKey(asset))
        assert sorted(materialized) == expected, asset
        rows = postgres.query(
            "SELECT partition FROM event_logs "
            "WHERE dagster_event_type = 'ASSET_MATERIALIZATION' AND asset_key = %s",
            (dg.AssetKey(asset).to_string(),),
        )
        assert sorted(str(row[0]) for row in rows) == expected, asset
    record = pg_instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=dg.AssetKey("qdrant_collection"), asset_partitions=[expected[0]]
        ),
        limit=1,
    ).records[0]
    assert record.asset_materialization is not None
    assert record.asset_materialization.metadata["source"].value in {
        f"s3://{bucket}/{key}" for key in DOCUMENTS
    }
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
    assert sorted(pg_instance.get_dynamic_partitions(DOCUMENTS_PARTITION)) == expected
    assert len(postgres.query("SELECT run_id FROM runs")) == len(runs)


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
