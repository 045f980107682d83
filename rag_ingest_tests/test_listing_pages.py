"""A listing pass over several sensor ticks (M2): each tick lists a bounded part of the prefix
and compares only that key range; a whole pass leaves the registry exactly as one listing of
the whole prefix (the code before paging) would. On moto (a few thousand keys, keys that sort
specially), on a simulated 100k-key bucket (moto's listing is quadratic), and on PostgreSQL
with a key column in a locale collation (ranges compared in S3's byte order, COLLATE "C")."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from rag_ingest.core.planning.listing import ListingCursor, plan_tick
from rag_ingest.core.planning.listing_pass import ListingTick, listing_tick
from rag_ingest.core.registry import Registry, default_url
from rag_ingest.core.registry.schema import documents
from rag_ingest.core.storage.s3 import list_objects
from rag_ingest.testing.listing import GUARD_OFF as OFF
from rag_ingest.testing.listing import PagedBucket
from rag_ingest.testing.listing import paged_pass as shared_paged_pass
from rag_ingest.testing.postgres import PgServer

SPECIAL = [
    "docs/A.txt",
    "docs/a.txt",
    "docs/B b.txt",
    "docs/b.txt",
    "docs/with space.txt",
    "docs/ with leading space.txt",
    "docs/é.txt",
    "docs/e.txt",
    "docs/Ω.md",
    "docs/日本語.md",
    "docs/😀.md",
    "docs/_under.txt",
    "docs/~tilde.txt",
    "docs/z/Z.txt",
    "docs/nul\x00key.txt",  # stored escaped in the registry: placed by its real key
]


def _put(client: Any, bucket: str, keys: list[str], body: str = "") -> None:
    with ThreadPoolExecutor(16) as pool:
        list(
            pool.map(
                lambda k: client.put_object(Bucket=bucket, Key=k, Body=(body + k).encode()), keys
            )
        )


def _delete(client: Any, bucket: str, keys: list[str]) -> None:
    for key in keys:  # one by one: DeleteObjects' XML cannot carry a NUL
        client.delete_object(Bucket=bucket, Key=key)


def one_listing(client: Any, reg: Registry, bucket: str, prefix: str) -> None:
    """The sensor's tick before paging: the whole prefix against every known record."""
    plan = plan_tick(list_objects(client, bucket, prefix), reg.known(bucket, prefix), 10**9)
    reg.register(plan.new)
    reg.requeue(plan.changed)
    reg.mark_deleting(plan.gone)


def paged_pass(client: Any, reg: Registry, *args: Any, **kwargs: Any) -> list[ListingTick]:
    return [tick for tick, _ in shared_paged_pass(client, reg, *args, **kwargs)]


def state(reg: Registry) -> dict[str, tuple[str, str, str]]:
    """Every row, by key: doc id, ETag, status (the registry outcome of a listing)."""
    with reg.engine.connect() as conn:
        rows = conn.execute(
            sa.select(documents.c.key, documents.c.doc_id, documents.c.etag, documents.c.status)
        )
        return {r.key: (r.doc_id, r.etag, r.status) for r in rows}


def test_a_pass_over_many_ticks_equals_one_listing(
    s3_client: Any, bucket: str, tmp_path: Path
) -> None:
    keys = sorted([f"docs/{i:05d}.txt" for i in range(2400)] + SPECIAL)
    _put(s3_client, bucket, keys)
    _put(s3_client, bucket, ["doc.txt", "docs0/x.txt", "other/y.txt"])  # outside the prefix
    paged = Registry(default_url(tmp_path / "paged"))
    whole = Registry(default_url(tmp_path / "whole"))

    ticks = paged_pass(s3_client, paged, bucket, "docs/", max_keys=97)
    one_listing(s3_client, whole, bucket, "docs/")
    assert len(ticks) == -(-len(keys) // 97)  # each tick lists at most 97 keys
    assert all(t.page.requests == 1 and t.plan.listed <= 97 for t in ticks)
    afters = [t.after for t in ticks]
    assert afters[0] is None and afters[1:] == [t.page.last_key for t in ticks[:-1]]
    moved = [a for a in afters[1:] if a is not None]
    assert moved == sorted(moved) and len(moved) == len(ticks) - 1  # only forward
    assert state(paged) == state(whole) and len(state(paged)) == len(keys)
    assert sum(len(t.plan.new) for t in ticks) == len(keys)

    # Deletions at the start, the middle and the end of the key order (and of tick ranges),
    # changes, new keys anywhere, special keys among all of them.
    deleted = [keys[0], keys[1], keys[96], keys[97], keys[1200], keys[-2], keys[-1]]
    deleted += ["docs/A.txt", "docs/é.txt", "docs/nul\x00key.txt", "docs/_under.txt"]
    changed = [keys[2], keys[500], keys[-3], "docs/a.txt", "docs/with space.txt", "docs/B b.txt"]
    added = ["docs/!first.txt", "docs/00600b.txt", "docs/\uffffz.txt", "docs/Ä.txt"]
    assert len(set(deleted)) == len(deleted) and not set(deleted) & set(changed)
    _delete(s3_client, bucket, deleted)
    _put(s3_client, bucket, changed, body="v2 ")
    _put(s3_client, bucket, added)
    ticks = paged_pass(s3_client, paged, bucket, "docs/", max_keys=97)
    one_listing(s3_client, whole, bucket, "docs/")
    after = state(paged)
    assert after == state(whole)
    assert {k for k, (_, _, s) in after.items() if s == "deleting"} == {
        k.replace("\0", "\\x00") for k in deleted
    }
    assert sum(t.deleted for t in ticks) == len(deleted)
    assert sum(t.requeued for t in ticks) == len(changed)
    assert sum(len(t.plan.new) for t in ticks) == len(added)
    unchanged = sum(t.plan.unchanged for t in ticks)
    assert unchanged == len(keys) - len(deleted) - len(changed)

    # A third pass over an unchanged bucket changes nothing; a pass that fits one tick is one.
    before = state(paged)
    assert len(paged_pass(s3_client, paged, bucket, "docs/", max_keys=10**6)) == 1
    assert state(paged) == before


def test_a_100k_key_pass_stays_inside_each_ticks_budget(tmp_path: Path) -> None:
    n, budget = 100_000, 5_000
    keys = [f"p/{i:07d}-{'AaBb'[i % 4]}.txt" for i in range(n)]
    bucket = PagedBucket(keys)
    paged = Registry(default_url(tmp_path / "paged"))
    whole = Registry(default_url(tmp_path / "whole"))
    ticks = paged_pass(bucket, paged, "bkt", "p/", max_keys=budget, max_seconds=20)
    assert len(ticks) == n // budget
    assert all(t.plan.listed <= budget for t in ticks)
    # An unchanged pass: each tick lists its share with as many pages as that share needs
    # (its time is the bench's to measure: bench/results/listing-pages-1m.md).
    before, requests = state(paged), bucket.requests
    unchanged = paged_pass(bucket, paged, "bkt", "p/", max_keys=budget)
    assert len(unchanged) == n // budget and state(paged) == before
    assert bucket.requests - requests == len(unchanged) * (budget // 1000)

    one_listing(bucket, whole, "bkt", "p/")
    assert state(paged) == state(whole)
    # Deletions at both ends and in the middle, changes, additions: the same outcome again.
    gone = set(keys[:3] + keys[49_999:50_002] + keys[-3:])
    bucket.keys = sorted([k for k in keys if k not in gone] + ["p/!new", "p/0050000-z", "p/~"])
    bucket.etag = {keys[7]: "e2", keys[77_777]: "e2"}
    ticks = paged_pass(bucket, paged, "bkt", "p/", max_keys=budget)
    one_listing(bucket, whole, "bkt", "p/")
    assert state(paged) == state(whole)
    assert sum(t.deleted for t in ticks) == len(gone) and sum(t.requeued for t in ticks) == 2


def test_a_tick_stops_at_its_time_budget(tmp_path: Path) -> None:
    class Slow(PagedBucket):
        def list_objects_v2(self, **kwargs: Any) -> Any:
            time.sleep(0.05)
            return super().list_objects_v2(**kwargs)

    bucket = Slow([f"k/{i:05d}" for i in range(20_000)])
    reg = Registry(default_url(tmp_path))
    tick = listing_tick(
        bucket,
        reg,
        "b",
        "k/",
        ListingCursor(),
        max_keys=10**6,
        max_seconds=0.12,
        max_new=10**9,
        guard=OFF,
    )
    assert not tick.pass_done and 2 <= bucket.requests <= 4
    assert tick.plan.listed == 1000 * bucket.requests
    assert tick.cursor.after == f"k/{tick.plan.listed - 1:05d}"


# Keys whose order differs between a locale collation and S3's byte order ("C").
COLLATION_KEYS = ["c/a", "c/B", "c/b", "c/_x", "c/Z", "c/é", "c/e", "c/f", "c/A1", "c/a1", "c/ z"]


def test_ranges_on_postgresql_follow_s3_order_under_a_locale_collation(
    registry_db: PgServer, tmp_path: Path
) -> None:
    reg = Registry(registry_db.url)
    try:
        with reg.engine.begin() as conn:
            # As if the database had been created with an English locale.
            conn.execute(
                sa.text(
                    'ALTER TABLE documents ALTER COLUMN key TYPE varchar(1024) COLLATE "en-x-icu"'
                )
            )
        bucket = PagedBucket(COLLATION_KEYS)
        paged_pass(bucket, reg, "bkt", "c/", max_keys=1)  # one key per tick
        with reg.engine.connect() as conn:
            stmt = sa.text("SELECT key FROM documents ORDER BY key")
            by_locale = list(conn.execute(stmt).scalars())
        assert by_locale != sorted(COLLATION_KEYS)  # the precondition: the orders differ
        whole = Registry(default_url(tmp_path))
        one_listing(bucket, whole, "bkt", "c/")
        assert state(reg) == state(whole)

        bucket.keys = sorted(set(COLLATION_KEYS) - {"c/B", "c/_x", "c/é", "c/ z"})
        bucket.etag = {"c/a": "e2", "c/Z": "e2"}
        ticks = paged_pass(bucket, reg, "bkt", "c/", max_keys=2)
        assert len(ticks) == 4 and sum(t.requeued for t in ticks) == 2
        one_listing(bucket, whole, "bkt", "c/")
        assert state(reg) == state(whole)
        assert {k for k, (_, _, s) in state(reg).items() if s == "deleting"} == {
            "c/B",
            "c/_x",
            "c/é",
            "c/ z",
        }
    finally:
        reg.close()
