import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from rag_ingest.core.config import Settings
from rag_ingest.definitions import build_definitions
from rag_ingest.resources import LocalEmbedder
from rag_ingest.testing import REPO


def test_definitions_load_with_one_sensor_per_prefix(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("RAG_S3_BUCKET", "my-bucket")
    monkeypatch.setenv("RAG_S3_PREFIXES", "docs/,reports/")
    monkeypatch.setenv("RAG_SENSOR_INTERVAL_SECONDS", "45")
    defs = build_definitions(Settings.from_env())
    dg.Definitions.validate_loadable(defs)
    sensors = list(defs.sensors or [])
    assert sorted(s.name for s in sensors) == [
        "index_backlog_sensor",
        "s3_sensor_docs",
        "s3_sensor_reports",
    ]
    assert {s.minimum_interval_seconds for s in sensors} == {45}
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    ingestion = {"raw_documents", "chunks", "embeddings", "qdrant_collection"}
    monitoring = {"collection_health", "embedding_cost_report", "intermediate_files"}
    assert keys == ingestion | monitoring | {"index_maintenance"}
    assert graph.get(dg.AssetKey("qdrant_collection")).parent_keys == {dg.AssetKey("embeddings")}
    for name in ingestion:
        node = graph.get(dg.AssetKey(name))
        assert node.partitions_def is not None and node.backfill_policy is not None
        assert node.partitions_def.get_partition_keys() == [f"{i:02x}" for i in range(256)]
        assert node.backfill_policy.max_partitions_per_run == 16


def test_every_setting_reaches_the_definitions_built_from_it() -> None:
    settings = Settings(
        bucket="b",
        prefixes=("x/",),
        shards=16,
        shards_per_backfill_run=4,
        sensor_interval_seconds=7,
        monitor_cron="5 4 * * *",
        collection="kb",
        embed_backend="onnx",
    )
    defs = build_definitions(settings)
    graph = defs.resolve_asset_graph()
    node = graph.get(dg.AssetKey("raw_documents"))
    assert node.partitions_def is not None and node.backfill_policy is not None
    assert len(node.partitions_def.get_partition_keys()) == 16
    assert node.backfill_policy.max_partitions_per_run == 4
    sensors = {s.name: s for s in defs.sensors or []}
    assert sorted(sensors) == ["index_backlog_sensor", "s3_sensor_x"]
    assert {s.minimum_interval_seconds for s in sensors.values()} == {7}
    [schedule] = defs.schedules or []
    assert isinstance(schedule, dg.ScheduleDefinition) and schedule.cron_schedule == "5 4 * * *"
    resources = defs.resources or {}
    # The alias has one owner, the settings: the resource carries no second copy of it.
    assert "collection" not in type(resources["vectors"]).model_fields
    assert settings.physical_collection.startswith("kb__")
    assert isinstance(resources["embedder"], LocalEmbedder)
    assert resources["embedder"].backend == "onnx"


def _stdout(command: list[str]) -> str:
    """What ``command`` prints, run from the repository with this environment."""
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
        timeout=180,
        env=dict(os.environ),
    )
    return done.stdout


def test_dg_loads_the_same_definitions_as_build_definitions(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("RAG_S3_BUCKET", "b")
    monkeypatch.setenv("RAG_S3_PREFIXES", "docs/")
    monkeypatch.setenv("RAG_SHARDS", "16")
    code = (
        "import json\n"
        "from rag_ingest.definitions import defs\n"
        "d = defs()\n"
        "print(json.dumps({'assets': sorted(k.to_user_string() for k in "
        "d.resolve_all_asset_keys()), 'jobs': sorted(j.name for j in d.resolve_all_job_defs()), "
        "'sensors': sorted(s.name for s in d.sensors or []), "
        "'resources': sorted(d.resources or {})}))\n"
    )
    loaded = json.loads(_stdout([sys.executable, "-c", code]).strip().splitlines()[-1])
    built = build_definitions(Settings.from_env())
    assert loaded == {
        "assets": sorted(k.to_user_string() for k in built.resolve_all_asset_keys()),
        "jobs": sorted(j.name for j in built.resolve_all_job_defs()),
        "sensors": sorted(s.name for s in built.sensors or []),
        "resources": sorted(built.resources or {}),
    }
    assert {"reingest_documents", "build_vector_index"} <= set(loaded["jobs"])
    assert loaded["sensors"] == ["index_backlog_sensor", "s3_sensor_docs"]

    # The `dg` CLI itself ([tool.dg] in pyproject), as `dg dev` loads the project.
    via_dg = json.loads(
        _stdout([str(Path(sys.executable).with_name("dg")), "list", "defs", "--json"])
    )
    assert sorted(a["asset_key"] for a in via_dg["assets"]) == loaded["assets"]
    # (dg leaves out Dagster's implicit __ASSET_JOB)
    assert sorted(j["name"] for j in via_dg["jobs"]) == [
        j for j in loaded["jobs"] if not j.startswith("__")
    ]
    assert sorted(s["name"] for s in via_dg["sensors"]) == loaded["sensors"]
    assert sorted(r["name"] for r in via_dg["resources"]) == loaded["resources"]


def test_secrets_and_locations_are_env_vars_not_literals(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("RAG_S3_BUCKET", "b")
    monkeypatch.setenv("RAG_QDRANT_URL", "https://qdrant.example:6333")
    monkeypatch.setenv("RAG_QDRANT_API_KEY", "very-secret-key")
    defs = build_definitions(Settings.from_env())
    qdrant = defs.resources["vectors"]  # type: ignore[index]
    assert qdrant.engine == "server" and isinstance(qdrant.url, dg.EnvVar)
    assert (
        isinstance(qdrant.api_key, dg.EnvVar)
        and qdrant.api_key.env_var_name == "RAG_QDRANT_API_KEY"
    )
    # The bucket is not a secret and has one owner, Settings (the sensors' scope names it too).
    assert defs.resources["s3_source"].bucket == "b"  # type: ignore[index]
    assert "very-secret-key" not in repr(defs.resources)


def test_loading_the_code_location_does_not_import_the_model_stack() -> None:
    code = (
        "import sys, rag_ingest.definitions as d\n"
        "names = ('torch', 'sentence_transformers', 'transformers')\n"
        "heavy = [m for m in names if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    env = {**os.environ, "RAG_S3_BUCKET": "b"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        check=True,
        timeout=120,
    )
    assert out.stdout.strip() == ""


def test_bad_settings_fail_loudly() -> None:
    with pytest.raises(ValueError, match="RAG_SENSOR_INTERVAL_SECONDS"):
        Settings.from_env({"RAG_SENSOR_INTERVAL_SECONDS": "soon"})
    with pytest.raises(ValueError, match="RAG_EMBEDDER"):
        Settings.from_env({"RAG_EMBEDDER": "gpu-please"})
    with pytest.raises(ValueError, match="RAG_SHARDS"):
        Settings.from_env({"RAG_SHARDS": "100"})
    with pytest.raises(ValueError, match="RAG_STORAGE_BASE"):
        Settings.from_env(
            {"RAG_S3_BUCKET": "b", "RAG_S3_PREFIXES": "in/", "RAG_STORAGE_BASE": "s3://b/in/tmp"}
        )
    # The same bucket outside the watched prefixes is fine.
    Settings.from_env(
        {"RAG_S3_BUCKET": "b", "RAG_S3_PREFIXES": "in/", "RAG_STORAGE_BASE": "s3://b/work"}
    )
    with pytest.raises(ValueError, match="RAG_QDRANT_COLLECTION"):
        Settings.from_env({"RAG_QDRANT_COLLECTION": "no spaces please"})


def test_monitoring_schedule_is_daily_by_default_and_configurable(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("RAG_S3_BUCKET", "my-bucket")
    monkeypatch.delenv("RAG_MONITOR_CRON", raising=False)
    [schedule] = build_definitions(Settings.from_env()).schedules or []
    assert isinstance(schedule, dg.ScheduleDefinition)
    assert schedule.cron_schedule == "0 6 * * *"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedule.job_name == "monitor_collection"
    monkeypatch.setenv("RAG_MONITOR_CRON", "0 * * * *")
    [hourly] = build_definitions(Settings.from_env()).schedules or []
    assert isinstance(hourly, dg.ScheduleDefinition) and hourly.cron_schedule == "0 * * * *"


def test_embed_backend_is_wired_from_the_environment(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("RAG_S3_BUCKET", "my-bucket")
    monkeypatch.setenv("RAG_EMBEDDER", "local")
    monkeypatch.setenv("RAG_EMBED_BACKEND", "openvino")
    embedder = (build_definitions(Settings.from_env()).resources or {})["embedder"]
    assert isinstance(embedder, LocalEmbedder) and embedder.backend == "openvino"
    monkeypatch.setenv("RAG_EMBED_BACKEND", "cuda-please")
    with pytest.raises(ValueError, match="allowed: torch, onnx"):
        Settings.from_env()


def test_building_the_definitions_raises_no_backfill_policy_warning() -> None:
    # Outside pytest's own filters, every warning shown: the filter set on importing
    # rag_ingest.definitions must cover build_definitions.
    code = (
        "from rag_ingest.core.config import Settings\n"
        "from rag_ingest.definitions import build_definitions\n"
        "build_definitions(Settings.from_env())\n"
        "print('built')\n"
    )
    env = {**os.environ, "RAG_S3_BUCKET": "b"}
    out = subprocess.run(
        [sys.executable, "-W", "always", "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "built" and "backfill_policy" not in out.stderr
