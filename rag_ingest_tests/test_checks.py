"""The per-run check results, on hand-made inputs."""

import numpy as np

from rag_ingest.defs.ingestion.checks import (
    EmbeddingAudit,
    dimension_result,
    duplicate_ids_result,
    points_match_result,
    shards_match_result,
)


def _unit(n: int, dim: int = 4) -> np.ndarray:
    rows = np.random.default_rng(n).standard_normal((n, dim))
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def test_embedding_audit_fails_on_wrong_shapes_and_non_unit_vectors() -> None:
    audit = EmbeddingAudit(dimension=4)
    audit.add("ok", 3, _unit(3), None)
    audit.add("empty", 0, np.zeros((0, 4), dtype=np.float32), "no text found")
    vectors_ok, zero_chunks = audit.results()
    assert vectors_ok.passed
    assert not zero_chunks.passed
    assert zero_chunks.metadata["documents"].value == 1

    audit.add("short", 3, _unit(2), None)
    audit.add("scaled", 2, _unit(2) * 2, None)
    audit.add("wide", 2, _unit(2, dim=5), None)
    failed = audit.results()[0]
    assert not failed.passed
    assert failed.metadata["documents_failing"].value == 3
    assert failed.metadata["examples"].value == ["short", "scaled", "wide"]


def test_dimension_duplicates_and_point_counts() -> None:
    assert dimension_result(None, 384).passed
    assert dimension_result(384, 384).passed
    assert not dimension_result(768, 384).passed
    assert duplicate_ids_result(["a", "b", "c"]).passed
    dup = duplicate_ids_result(["a", "b", "a"])
    assert not dup.passed and dup.metadata["duplicates"].value == 1
    assert points_match_result({"d1": 2, "d2": 0}, {"d1": 2}).passed
    wrong = points_match_result({"d1": 2, "d2": 1}, {"d1": 3})
    assert not wrong.passed
    assert wrong.metadata["documents_mismatched"].value == 2
    assert shards_match_result(16, [], 0, 0).passed
    mismatch = shards_match_result(16, ["0a: 1 wrong, 0 orphan documents"], 1, 0)
    assert not mismatch.passed and mismatch.metadata["documents_requeued"].value == 1


def test_a_collection_made_by_the_run_records_the_models_dimension_not_zero() -> None:
    from rag_ingest.defs.ingestion.checks import dimension_result

    made = dimension_result(None, 384)
    assert made.passed and made.metadata["collection_dimension"].value == 384
    assert made.metadata["collection_created"].value is True
    wrong = dimension_result(8, 384)
    assert not wrong.passed and wrong.metadata["collection_dimension"].value == 8
