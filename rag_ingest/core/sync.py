"""What a sensor tick should do, decided from a listing and the registry (no I/O here)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from rag_ingest.core.s3 import S3Object


@dataclass
class TickPlan:
    new: list[S3Object] = field(default_factory=list)
    deferred: int = 0
    listed: int = 0
    unchanged: int = 0
    changed: int = 0
    gone: int = 0


def plan_tick(
    listing: Iterable[S3Object], known: Mapping[str, tuple[str, str]], max_new: int
) -> TickPlan:
    """New objects to register this tick, oldest first, at most ``max_new``.

    Objects are compared with the registry by key, not by a LastModified high-water mark, so
    objects sharing a LastModified second are never skipped and the cursor stays one integer.
    Changed (new ETag) and vanished objects are counted here; acting on them is the sync
    step's job.
    """
    plan = TickPlan()
    new: list[S3Object] = []
    seen = 0
    for obj in listing:
        plan.listed += 1
        entry = known.get(obj.key)
        if entry is None:
            new.append(obj)
            continue
        seen += 1
        if entry[1] == obj.etag:
            plan.unchanged += 1
        else:
            plan.changed += 1
    plan.gone = len(known) - seen
    new.sort(key=lambda o: (o.last_modified, o.key))
    plan.new = new[:max_new]
    plan.deferred = len(new) - len(plan.new)
    return plan
