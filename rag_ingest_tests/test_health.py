"""Health figures: drift, sync comparison, vector sanity (no Dagster, no services)."""

import numpy as np
import pytest

from rag_ingest.core.index.health import VectorSample, compare_sync, drift, norm_outliers


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def _cloud(center: np.ndarray, n: int, noise: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return _unit(center + noise * rng.standard_normal((n, len(center)))).astype(np.float32)


def test_two_samples_of_one_distribution_barely_drift_and_another_topic_does() -> None:
    rng = np.random.default_rng(0)
    topic_a, topic_b = rng.standard_normal(384), rng.standard_normal(384)
    base = VectorSample.of(_cloud(topic_a, 500, 0.05, 1), "m", "t0")
    same = VectorSample.of(_cloud(topic_a, 500, 0.05, 2), "m", "t1")
    other = VectorSample.of(_cloud(topic_b, 500, 0.05, 3), "m", "t2")
    assert drift(base, same).score < 0.01
    assert drift(base, other).centroid_distance > 0.5
    assert drift(base, base).score == 0.0


def test_a_collapsing_embedding_space_shows_as_spread_change() -> None:
    rng = np.random.default_rng(4)
    center = _unit(rng.standard_normal((1, 384)))[0]
    wide = VectorSample.of(_cloud(center, 400, 0.05, 5), "m", "t0")
    narrow = VectorSample.of(_cloud(center, 400, 0.005, 6), "m", "t1")
    moved = drift(wide, narrow)
    assert moved.centroid_distance < 0.05
    assert moved.spread_change < -0.1
    assert moved.score == abs(moved.spread_change)


def test_baseline_roundtrips_and_refuses_other_dimensions() -> None:
    sample = VectorSample.of(_cloud(np.ones(8), 10, 0.1, 7), "model-x", "2026-01-01T00:00:00")
    assert VectorSample.from_json(sample.to_json()) == sample
    other = VectorSample.of(_cloud(np.ones(4), 10, 0.1, 8), "model-y", "t")
    with pytest.raises(ValueError, match="model changed"):
        drift(sample, other)
    with pytest.raises(ValueError):
        VectorSample.of(np.zeros((0, 8), dtype=np.float32), "m", "t")


def test_norm_outliers_counts_non_unit_and_non_finite_vectors() -> None:
    good = _unit(np.random.default_rng(9).standard_normal((5, 16))).astype(np.float32)
    bad = np.vstack([good, good[:2] * 1.5, np.full((1, 16), np.nan, dtype=np.float32)])
    assert norm_outliers(good) == 0
    assert norm_outliers(bad) == 3
    assert norm_outliers(np.zeros((0, 16), dtype=np.float32)) == 0


def test_sync_report_finds_orphans_and_documents_missing_from_the_collection() -> None:
    report = compare_sync(
        points_per_doc={"a": 3, "b": 2, "gone": 4},
        live_doc_ids=["a", "b", "c", "d"],
        recorded_chunks={"a": 3, "b": 2, "c": 5},
    )
    assert report.points == 9
    assert report.documents_in_collection == 3
    assert report.chunks_recorded == 10
    assert report.orphan_documents == ["gone"]
    assert report.orphan_points == 4
    assert report.live_documents_missing == ["c"]
