"""A large prefix without moto (whose listing is quadratic in the bucket's size), and a whole
listing pass across sensor ticks: what the paging tests and ``bench.listing_pages`` share."""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from rag_ingest.core.planning.listing import DeleteGuard, ListingCursor
from rag_ingest.core.planning.listing_pass import ListingTick, listing_tick
from rag_ingest.core.registry import Registry

GUARD_OFF = DeleteGuard(percent=100)


class PagedBucket:
    """``list_objects_v2`` over keys held in memory, paged as S3 pages them (``Prefix``,
    ``StartAfter``, ``MaxKeys``, in byte order); ``etag`` overrides a key's ETag (``e1``)."""

    def __init__(self, keys: list[str], etag: dict[str, str] | None = None) -> None:
        self.keys = sorted(keys)
        self.etag = etag or {}
        self.requests = 0
        self.at = datetime(2026, 1, 1, tzinfo=UTC)

    def list_objects_v2(self, Bucket: str, Prefix: str, MaxKeys: int, StartAfter: str = "") -> Any:
        self.requests += 1
        start = bisect.bisect_right(self.keys, StartAfter) if StartAfter else 0
        start = max(start, bisect.bisect_left(self.keys, Prefix))
        page = []
        for key in self.keys[start : start + MaxKeys]:
            if not key.startswith(Prefix):
                break
            etag = f'"{self.etag.get(key, "e1")}"'
            page.append({"Key": key, "ETag": etag, "Size": 1, "LastModified": self.at})
        following = start + len(page)
        truncated = following < len(self.keys) and self.keys[following].startswith(Prefix)
        return {"Contents": page, "IsTruncated": truncated, "KeyCount": len(page)}

    def get_paginator(self, name: str) -> Any:
        assert name == "list_objects_v2"
        return self

    def paginate(self, Bucket: str, Prefix: str, PaginationConfig: Any) -> Iterator[Any]:
        after = ""
        while True:
            page = self.list_objects_v2(
                Bucket=Bucket, Prefix=Prefix, MaxKeys=1000, StartAfter=after
            )
            yield page
            if not page["IsTruncated"]:
                return
            after = page["Contents"][-1]["Key"]


def paged_pass(
    client: Any,
    reg: Registry,
    bucket: str,
    prefix: str,
    max_keys: int,
    guard: DeleteGuard = GUARD_OFF,
    max_seconds: float = 60.0,
    max_new: int = 10**9,
) -> list[tuple[ListingTick, float]]:
    """Tick the listing of ``prefix`` until its pass is done, the cursor going through JSON
    between ticks as Dagster keeps it; each tick with its seconds."""
    cursor, ticks = ListingCursor(), []
    while True:
        started = time.perf_counter()
        tick = listing_tick(
            client,
            reg,
            bucket,
            prefix,
            ListingCursor.from_json(cursor.to_json()),
            max_keys=max_keys,
            max_seconds=max_seconds,
            max_new=max_new,
            guard=guard,
        )
        ticks.append((tick, time.perf_counter() - started))
        cursor = tick.cursor
        if tick.pass_done:
            return ticks
        if len(ticks) >= 1_000_000:
            raise RuntimeError(f"the listing pass of {prefix!r} did not end")
