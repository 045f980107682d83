"""Reliability findings H1, M1, H3, M4 and M6 (shared/reviews/reliability-2026-12-04.md), each
built the way production meets it: a moto S3 server (versioning, storage classes, injected
errors), the real registry (SQLite, and PostgreSQL for M6), the real pipeline runs."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import dagster as dg
import pytest
from botocore.awsrequest import AWSResponse

from rag_ingest.core.index.versions import drop, maybe_promote, promote, rollback
from rag_ingest.core.keys import NUL_KEY_REASON, document_id
from rag_ingest.core.pipeline import retries
from rag_ingest.core.registry.schema import documents
from rag_ingest.resources import DocumentRegistry, S3Source
from rag_ingest.testing.harness import Harness, make_resources, make_settings
from rag_ingest_tests.sync_oracle import expected_versions, text


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_kwargs: Any) -> Any:
        yield self.body


class SlowKeys(S3Source):
    """The real client; GETs of the keys in ``failing`` answer 503 SlowDown, always."""

    failing: ClassVar[set[str]] = set()

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        super().setup_for_execution(context)
        self.client.meta.events.register("before-send.s3.GetObject", self._inject)

    def _inject(self, request: Any, **_kwargs: Any) -> Any:
        if any(request.url.endswith("/" + key) for key in SlowKeys.failing):
            body = b"<Error><Code>SlowDown</Code><Message>Reduce your rate</Message></Error>"
            return AWSResponse(request.url, 503, {}, _Raw(body))
        return None


@pytest.fixture()
def instance() -> Any:
    with dg.instance_for_test() as inst:
        yield inst


@pytest.fixture()
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> retries.RetryPolicy:
    policy = retries.RetryPolicy(max_attempts=3, base_seconds=0.0)
    monkeypatch.setattr(retries, "POLICY", policy)
    SlowKeys.failing.clear()
    return policy


def _seed(client: Any, bucket: str, keys: list[str], seed: int = 5) -> None:
    rng = random.Random(seed)
    for key in keys:
        client.put_object(Bucket=bucket, Key=key, Body=text(rng, 3).encode())


def _harness(instance: Any, endpoint: str, bucket: str, data: Path, **resources: Any) -> Harness:
    settings = make_settings(bucket, data)
    return Harness(instance, settings, {**make_resources(endpoint, settings), **resources})


def _in_shard_of(harness: Harness, bucket: str, doc_key: str, pattern: str) -> str:
    """A key in the same shard as ``doc_key`` (shards are ranges of sha256(bucket, key):
    anyone can grind a key into a chosen shard)."""
    layout = harness.settings.shard_layout
    want = layout.of(document_id(bucket, doc_key))
    return next(
        k
        for k in (pattern.format(i) for i in range(10_000))
        if layout.of(document_id(bucket, k)) == want
    )


def _row(harness: Harness, bucket: str, key: str) -> Any:
    doc_id = document_id(bucket, key)
    return harness.registry.lookup([doc_id])[doc_id]


def _doc_ids(harness: Harness) -> set[str]:
    return {doc_id for doc_id, _, _ in harness.versions()}


# --- H1 -----------------------------------------------------------------------------------------


def test_a_glacier_object_fails_alone_and_deletions_in_its_shard_still_apply(
    s3_endpoint: str, s3_client: Any, bucket: str, tmp_path: Path, instance: Any
) -> None:
    keys = [f"kb/{i}.md" for i in range(6)]
    _seed(s3_client, bucket, keys)
    harness = _harness(instance, s3_endpoint, bucket, tmp_path)
    harness.converge()
    secret = keys[0]
    assert document_id(bucket, secret) in _doc_ids(harness)
    # A compliance removal, and one object nobody can GET in the same shard.
    s3_client.delete_object(Bucket=bucket, Key=secret)
    frozen = _in_shard_of(harness, bucket, secret, "x/{}.md")
    s3_client.put_object(Bucket=bucket, Key=frozen, Body=b"# archived", StorageClass="GLACIER")
    with pytest.raises(Exception, match="InvalidObjectState"):
        s3_client.get_object(Bucket=bucket, Key=frozen)  # LIST and HEAD work; GET does not
    runs = harness.sync()
    assert runs and all(r.success for r in runs)
    assert harness.failed_attempts == 0
    assert document_id(bucket, secret) not in _doc_ids(harness)
    assert _row(harness, bucket, secret).status == "removed"
    glacier = _row(harness, bucket, frozen)
    assert glacier.status == "failed" and glacier.retry_at is None
    assert glacier.reason.startswith("unreadable: InvalidObjectState: ")
    assert _doc_ids(harness) == {document_id(bucket, k) for k in keys[1:]}
    # Final: the shard is not requested again for it.
    assert harness.sync() == []


# --- M1 -----------------------------------------------------------------------------------------


def test_a_transient_s3_error_is_retried_with_back_off_then_given_up(
    s3_endpoint: str,
    s3_client: Any,
    bucket: str,
    tmp_path: Path,
    instance: Any,
    fast_retries: retries.RetryPolicy,
) -> None:
    keys = [f"kb/{i}.md" for i in range(4)]
    _seed(s3_client, bucket, keys)
    source = SlowKeys(bucket=bucket, endpoint_url=s3_endpoint, max_attempts=2)
    harness = _harness(instance, s3_endpoint, bucket, tmp_path, s3_source=source)
    SlowKeys.failing.add(keys[1])
    assert all(r.success for r in harness.sync())
    row = _row(harness, bucket, keys[1])
    assert row.status == "failed" and row.attempts == 1 and row.retry_at is not None
    assert row.reason.startswith("transient S3 error: SlowDown: Reduce your rate (attempt 1 of 3")
    others = {document_id(bucket, k) for k in keys} - {row.doc_id}
    assert _doc_ids(harness) == others
    # Retried (back-off 0 here) and, S3 being back, ingested.
    SlowKeys.failing.clear()
    harness.converge(timeout=30)
    row = _row(harness, bucket, keys[1])
    assert (row.status, row.attempts, row.retry_at) == ("ok", 0, None)
    assert harness.versions() == expected_versions(s3_client, bucket)
    # An error that never ends: bounded, then final with its reason.
    SlowKeys.failing.add(keys[2])
    s3_client.put_object(Bucket=bucket, Key=keys[2], Body=b"# changed\n\nnew text")
    harness.converge(timeout=60)
    row = _row(harness, bucket, keys[2])
    assert row.status == "failed" and row.retry_at is None and row.attempts == 3
    assert row.reason.startswith("gave up after 3 attempts: transient S3 error: SlowDown")
    assert harness.sync() == []


def test_a_transient_failure_keeps_good_points_and_blocks_promotion(
    s3_endpoint: str,
    s3_client: Any,
    bucket: str,
    tmp_path: Path,
    instance: Any,
    fast_retries: retries.RetryPolicy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keys = [f"kb/{i}.md" for i in range(4)]
    _seed(s3_client, bucket, keys)
    source = SlowKeys(bucket=bucket, endpoint_url=s3_endpoint, max_attempts=2)
    harness = _harness(instance, s3_endpoint, bucket, tmp_path, s3_source=source)
    harness.converge()
    before = harness.versions()
    # A forced re-ingest meets a transient error: the document's points stay.
    SlowKeys.failing.add(keys[0])
    assert harness.materialize_all(force=True).success
    assert harness.versions() == before
    row = _row(harness, bucket, keys[0])
    assert row.status == "ok" and row.attempts == 1 and row.chunk_count
    # A re-index is not promoted while a document of it waits for a retry.
    monkeypatch.setattr(retries, "POLICY", replace(fast_retries, base_seconds=3600.0))
    v1 = harness.settings
    v2 = v1.replace(chunk_max_tokens=64, chunk_overlap_tokens=8)
    harness.settings = v2
    assert all(r.success for r in harness.sync())
    with harness.store() as store:
        assert store.resolve("documents") == v1.physical_collection
        target = harness.registry.target(store.location, v2.physical_collection)
        assert target is not None
        promoted, why = maybe_promote(store, harness.registry, target, v2.scope)
    assert not promoted and "1 document(s) still to reconcile" in why
    assert harness.sync() == []  # its retry is not due
    # S3 recovers, the retry comes due: complete, verified, promoted.
    SlowKeys.failing.clear()
    with harness.registry.engine.begin() as conn:
        conn.execute(documents.update().values(retry_at=0.0).where(documents.c.retry_at > 0))
    harness.converge(timeout=60)
    with harness.store() as store:
        assert store.resolve("documents") == v2.physical_collection
    assert harness.versions() == expected_versions(s3_client, bucket, v2)


def test_a_404_during_a_delete_then_put_is_retried_at_the_same_etag(
    s3_endpoint: str,
    s3_client: Any,
    bucket: str,
    tmp_path: Path,
    instance: Any,
    fast_retries: retries.RetryPolicy,
) -> None:
    keys = [f"kb/{i}.md" for i in range(3)]
    _seed(s3_client, bucket, keys)
    harness = _harness(instance, s3_endpoint, bucket, tmp_path)
    request = harness.tick()
    body = s3_client.get_object(Bucket=bucket, Key=keys[0])["Body"].read()
    s3_client.delete_object(Bucket=bucket, Key=keys[0])  # the gap of a delete-then-put
    assert all(r.success for r in harness.launch(request))
    assert _row(harness, bucket, keys[0]).status == "missing"
    s3_client.put_object(Bucket=bucket, Key=keys[0], Body=body)  # same bytes, same ETag
    harness.converge(timeout=30)
    assert _row(harness, bucket, keys[0]).status == "ok"
    assert harness.versions() == expected_versions(s3_client, bucket)


def test_extraction_timeouts_and_killed_workers_are_transient() -> None:
    from rag_ingest.core.pipeline.steps import transient_extraction

    assert transient_extraction("failed", "timed out after 120 s")
    assert transient_extraction("failed", "extraction worker died (killed by SIGKILL)")
    assert not transient_extraction("failed", "corrupt PDF: no trailer")
    assert not transient_extraction("unsupported", "timed out after 1 s")


# --- H3 -----------------------------------------------------------------------------------------


def test_restoring_an_older_version_in_a_versioned_bucket_is_a_change(
    s3_endpoint: str, s3_client: Any, bucket: str, tmp_path: Path, instance: Any
) -> None:
    s3_client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    _seed(s3_client, bucket, ["kb/other.md"])
    key = "kb/plan.md"
    s3_client.put_object(Bucket=bucket, Key=key, Body=b"# v1\n\nthe old text of the plan")
    harness = _harness(instance, s3_endpoint, bucket, tmp_path)
    harness.converge()
    v2 = s3_client.put_object(Bucket=bucket, Key=key, Body=b"# v2\n\nan edit to undo")
    harness.converge()
    assert _row(harness, bucket, key).etag == v2["ETag"].strip('"')
    # Undo the edit: delete the newest version; S3 serves v1 with v1's older LastModified.
    s3_client.delete_object(Bucket=bucket, Key=key, VersionId=v2["VersionId"])
    head = s3_client.head_object(Bucket=bucket, Key=key)
    assert head["LastModified"].isoformat() < _row(harness, bucket, key).last_modified
    harness.converge()
    row = _row(harness, bucket, key)
    assert row.etag == head["ETag"].strip('"') and row.status == "ok"
    assert harness.versions() == expected_versions(s3_client, bucket)
    texts = [
        p.payload["document"] if "document" in p.payload else str(p.payload)
        for p in harness.points()
        if p.payload["metadata"]["doc_id"] == row.doc_id
    ]
    assert texts and all("old text" in t and "an edit" not in t for t in texts)


def test_a_stale_listing_entry_does_not_bring_an_old_version_back() -> None:
    from datetime import UTC, datetime, timedelta

    from rag_ingest.core.planning.listing import plan_tick, settle_rechecks
    from rag_ingest.core.registry import Known
    from rag_ingest.core.storage.s3 import S3Object

    t = datetime(2026, 12, 1, tzinfo=UTC)
    known = {"k.md": Known("d", "new", "ok", t.isoformat())}
    stale = S3Object("b", "k.md", "old", 1, t - timedelta(seconds=5))
    plan = plan_tick([stale], known, 10)
    assert plan.changed == [] and plan.recheck == [stale]
    settle_rechecks(plan, known, {"k.md": replace(stale, etag="new", last_modified=t)})
    assert plan.changed == [] and plan.stale == 1
    plan = plan_tick([stale], known, 10)
    settle_rechecks(plan, known, {"k.md": stale})  # S3 really serves the older version now
    assert plan.changed == [stale]
    # HEAD answers (the event sensor) are current: another ETag is a change at once.
    assert plan_tick([stale], known, 10, current=True).changed == [stale]


# --- M6 -----------------------------------------------------------------------------------------


def _nul_key_run(harness: Harness, s3_client: Any, bucket: str) -> None:
    good = ["kb/a.md", "kb/b.md"]
    _seed(s3_client, bucket, good)
    evil = "kb/evil\x00.md"
    s3_client.put_object(Bucket=bucket, Key=evil, Body=b"# evil")
    assert evil in {o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket)["Contents"]}
    harness.converge()
    row = _row(harness, bucket, evil)
    assert row.status == "failed" and row.reason.startswith(NUL_KEY_REASON)
    assert row.key == "kb/evil\\x00.md"
    assert {_row(harness, bucket, k).status for k in good} == {"ok"}
    assert _doc_ids(harness) == {document_id(bucket, k) for k in good}
    # Later ticks neither fail nor take it for new, changed or deleted.
    assert harness.sync() == []
    assert _row(harness, bucket, evil).status == "failed"
    s3_client.delete_object(Bucket=bucket, Key=evil)
    harness.converge()
    assert _row(harness, bucket, evil).status == "removed"


def test_a_key_with_nul_is_recorded_alone_on_postgres(
    s3_endpoint: str, s3_client: Any, bucket: str, tmp_path: Path, instance: Any, registry_db: Any
) -> None:
    harness = _harness(
        instance, s3_endpoint, bucket, tmp_path, registry=DocumentRegistry(url=registry_db.url)
    )
    assert harness.registry.engine.dialect.name == "postgresql"
    _nul_key_run(harness, s3_client, bucket)


def test_a_key_with_nul_is_recorded_alone_on_sqlite(
    s3_endpoint: str, s3_client: Any, bucket: str, tmp_path: Path, instance: Any
) -> None:
    _nul_key_run(_harness(instance, s3_endpoint, bucket, tmp_path), s3_client, bucket)


# --- M4 -----------------------------------------------------------------------------------------


def test_a_rollback_sticks_when_the_rolled_back_collection_is_dropped(
    s3_endpoint: str, s3_client: Any, bucket: str, tmp_path: Path, instance: Any
) -> None:
    _seed(s3_client, bucket, [f"kb/{i}.md" for i in range(4)])
    harness = _harness(instance, s3_endpoint, bucket, tmp_path)
    v1 = harness.settings
    harness.converge()
    v2 = v1.replace(chunk_max_tokens=64, chunk_overlap_tokens=8)
    harness.settings = v2
    harness.converge()
    with harness.store() as store:
        assert store.resolve("documents") == v2.physical_collection
        rollback(store, harness.registry, "documents")
        # The operator drops the bad version before reverting the settings.
        bad = harness.registry.target(store.location, v2.physical_collection)
        assert bad is not None and bad.state == "rolled_back"
        drop(store, harness.registry, bad)
    assert harness.materialize_all().success  # the settings still name v2: it is rebuilt ...
    harness.converge()
    with harness.store() as store:
        assert store.resolve("documents") == v1.physical_collection  # ... but not promoted
        rebuilt = harness.registry.target(store.location, v2.physical_collection)
        assert rebuilt is not None and rebuilt.state == "rolled_back"
        assert maybe_promote(store, harness.registry, rebuilt, v2.scope)[0] is False
        # Lost (deleted by hand) rather than dropped: the same.
        store.drop_collection(v2.physical_collection)
    harness.full_reconcile_due()
    assert harness.materialize_all().success
    with harness.store() as store:
        assert store.resolve("documents") == v1.physical_collection
        again = harness.registry.target(store.location, v2.physical_collection)
        assert again is not None and again.state == "rolled_back" and again.id != rebuilt.id
        # Only an explicit promotion serves it again, and ends the pin.
        promote(store, harness.registry, again)
        assert store.resolve("documents") == v2.physical_collection
    live = harness.registry.target_by_id(again.id)
    assert live is not None and live.state == "live" and live.rolled_back_at is None
