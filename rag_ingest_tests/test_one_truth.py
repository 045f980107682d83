"""One truth for "ingested": the registry's state belongs to a target (Qdrant location and
collection) and a fingerprint. A new location or collection, a hand-deleted or emptied
collection is repaired by the next reconcile with no manual step; the health job reports
what it finds in between."""

import random
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pytest

from rag_ingest.core.index.versions import verify
from rag_ingest.core.keys import document_id
from rag_ingest.core.records import DocumentInfo
from rag_ingest.core.text.chunking import Chunk
from rag_ingest.core.vectorstore import DocumentPoints
from rag_ingest.resources import VectorStoreResource
from rag_ingest.testing.harness import Harness, make_resources, make_settings
from rag_ingest_tests.sync_oracle import expected_versions, text


@pytest.fixture()
def harness(s3_endpoint: str, s3_client: Any, bucket: str, tmp_path: Path) -> Any:
    rng = random.Random(31)
    for i in range(6):
        s3_client.put_object(Bucket=bucket, Key=f"t/{i}.md", Body=text(rng, 2).encode())
    settings = make_settings(bucket, tmp_path, full_reconcile_hours=24)
    with dg.instance_for_test() as instance:
        h = Harness(instance, settings, make_resources(s3_endpoint, settings))
        h.converge()
        yield h


def test_a_new_qdrant_path_or_collection_gets_every_document(
    harness: Harness, s3_client: Any, s3_endpoint: str, tmp_path: Path
) -> None:
    bucket = harness.settings.bucket
    expected = expected_versions(s3_client, bucket)
    # Same registry and Dagster instance, a new embedded store: everything is work there.
    moved = harness.settings.replace(qdrant_dir=str(tmp_path / "elsewhere"))
    harness.settings = moved
    harness.resources["vectors"] = VectorStoreResource(
        path=str(moved.qdrant_path), lock_wait_seconds=5
    )
    harness.converge()
    assert harness.versions() == expected
    # A new collection name (alias) at the same place: the same again.
    renamed = moved.replace(collection="knowledge")
    harness.settings = renamed
    harness.resources["vectors"] = VectorStoreResource(
        path=str(renamed.qdrant_path), lock_wait_seconds=5
    )
    harness.converge()
    with harness.store() as store:
        assert store.resolve("knowledge") == renamed.physical_collection
    assert harness.versions() == expected


def _monitor_checks(harness: Harness) -> dict[str, bool]:
    result = harness.execute("monitor_collection")
    assert result.success
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def test_an_emptied_collection_is_reported_and_repaired_by_the_next_tick(
    harness: Harness, s3_client: Any
) -> None:
    expected = expected_versions(s3_client, harness.settings.bucket)
    collection = harness.settings.physical_collection
    with harness.store() as store:
        store.delete_documents(collection, list(store.points_per_document(collection)))
    checks = _monitor_checks(harness)
    assert checks["points_match_recorded_chunks"] is False  # the disagreement is reported
    # S3 did not change and no full reconcile is due: the sensor's count of the collection
    # finds it short, its verification pass re-queues the documents, and they come back.
    harness.converge()
    assert harness.versions() == expected
    assert _monitor_checks(harness)["points_match_recorded_chunks"] is True


def test_a_hand_deleted_collection_is_recreated_and_refilled(
    harness: Harness, s3_client: Any
) -> None:
    expected = expected_versions(s3_client, harness.settings.bucket)
    with harness.store() as store:
        store.drop_collection(harness.settings.physical_collection)
    harness.converge()  # no full reconcile due: the next tick sees the collection gone
    with harness.store() as store:
        assert store.resolve("documents") == harness.settings.physical_collection
    assert harness.versions() == expected
    targets = harness.registry.targets(
        harness.resources["vectors"].location,  # type: ignore[attr-defined]
        "documents",
    )
    assert [t.state for t in targets] == ["dropped", "live"]  # the re-created one is new


def test_a_sensor_skips_the_collection_check_while_the_store_is_locked(
    harness: Harness,
) -> None:
    """The check waits a moment for the Edge folder lock, never as long as a run would."""
    import time

    collection = harness.settings.physical_collection
    with harness.store() as store:
        store.delete_documents(collection, list(store.points_per_document(collection)))
        started = time.monotonic()
        assert harness.sync() == []  # locked: no check, no verification pass
        assert time.monotonic() - started < 4.5  # the harness's own lock wait is 5 s
    assert harness.sync()  # unlocked: the short collection is noticed


def _restamp(store: Any, collection: str, record: Any, doc_id: str, key: str, etag: str) -> int:
    """Write ``record``'s points again as document ``doc_id`` (at ``key``) of version ``etag``:
    what an interleaved writer or a restore leaves behind the registry's back."""
    points = sorted(
        store.scroll(collection, doc_ids=[record.doc_id], with_vectors=True),
        key=lambda p: p.payload["metadata"]["chunk_index"],
    )
    chunks = [
        Chunk(
            index=m["chunk_index"],
            text=p.payload["page_content"],
            char_start=m["char_start"],
            char_end=m["char_end"],
            token_count=m["token_count"],
        )
        for p in points
        for m in [p.payload["metadata"]]
    ]
    info = DocumentInfo.from_record(record)
    info.doc_id, info.key, info.etag = doc_id, key, etag
    vectors = np.stack([p.vector for p in points if p.vector is not None])
    store.replace_documents(collection, [DocumentPoints(info, chunks, vectors)])
    return len(chunks)


def test_points_of_another_version_with_the_same_count_are_requeued_and_replaced(
    harness: Harness, s3_client: Any
) -> None:
    """L6: verification compares the version of a document's points with the registry's, not
    only their number."""
    bucket = harness.settings.bucket
    expected = expected_versions(s3_client, bucket)
    doc = document_id(bucket, "t/0.md")
    reg, collection = harness.registry, harness.settings.physical_collection
    record = reg.lookup([doc])[doc]
    assert record.status == "ok" and record.chunk_count
    with harness.store() as store:
        # Behind the registry's back: the same chunks and vectors, stamped with an old ETag.
        _restamp(store, collection, record, doc, record.key, '"0123456789abcdef0123456789abcdef"')
        assert store.points_per_document(collection, [doc])[doc] == record.chunk_count
        target = reg.target(store.location, collection)
        assert target is not None
        check = verify(store, reg, target, harness.settings.scope)
        assert not check.ok and check.mismatched == [doc]
    assert harness.versions() != expected
    # A reconcile of the document's shard verifies it: wrong version, so it is re-queued ...
    shard = harness.settings.shard_layout.of(doc)
    assert harness.materialize(shard).success
    requeued = reg.lookup([doc])[doc]
    assert requeued.status == "pending" and "version" in (requeued.reason or "")
    # ... and the next sync serves the registered version again.
    harness.converge()
    assert harness.versions() == expected
    with harness.store() as store:
        assert verify(store, reg, target, harness.settings.scope).ok


@pytest.mark.parametrize("shards_per_query", [1, 3, 16])
def test_shard_verification_finds_the_same_in_groups_of_shards(
    harness: Harness, shards_per_query: int
) -> None:
    """Adjacent shards share one registry read and one scroll; what each shard is found to
    hold wrong, and what is repaired, does not depend on how they are grouped."""
    from rag_ingest.core.pipeline.scope import RunScope, ShardTally
    from rag_ingest.core.pipeline.write import ShardWriter

    settings, reg = harness.settings, harness.registry
    layout, bucket = settings.shard_layout, settings.bucket
    collection = settings.physical_collection
    wrong = document_id(bucket, "t/0.md")
    ghost_key = next(
        f"ghost/{i}.md"
        for i in range(100)
        if layout.of(document_id(bucket, f"ghost/{i}.md")) != layout.of(wrong)
    )
    ghost = document_id(bucket, ghost_key)
    record = reg.lookup([wrong])[wrong]
    with harness.store() as store:
        _restamp(store, collection, record, wrong, record.key, '"0123456789abcdef0123"')
        ghost_points = _restamp(store, collection, record, ghost, ghost_key, record.etag)
        target = reg.target(store.location, collection)
        assert target is not None
        scope = RunScope(layout, settings.scope, layout.keys(), "verify-run", "verify-run")
        writer = ShardWriter(store, reg, target, ShardTally(scope))
        mismatched, requeued, orphans = writer.verify_shards(shards_per_query)
        assert store.points_per_document(collection, [ghost]) == {}
    expected = {
        layout.of(wrong): f"{layout.of(wrong)}: 1 wrong, 0 orphan documents",
        layout.of(ghost): f"{layout.of(ghost)}: 0 wrong, 1 orphan documents",
    }
    assert mismatched == [expected[s] for s in sorted(expected)]
    assert (requeued, orphans) == (1, ghost_points)
    assert reg.lookup([wrong])[wrong].status == "pending"


def test_shard_groups_split_at_the_size_and_at_gaps() -> None:
    from rag_ingest.core.pipeline.write import shard_groups
    from rag_ingest.core.planning.shards import Shards

    layout = Shards(16)
    keys = layout.keys()
    chosen = keys[0:5] + keys[7:9]
    assert list(shard_groups(layout, chosen, 2)) == [keys[0:2], keys[2:4], [keys[4]], keys[7:9]]
    assert list(shard_groups(layout, chosen, 32)) == [keys[0:5], keys[7:9]]
    with pytest.raises(ValueError, match="at least 1"):
        list(shard_groups(layout, chosen, 0))
