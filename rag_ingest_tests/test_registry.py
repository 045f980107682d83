from datetime import UTC, datetime
from pathlib import Path

from rag_ingest.core.keys import partition_key
from rag_ingest.core.registry import Known, Outcome, Registry
from rag_ingest.core.s3 import S3Object

NOW = datetime(2026, 11, 28, tzinfo=UTC)


def _obj(key: str, etag: str = "e1") -> S3Object:
    return S3Object("bkt", key, etag, 10, NOW)


def test_register_lookup_and_outcomes(tmp_path: Path) -> None:
    registry = Registry(f"sqlite:///{tmp_path / 'r.sqlite'}")
    ids = registry.register([_obj("a/1.md"), _obj("a/2.md"), _obj("b/3.md")])
    assert ids == [partition_key("bkt", k) for k in ("a/1.md", "a/2.md", "b/3.md")]
    assert registry.known("bkt", "a/") == {
        "a/1.md": Known(ids[0], "e1", "pending"),
        "a/2.md": Known(ids[1], "e1", "pending"),
    }
    assert [doc for doc, _, _ in registry.requested_after(0, "bkt", "")] == ids
    assert [doc for doc, _, _ in registry.requested_after(1, "bkt", "a/")] == [ids[1]]
    assert registry.max_seq() == 3

    registry.record(
        [Outcome(ids[0], "ok", etag="e1", chunk_count=4), Outcome(ids[1], "failed", "corrupt PDF")]
    )
    found = registry.lookup([ids[0], ids[1], "unknown~0000000000000000"])
    assert set(found) == {ids[0], ids[1]}
    assert found[ids[0]].status == "ok" and found[ids[0]].chunk_count == 4
    assert found[ids[1]].reason == "corrupt PDF"
    assert registry.status_counts() == {"ok": 1, "failed": 1, "pending": 1}
    assert [r.key for r in registry.by_status(["failed"])] == ["a/2.md"]


def test_prefix_match_is_literal_not_a_like_pattern(tmp_path: Path) -> None:
    registry = Registry(f"sqlite:///{tmp_path / 'r.sqlite'}")
    registry.register([_obj("100%_done/x.md"), _obj("100abc/y.md")])
    assert list(registry.known("bkt", "100%_")) == ["100%_done/x.md"]


def test_two_registries_on_one_file_share_the_sequence(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    first, second = Registry(url), Registry(url)
    first.register([_obj("x.md")])
    second.register([_obj("y.md")])
    assert sorted(seq for _, seq, _ in first.requested_after(0, "bkt", "")) == [1, 2]


def test_changes_and_deletions_get_new_change_numbers(tmp_path: Path) -> None:
    registry = Registry(f"sqlite:///{tmp_path / 'r.sqlite'}")
    (a, b) = registry.register([_obj("a.md"), _obj("b.md")])
    registry.record([Outcome(a, "ok", etag="e1", chunk_count=1)])
    assert registry.requeue([_obj("a.md", etag="e2")]) == [a]
    registry.mark_deleting([b])
    assert registry.requested_after(2, "bkt", "") == [(a, 3, "pending"), (b, 4, "deleting")]
    assert registry.lookup([a])[a].etag == "e2"
    registry.mark_removed([b])
    assert registry.removed("bkt", "") == [b]
    assert registry.max_seq() == 4  # marking removed is no new request
    registry.forget([b])
    assert registry.lookup([a, b]).keys() == {a}
