"""Key-space shards and which ranges of them the sensors request (pure logic)."""

import pytest

from rag_ingest.core.keys import document_id, key_hash
from rag_ingest.core.planning.run_requests import decide, run_key, signature
from rag_ingest.core.planning.shards import Shards, plan_ranges
from rag_ingest.core.registry.model import ShardRequest, ShardWork


def test_shards_split_the_key_space_into_equal_contiguous_ranges() -> None:
    for count in (16, 256, 4096):
        layout = Shards(count)
        keys = layout.keys()
        assert len(keys) == count and keys == sorted(keys) and len(set(keys)) == count
        assert layout.hash_range(keys[0]) == (0, 65536 // count - 1)
        assert layout.hash_range(keys[0], keys[-1]) == (0, 65535)
    layout = Shards(256)
    doc = document_id("bucket", "some/key.md")
    lo, hi = layout.hash_range(layout.of(doc))
    assert lo <= key_hash(doc) <= hi and layout.of(doc) == doc[-16:][:2]
    with pytest.raises(ValueError):
        Shards(100)
    with pytest.raises(ValueError):
        layout.index("fff")


def test_ranges_bridge_short_gaps_cap_documents_and_never_split_a_shard() -> None:
    layout = Shards(16)
    assert plan_ranges(layout, {}, 100) == []
    ranges = plan_ranges(layout, {1: 10, 5: 10, 9: 10}, 100)
    assert [(r.first, r.last, r.documents) for r in ranges] == [("1", "9", 30)]
    far = plan_ranges(layout, {0: 1, 15: 1}, 100, max_gap=8)
    assert [(r.first, r.last) for r in far] == [("0", "0"), ("f", "f")]
    capped = plan_ranges(layout, {i: 40 for i in range(6)}, 100)
    assert [(r.first, r.last, r.documents) for r in capped] == [
        ("0", "1", 80),
        ("2", "3", 80),
        ("4", "5", 80),
    ]
    assert [r.documents for r in plan_ranges(layout, {3: 500}, 100)] == [500]
    skipped = plan_ranges(layout, {1: 1, 2: 1, 3: 1}, 100, skip=[2])
    assert [(r.first, r.last) for r in skipped] == [("1", "1"), ("3", "3")]


MIB = 1024 * 1024


def test_ranges_are_sized_by_bytes_too_and_a_huge_shard_runs_alone() -> None:
    layout = Shards(16)
    # Shards 1..6 hold 10 small documents each (1 MiB in all); shard 4 also holds one 64 MiB
    # text (~150,000 chunks): by documents alone all six are one run of 61 documents.
    work = {i: 10 for i in range(1, 7)}
    work[4] += 1
    sizes = {i: MIB for i in range(1, 7)}
    sizes[4] += 64 * MIB
    by_count = plan_ranges(layout, work, 2000)
    assert [(r.first, r.last, r.documents) for r in by_count] == [("1", "6", 61)]
    ranges = plan_ranges(layout, work, 2000, sizes=sizes, max_bytes=16 * MIB)
    assert [(r.first, r.last, r.documents, r.bytes) for r in ranges] == [
        ("1", "3", 30, 3 * MIB),
        ("4", "4", 11, 65 * MIB),  # over the budget: a run of its own, never split
        ("5", "6", 20, 2 * MIB),
    ]
    # Every shard with work is covered exactly once.
    covered = [s for r in ranges for s in layout.span(r.first, r.last)]
    assert covered == [layout.key(i) for i in range(1, 7)]
    # The byte bound caps ranges of many mid-sized shards like the document bound does.
    mid = plan_ranges(
        layout,
        dict.fromkeys(range(8), 1),
        2000,
        sizes=dict.fromkeys(range(8), 5 * MIB),
        max_bytes=10 * MIB,
    )
    assert [(r.first, r.last) for r in mid] == [("0", "1"), ("2", "3"), ("4", "5"), ("6", "7")]
    with pytest.raises(ValueError):
        plan_ranges(layout, work, 2000, sizes=sizes, max_bytes=0)


def test_decide_plans_by_the_registrys_bytes() -> None:
    layout = Shards(16)
    work = {
        2: ShardWork(5, 7, 10 * MIB),
        3: ShardWork(1, 8, 300 * MIB),  # one huge object
        4: ShardWork(5, 9, 10 * MIB),
    }
    decision = decide(layout, work, {}, set(), 1000.0, 30, 2000, max_bytes=256 * MIB)
    # The first run also covers the idle shards before it (2 ≤ max_gap, 8 by default); the
    # 11 after the last run are too many to reach.
    assert [(r.first, r.last, r.documents, r.bytes) for r in decision.ranges] == [
        ("0", "2", 5, 10 * MIB),
        ("3", "3", 1, 300 * MIB),
        ("4", "4", 5, 10 * MIB),
    ]
    assert len({run.run_key for run in decision.runs}) == 3
    # Without a byte bound (or from (documents, max_seq) pairs) documents alone decide.
    assert [
        (r.first, r.last) for r in decide(layout, work, {}, set(), 1000.0, 30, 2000).ranges
    ] == [("0", "4")]
    pairs = {i: (w.documents, w.max_seq) for i, w in work.items()}
    assert decide(layout, pairs, {}, set(), 1000.0, 30, 2000, max_bytes=MIB).ranges[0].bytes == 0


def test_requests_skip_shards_in_flight_and_back_off_when_work_is_unchanged() -> None:
    layout = Shards(16)
    work = {2: (5, 7), 3: (1, 7)}
    first = decide(layout, work, {}, set(), now=1000.0, backoff=30, max_documents=100)
    # Shards 0 and 1 (idle, before the first shard with work) are covered too.
    assert [(r.first, r.last) for r in first.ranges] == [("0", "3")]
    assert first.requests[2] == ShardRequest(signature(5, 7), 0, 1000.0)
    # A run holds shard 3: only shard 2 is requested.
    held = decide(layout, work, {}, {3}, now=1000.0, backoff=30, max_documents=100)
    assert [(r.first, r.last) for r in held.ranges] == [("0", "2")]
    # The same work again, nothing in flight: the last run did not clear it. Back off.
    soon = decide(layout, work, first.requests, set(), 1030.0, 30, 100)
    assert soon.ranges == [] and soon.waiting[2] == pytest.approx(30.0)
    later = decide(layout, work, first.requests, set(), 1061.0, 30, 100)
    assert later.requests[2].attempts == 1 and later.ranges
    assert run_key(layout, later.ranges[0], later.requests) != run_key(
        layout, first.ranges[0], first.requests
    )
    # New work (a new change number) is requested at once, attempts reset.
    changed = decide(layout, {2: (6, 8)}, later.requests, set(), 1062.0, 30, 100)
    assert changed.requests[2].attempts == 0 and changed.ranges
    # Back-off doubles and is capped.
    many = {2: ShardRequest(signature(5, 7), 20, 0.0)}
    assert decide(layout, work, many, set(), 3599.0, 30, 100).waiting[2] > 0
    assert decide(layout, work, many, set(), 3601.0, 30, 100).ranges


def test_a_full_reconcile_covers_every_shard_not_in_flight() -> None:
    layout = Shards(16)
    full = decide(layout, {4: (3, 1)}, {}, {9}, 0.0, 30, 2000, full=True)
    covered = {s for r in full.ranges for s in layout.span(r.first, r.last)}
    assert covered == set(layout.keys()) - {"9"}


def test_the_same_work_gives_the_same_run_key_but_each_full_pass_a_new_one() -> None:
    layout = Shards(16)
    a = decide(layout, {1: (2, 3)}, {}, set(), 5.0, 30, 100)
    b = decide(layout, {1: (2, 3)}, {}, set(), 9.0, 30, 100)
    assert run_key(layout, a.ranges[0], a.requests) == run_key(layout, b.ranges[0], b.requests)
    # Idle shards have the same (empty) work every day: each full pass must still run.
    day1 = decide(layout, {}, {}, set(), 86_400.0, 30, 100, full=True)
    day2 = decide(layout, {}, {}, set(), 172_800.0, 30, 100, full=True)
    assert day1.ranges == day2.ranges
    key1 = run_key(layout, day1.ranges[0], day1.requests, 86_400)
    assert key1 != run_key(layout, day2.ranges[0], day2.requests, 172_800)
    # decide() hands each range over with that key, so the sensor only wraps it.
    assert a.runs[0].run_key == run_key(layout, a.ranges[0], a.requests)
    assert day1.runs[0].run_key == key1
    assert day2.runs[0].run_key == run_key(layout, day2.ranges[0], day2.requests, 172_800)


def test_runs_bridge_as_far_as_cost_says_and_reach_the_edges() -> None:
    layout = Shards(256)
    scattered = {i: 1 for i in range(5, 256, 17)}  # 15 changes over the key space
    assert len(scattered) == 15
    one = plan_ranges(layout, scattered, 2000, max_gap=120, edges=True)
    assert [(r.first, r.last, r.documents) for r in one] == [("00", "ff", 15)]
    # Without edges the run starts and ends at shards with work; a short gap keeps them apart.
    inner = plan_ranges(layout, scattered, 2000, max_gap=120)
    assert [(r.first, r.last) for r in inner] == [("05", "f3")]
    assert len(plan_ranges(layout, scattered, 2000, max_gap=8, edges=True)) == 15
    # An edge too far, or a shard in flight on the way, is not reached.
    far = plan_ranges(layout, {200: 1}, 2000, max_gap=120, edges=True)
    assert [(r.first, r.last) for r in far] == [("c8", "ff")]
    held = plan_ranges(Shards(16), {10: 1}, 2000, max_gap=120, skip=[3], edges=True)
    assert [(r.first, r.last) for r in held] == [("a", "f")]
    # Given the shards never materialized, an edge is reached only to fill one of them.
    filled = plan_ranges(layout, {200: 1}, 2000, max_gap=120, edges=set())
    assert [(r.first, r.last) for r in filled] == [("c8", "c8")]
    one_left = plan_ranges(layout, {200: 1}, 2000, max_gap=120, edges={250})
    assert [(r.first, r.last) for r in one_left] == [("c8", "ff")]
    inside = plan_ranges(layout, scattered, 2000, max_gap=120, edges={100})
    assert [(r.first, r.last) for r in inside] == [("05", "f3")]
