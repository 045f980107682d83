"""What a sensor tick should do, decided from a listing and the registry (no I/O here)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from rag_ingest.core.registry import GONE_STATUSES, Known
from rag_ingest.core.s3 import S3Object


@dataclass
class TickPlan:
    new: list[S3Object] = field(default_factory=list)
    changed: list[S3Object] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    deferred: int = 0
    listed: int = 0
    unchanged: int = 0


def plan_tick(listing: Iterable[S3Object], known: Mapping[str, Known], max_new: int) -> TickPlan:
    """Compare a listing with the registry.

    * new: unregistered keys, oldest first, at most ``max_new`` (the rest wait a tick);
    * changed: registered keys with another ETag, or keys that came back after a delete;
    * gone: doc ids of registered keys missing from the listing (not already being removed).

    Nothing is filtered by LastModified, so objects sharing a second are never skipped and the
    sensor cursor stays one integer.
    """
    plan = TickPlan()
    new: list[S3Object] = []
    listed_keys: set[str] = set()
    for obj in listing:
        plan.listed += 1
        listed_keys.add(obj.key)
        entry = known.get(obj.key)
        if entry is None:
            new.append(obj)
        elif entry.etag != obj.etag or entry.status in GONE_STATUSES:
            plan.changed.append(obj)
        else:
            plan.unchanged += 1
    plan.gone = [
        entry.doc_id
        for key, entry in known.items()
        if key not in listed_keys and entry.status not in GONE_STATUSES
    ]
    new.sort(key=lambda o: (o.last_modified, o.key))
    plan.new = new[:max_new]
    plan.deferred = len(new) - len(plan.new)
    return plan
