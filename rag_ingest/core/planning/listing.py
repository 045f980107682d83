"""What a listing means for the registry, decided without I/O."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from rag_ingest.core.registry.model import GONE_STATUSES, Known
from rag_ingest.core.storage.s3 import S3Object


@dataclass
class TickPlan:
    new: list[S3Object] = field(default_factory=list)
    changed: list[S3Object] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    deferred: int = 0
    listed: int = 0
    unchanged: int = 0
    stale: int = 0


def _older(obj: S3Object, entry: Known) -> bool:
    """Whether the listed version is older than the registered one (a stale listing page or
    a late event must not bring an old version back)."""
    if not entry.last_modified:
        return False
    try:
        return obj.last_modified < datetime.fromisoformat(entry.last_modified)
    except (TypeError, ValueError):
        return False


def plan_tick(listing: Iterable[S3Object], known: Mapping[str, Known], max_new: int) -> TickPlan:
    """Compare a listing with the registry.

    * new: unregistered keys, oldest first, at most ``max_new`` (the rest wait a tick);
    * changed: registered keys with another ETag and a LastModified not older than the
      registered one, or keys that came back after a delete;
    * gone: doc ids of registered keys missing from the listing (not already gone).

    Nothing is filtered by LastModified alone, so objects sharing a second are never skipped.
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
        elif entry.status in GONE_STATUSES:
            plan.changed.append(obj)
        elif entry.etag != obj.etag:
            if _older(obj, entry):
                plan.stale += 1
            else:
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
