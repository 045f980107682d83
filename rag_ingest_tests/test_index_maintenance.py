"""Index maintenance (issue 18 item 8): ingestion runs only write; the ``index_maintenance``
asset builds the Edge index, requested by its sensor once the recorded backlog reaches the
threshold, and by the daily monitoring job."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import numpy as np

from rag_ingest.core.config import Settings
from rag_ingest.core.vectorstore.edge import (
    DEFAULT_INDEXING_THRESHOLD_POINTS,
    EdgeStore,
    read_index_status,
)
from rag_ingest.definitions import build_definitions
from rag_ingest.defs.maintenance.index import JOB, build_index_maintenance, build_index_sensor
from rag_ingest.resources import VectorStoreResource
from rag_ingest_tests.vectorstores import make_doc

DIM = 8


def _settings(tmp_path: Path) -> Settings:
    return Settings(bucket="b", prefixes=("docs/",), data_dir=tmp_path)


def _write(settings: Settings, points: int, start: int = 0, alias: bool = False) -> None:
    rng = np.random.default_rng(start)
    docs = [
        make_doc(f"docs/{start + i}.md", chunks=100, rng=rng, dim=DIM) for i in range(points // 100)
    ]
    with EdgeStore(settings.qdrant_path) as store:
        store.ensure_collection(settings.physical_collection, DIM)
        store.replace_documents(settings.physical_collection, docs)
        if alias:
            store.set_alias(settings.collection, settings.physical_collection)


def _tick(settings: Settings) -> dg.SensorResult:
    sensor = build_index_sensor(settings)
    with dg.DagsterInstance.ephemeral() as instance:
        result = sensor(dg.build_sensor_context(instance=instance))
    assert isinstance(result, dg.SensorResult)
    return result


def test_the_sensor_requests_a_build_only_once_the_backlog_reaches_the_threshold(
    tmp_path: Path,
) -> None:
    settings = _settings(tmp_path)
    assert _tick(settings).skip_reason is not None  # no store yet
    below = DEFAULT_INDEXING_THRESHOLD_POINTS - 100
    _write(settings, below, alias=True)
    skipped = _tick(settings)
    assert not skipped.run_requests
    assert f"{settings.physical_collection}: {below}" in str(skipped.skip_reason)
    _write(settings, 100, start=below // 100)  # another run: the backlog reaches the threshold
    [request] = _tick(settings).run_requests or []
    assert request.run_key and settings.physical_collection in request.run_key
    # Built: nothing more to ask for.
    with EdgeStore(settings.qdrant_path) as store:
        store.optimize(settings.physical_collection)
    assert not _tick(settings).run_requests
    # A server indexes by itself: the sensor never asks.
    server = settings.replace(qdrant_engine="server")
    assert server.qdrant_engine == "server" and not _tick(server).run_requests


def test_the_asset_builds_the_index_and_reports_it(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    _write(settings, DEFAULT_INDEXING_THRESHOLD_POINTS, alias=True)
    assert read_index_status(settings.qdrant_path)[settings.physical_collection].backlog == 10_000
    result = dg.materialize(
        [build_index_maintenance(settings)],
        resources={"vectors": VectorStoreResource(path=str(settings.qdrant_path))},
    )
    [event] = result.asset_materializations_for_node("index_maintenance")
    meta = {k: v.value for k, v in event.metadata.items()}
    assert meta["collections"] == [settings.physical_collection]
    assert (meta["backlog_before"], meta["backlog_after"], meta["points_indexed"]) == (
        10_000,
        0,
        10_000,
    )
    assert isinstance(event.metadata["seconds"], dg.FloatMetadataValue)
    assert read_index_status(settings.qdrant_path)[settings.physical_collection].backlog == 0


def test_the_daily_monitoring_job_builds_the_index_too(tmp_path: Path) -> None:
    defs = build_definitions(_settings(tmp_path))
    job = defs.resolve_job_def("monitor_collection")
    assert "index_maintenance" in {n.name for n in job.graph.node_defs}
    index_job = defs.resolve_job_def(JOB)
    assert {n.name for n in index_job.graph.node_defs} == {"index_maintenance"}
    node = defs.resolve_asset_graph().get(dg.AssetKey("index_maintenance"))
    assert node.group_name == "maintenance" and node.kinds == {"qdrant"}


def test_the_sensor_watches_the_collection_the_alias_serves(tmp_path: Path) -> None:
    """During a re-index the alias serves an older version: its backlog counts too."""
    settings = _settings(tmp_path)
    rng = np.random.default_rng(1)
    docs = [make_doc(f"docs/{i}.md", chunks=100, rng=rng, dim=DIM) for i in range(100)]
    with EdgeStore(settings.qdrant_path) as store:
        store.ensure_collection("older", DIM)
        store.replace_documents("older", docs)
        store.set_alias(settings.collection, "older")
    [request] = _tick(settings).run_requests or []
    assert request.run_key == f"index:older:10000:{DEFAULT_INDEXING_THRESHOLD_POINTS}"
