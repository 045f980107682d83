"""The delete guard (issue 18 item 11): a listing that suddenly returns far fewer objects (a
wrong prefix, a permission change, a truncated listing) holds its deletions instead of wiping
the index; the hold shows in the registry, `rag-ingest health` and collection_health; after
`rag-ingest confirm-deletes` the next pass applies them. And L1: a listing never overwrites
what the events sensor wrote after the listing began."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from rag_ingest.cli import main as cli_main
from rag_ingest.core.keys import document_id
from rag_ingest.core.planning.listing import DeleteGuard, ListingCursor
from rag_ingest.core.planning.listing_pass import listing_tick
from rag_ingest.core.registry import Registry, default_url
from rag_ingest.core.storage.s3 import S3Object
from rag_ingest.testing.harness import Harness, make_resources, make_settings
from rag_ingest_tests.test_listing_pages import PagedBucket, paged_pass, state

KEYS = [f"docs/{i:02d}.txt" for i in range(20)]


@pytest.fixture()
def harness(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, s3_endpoint: str, bucket: str) -> Any:
    for name in ("RAG_QDRANT_URL", "RAG_QDRANT_PATH", "RAG_REGISTRY_URL"):
        monkeypatch.delenv(name, raising=False)
    # The deployment's environment, for the CLI: the same settings as the harness's.
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RAG_S3_BUCKET", bucket)
    monkeypatch.setenv("RAG_S3_PREFIXES", "docs/")
    monkeypatch.setenv("RAG_S3_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("RAG_SHARDS", "16")
    monkeypatch.setenv("RAG_FULL_RECONCILE_HOURS", "0")
    monkeypatch.setenv("RAG_DELETE_GUARD_MIN_DOCUMENTS", "1")
    with dg.instance_for_test() as instance:
        settings = make_settings(
            bucket, tmp_path, prefixes=("docs/",), delete_guard_min_documents=1
        )
        yield Harness(instance, settings, make_resources(s3_endpoint, settings))


def _points_by_doc(harness: Harness) -> set[str]:
    return {p.payload["metadata"]["doc_id"] for p in harness.points()}


def _ingest(harness: Harness, s3_client: Any, bucket: str) -> set[str]:
    for key in KEYS:
        s3_client.put_object(Bucket=bucket, Key=key, Body=f"document {key} about bread".encode())
    harness.converge()
    docs = {document_id(bucket, k) for k in KEYS}
    assert _points_by_doc(harness) == docs
    return docs


def _check(harness: Harness, name: str) -> tuple[bool, dict[str, Any]]:
    result = harness.job("monitor_collection").execute_in_process(instance=harness.instance)
    [evaluation] = [e for e in result.get_asset_check_evaluations() if e.check_name == name]
    return evaluation.passed, {k: getattr(v, "value", v) for k, v in evaluation.metadata.items()}


def test_a_listing_missing_90_percent_is_held_until_confirmed(
    harness: Harness, s3_client: Any, bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = _ingest(harness, s3_client, bucket)
    gone = KEYS[:18]
    for key in gone:
        s3_client.delete_object(Bucket=bucket, Key=key)

    for _ in range(2):  # held, and still held on the next pass
        harness.converge()
        reg = harness.registry
        assert reg.status_counts(harness.settings.scope).get("deleting", 0) == 0
        assert _points_by_doc(harness) == docs  # nothing removed from the index
        hold = reg.delete_hold(bucket, "docs/")
        assert hold is not None and (hold.would_delete, hold.registered) == (18, 20)
        assert hold.confirmed_at is None and "18 of 20" in hold.describe()

    passed, meta = _check(harness, "no_held_deletions")
    assert passed is False and meta["held_deletions"] == 18
    assert cli_main(["health"]) == 1
    assert "held: s3://" in capsys.readouterr().out

    assert cli_main(["confirm-deletes", "--prefix", "other/"]) == 1  # nothing held there
    assert cli_main(["confirm-deletes", "--prefix", "docs/"]) == 0
    assert "confirmed" in capsys.readouterr().out
    harness.converge()
    assert _points_by_doc(harness) == {document_id(bucket, k) for k in KEYS[18:]}
    assert harness.registry.status_counts(harness.settings.scope) == {"ok": 2, "removed": 18}
    assert harness.registry.delete_hold(bucket, "docs/") is None  # the hold is over
    assert _check(harness, "no_held_deletions")[0] is True


def test_a_listing_missing_5_percent_is_applied_as_before(
    harness: Harness, s3_client: Any, bucket: str
) -> None:
    docs = _ingest(harness, s3_client, bucket)
    s3_client.delete_object(Bucket=bucket, Key=KEYS[7])  # 1 of 20
    harness.converge()
    assert _points_by_doc(harness) == docs - {document_id(bucket, KEYS[7])}
    assert harness.registry.delete_hold(bucket, "docs/") is None


NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_a_pass_over_many_ticks_is_held_once_it_passes_the_threshold(tmp_path: Path) -> None:
    keys = [f"p/{i:04d}" for i in range(1000)]
    bucket = PagedBucket(keys)
    reg = Registry(default_url(tmp_path))
    guard = DeleteGuard(percent=20, minimum=10)
    paged_pass(bucket, reg, "b", "p/", max_keys=100, guard=guard)
    # Half the keys are missing, spread over the whole key order (a truncated listing).
    bucket.keys = keys[::2]
    ticks = paged_pass(bucket, reg, "b", "p/", max_keys=100, guard=guard)
    deleting = [k for k, (_, _, s) in state(reg).items() if s == "deleting"]
    # Ticks apply deletions until the pass's total would pass 20%; the rest is held.
    assert 0 < len(deleting) <= 200 and sum(t.held for t in ticks) == 500 - len(deleting)
    hold = reg.delete_hold("b", "p/")
    assert hold is not None and (hold.would_delete, hold.registered) == (500, 1000)

    # The listing recovers: the unconfirmed hold is over, the documents marked meanwhile
    # come back as changed.
    bucket.keys = keys
    paged_pass(bucket, reg, "b", "p/", max_keys=100, guard=guard)
    assert reg.delete_hold("b", "p/") is None
    assert {s for _, _, s in state(reg).values()} == {"pending"}

    # Missing again, then confirmed: the next pass applies every deletion and ends the hold.
    bucket.keys = keys[::2]
    paged_pass(bucket, reg, "b", "p/", max_keys=100, guard=guard)
    assert reg.delete_hold("b", "p/") is not None
    assert reg.confirm_deletes("b", "p/") is not None
    paged_pass(bucket, reg, "b", "p/", max_keys=100, guard=guard)
    assert sum(s == "deleting" for _, _, s in state(reg).values()) == 500
    assert reg.delete_hold("b", "p/") is None


class EventsDuringListing(PagedBucket):
    """The events sensor writes (HEAD answers, current) while the listing is in flight."""

    def __init__(self, keys: list[str], reg: Registry, newer: list[S3Object]) -> None:
        super().__init__(keys)
        self.reg, self.newer = reg, newer

    def list_objects_v2(self, **kwargs: Any) -> Any:
        page = super().list_objects_v2(**kwargs)
        if self.newer:
            self.reg.requeue(self.newer, reason="S3 event")
            self.newer = []
        return page


def test_a_listing_never_overwrites_a_newer_write_of_the_events_sensor(tmp_path: Path) -> None:
    reg = Registry(default_url(tmp_path))
    reg.register([S3Object("b", k, "e1", 1, NOW) for k in ("p/a", "p/k", "p/z")])
    # The listing pages over a bucket where p/k was deleted (and p/z still has its old ETag);
    # meanwhile p/k is re-created and p/z overwritten, and the events sensor records both.
    newer = [S3Object("b", "p/k", "e2", 1, NOW), S3Object("b", "p/z", "e3", 1, NOW)]
    bucket = EventsDuringListing(["p/a", "p/z"], reg, newer)
    bucket.etag = {"p/z": "e2"}
    tick = listing_tick(
        bucket,
        reg,
        "b",
        "p/",
        ListingCursor(),
        max_keys=1000,
        max_seconds=10,
        max_new=1000,
        guard=DeleteGuard(percent=100),
    )
    rows = state(reg)
    assert rows["p/k"][1:] == ("e2", "pending")  # not marked deleting with the object present
    assert rows["p/z"][1:] == ("e3", "pending")  # not set back to the listing's older e2
    assert tick.skipped == 2 and tick.deleted == 0 and tick.requeued == 0
    # The next pass compares them again, against a listing newer than the events.
    bucket.keys, bucket.etag = ["p/a", "p/k", "p/z"], {"p/k": "e2", "p/z": "e3"}
    paged_pass(bucket, reg, "b", "p/", max_keys=1000)
    assert state(reg) == rows
