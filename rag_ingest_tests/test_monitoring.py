"""Asset checks of the ingestion runs, the scheduled health/drift/cost job, and the CLI,
on real local components: moto S3, embedded Qdrant, the packaged model."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pytest

from rag_ingest.cli import main as cli_main
from rag_ingest.core.keys import document_id
from rag_ingest.core.records import DocumentInfo
from rag_ingest.core.text.chunking import Chunk
from rag_ingest.core.vectorstore import DocumentPoints, open_vector_store
from rag_ingest.defs.monitoring.usage import embedding_workload
from rag_ingest.resources import EmbedStats, LocalEmbedder
from rag_ingest.testing.harness import Harness, make_resources, make_settings

KITCHEN = {
    "kitchen/bread.md": "# Bread\n\nKnead the dough for ten minutes, let it rise, then bake.",
    "kitchen/soup.txt": "Simmer onions, carrots and celery in stock for a vegetable soup.",
    "kitchen/pasta.md": "# Pasta\n\nBoil salted water and cook the pasta until al dente.",
    "kitchen/salad.txt": "Toss lettuce, tomatoes and cucumber with olive oil and vinegar.",
}
NOISE = {
    f"noise/{i}.txt": " ".join(f"{(i * 7919 + j * 104729) % 65536:04x}" for j in range(40))
    for i in range(3)
}


class DoublingEmbedder(LocalEmbedder):
    """Returns vectors of length two: what a broken remote embedder might send back."""

    def embed(self, texts: list[str]) -> tuple[np.ndarray, EmbedStats]:
        vectors, stats = super().embed(texts)
        return vectors * 2, stats


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def _put(s3_client: Any, bucket: str, docs: dict[str, str]) -> None:
    for key, text in docs.items():
        s3_client.put_object(Bucket=bucket, Key=key, Body=text.encode())


def _monitor(harness: Harness, **health: Any) -> tuple[dict[str, Any], dict[str, bool]]:
    result = harness.job("monitor_collection").execute_in_process(
        instance=harness.instance,
        run_config={"ops": {"collection_health": {"config": health}}} if health else None,
    )
    assert result.success
    [materialization] = [
        m
        for m in result.get_asset_materialization_events()
        if m.asset_key == dg.AssetKey("collection_health")
    ]
    meta = materialization.step_materialization_data.materialization.metadata
    return {k: getattr(v, "value", v) for k, v in meta.items()}, _checks(result)


@pytest.fixture()
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as inst:
        yield inst


@pytest.fixture()
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, s3_endpoint: str, bucket: str) -> Path:
    """The environment a deployment would set, pointing at this test's services (the same
    settings :func:`_harness` uses, so the CLI reads what the runs wrote)."""
    for name in ("RAG_S3_PREFIXES", "RAG_QDRANT_URL", "RAG_QDRANT_PATH", "RAG_REGISTRY_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RAG_S3_BUCKET", bucket)
    monkeypatch.setenv("RAG_S3_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("RAG_EMBEDDER", "local")
    monkeypatch.setenv("RAG_SHARDS", "16")
    monkeypatch.setenv("RAG_FULL_RECONCILE_HOURS", "0")
    return tmp_path


def _harness(
    instance: dg.DagsterInstance, endpoint: str, bucket: str, data: Path, embedder: Any = None
) -> Harness:
    settings = make_settings(bucket, data)
    return Harness(instance, settings, make_resources(endpoint, settings, embedder))


def test_checks_health_drift_orphans_cost_and_cli(
    s3_endpoint: str,
    s3_client: Any,
    bucket: str,
    env: Path,
    instance: dg.DagsterInstance,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _put(s3_client, bucket, KITCHEN)
    harness = _harness(instance, s3_endpoint, bucket, env)
    runs = harness.sync()
    assert runs and all(run.success for run in runs)
    assert _checks(runs[-1]) == {
        "vectors_match_chunks": True,
        "documents_with_zero_chunks": True,
        "dimension_matches_collection": True,
        "no_duplicate_point_ids": True,
        "points_match_chunks": True,
        "shards_match_registry": True,
        "documents_not_ingested": True,
    }

    # First health run: in sync, sane, and the sample becomes the drift baseline.
    meta, checks = _monitor(harness)
    assert checks == dict.fromkeys(
        [
            "points_match_recorded_chunks",
            "no_orphan_points",
            "vectors_are_sane",
            "embedding_drift_within_threshold",
            "live_version_is_current",
            "no_held_deletions",
        ],
        True,
    )
    assert meta["points"] == meta["chunks_recorded"] == len(harness.points()) >= 4
    assert meta["live_objects"] == 4 and meta["orphan_points"] == 0
    assert meta["vector_dimension"] == 384 and meta["non_unit_vectors"] == 0
    assert meta["drift_score"] == 0.0 and meta["baseline_created_at"]

    # Documents of a different kind arrive: the recent sample drifts from the baseline.
    _put(s3_client, bucket, NOISE)
    assert all(r.success for r in harness.sync())
    meta, checks = _monitor(harness, sample_documents=len(NOISE))
    assert meta["drift_score"] > 0.1, meta
    assert checks["embedding_drift_within_threshold"] is False
    assert checks["no_orphan_points"] and checks["points_match_recorded_chunks"]

    # An object deleted behind the sensor's back and a stray point are orphans.
    s3_client.delete_object(Bucket=bucket, Key="kitchen/soup.txt")
    soup = document_id(bucket, "kitchen/soup.txt")
    soup_points = sum(1 for p in harness.points() if p.payload["metadata"]["doc_id"] == soup)
    stray = document_id("another-bucket", "stray.txt")
    info = DocumentInfo(stray, "another-bucket", "stray.txt", "e", 5, "")
    chunk = Chunk(index=0, text="stray", char_start=0, char_end=5, token_count=1)
    with harness.store() as store:
        unit = np.array([[1.0] + [0.0] * 383], dtype=np.float32)
        store.replace_documents("documents", [DocumentPoints(info, [chunk], unit)])
    meta, checks = _monitor(harness, sample_documents=len(NOISE))
    assert checks["no_orphan_points"] is False
    assert meta["orphan_points"] == soup_points + 1
    assert checks["points_match_recorded_chunks"] is False  # the stray point is not recorded

    # The CLI audit sees the same, with a non-zero exit code.
    assert cli_main(["health"]) == 1
    out = capsys.readouterr().out
    assert f"orphan: {stray}" in out and f"orphan: {soup}" in out

    # Search finds the bread recipe for a baking question.
    assert cli_main(["search", "how long should I knead dough", "-k", "2"]) == 0
    out = capsys.readouterr().out
    first = out.splitlines()[0]
    assert first.startswith("1. ") and f"s3://{bucket}/kitchen/bread.md" in first, out

    # Cost: the recorded work of both ingestion runs, counted once per run.
    workload = embedding_workload(instance, window_hours=1)
    runs = len(harness.runs)
    with harness.store() as store:
        target = harness.registry.target(store.location, harness.settings.physical_collection)
    assert target is not None
    chunks = sum(harness.registry.ingested_chunks(target.id).values())
    assert workload.runs == runs and workload.texts == chunks and workload.tokens > 0
    assert workload.gpu_seconds == 0.0 and workload.backends == ("LocalEmbedder",)
    result = harness.job("monitor_collection").execute_in_process(
        instance=instance,
        run_config={
            "ops": {
                "embedding_cost_report": {
                    "config": {"window_hours": 1.0, "assumed_tokens_per_gpu_second": 1000.0}
                }
            }
        },
    )
    [cost] = [
        m.step_materialization_data.materialization.metadata
        for m in result.get_asset_materialization_events()
        if m.asset_key == dg.AssetKey("embedding_cost_report")
    ]
    assert cost["embedding_runs"].value == runs
    assert cost["gpu_seconds"].value == pytest.approx(workload.tokens / 1000.0, abs=1e-3)
    assert "| Modal A10G, per second |" in str(cost["report"].value)


def test_cost_cli_reads_the_instance_in_dagster_home(
    s3_endpoint: str,
    s3_client: Any,
    bucket: str,
    env: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    _put(s3_client, bucket, dict(list(KITCHEN.items())[:2]))
    with dg.DagsterInstance.get() as instance:
        harness = _harness(instance, s3_endpoint, bucket, env)
        runs = harness.sync()
        assert runs and all(r.success for r in runs)
        tokens = embedding_workload(instance, 1).tokens
    assert cli_main(["cost", "--hours", "1", "--assume-tokens-per-second", "500"]) == 0
    out = capsys.readouterr().out
    assert f"{len(runs)} embedding runs" in out and f"{tokens:,} tokens" in out
    assert f"{tokens / 500:,.1f}" in out


def test_bad_vectors_are_blocked_before_qdrant(
    s3_endpoint: str, s3_client: Any, bucket: str, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    _put(s3_client, bucket, dict(list(KITCHEN.items())[:2]))
    harness = _harness(instance, s3_endpoint, bucket, tmp_path, DoublingEmbedder())
    runs = harness.sync()
    assert runs
    for run in runs:
        assert _checks(run)["vectors_match_chunks"] is False
        assert not any(
            m.asset_key == dg.AssetKey("qdrant_collection")
            for m in run.get_asset_materialization_events()
        )
    assert harness.points() == []
    assert set(harness.registry.status_counts()) == {"pending"}


def test_a_collection_of_another_dimension_fails_the_check_and_is_left_alone(
    s3_endpoint: str, s3_client: Any, bucket: str, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    _put(s3_client, bucket, dict(list(KITCHEN.items())[:1]))
    harness = _harness(instance, s3_endpoint, bucket, tmp_path)
    physical = harness.settings.physical_collection
    with open_vector_store("edge", path=harness.settings.qdrant_path) as store:
        store.ensure_collection(physical, 8)
    [run] = harness.sync()
    assert not run.success
    assert _checks(run)["dimension_matches_collection"] is False
    failure = next(e for e in run.all_events if e.event_type_value == "STEP_FAILURE")
    assert "another size" in str(failure.event_specific_data.error)  # type: ignore[union-attr]
    with harness.store() as store:
        assert store.dimension(physical) == 8 and store.count(physical) == 0
