"""What a listing means for the registry, decided without I/O."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from rag_ingest.core.keys import storable_key
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
    # Listed with another ETag and an older LastModified than the registered version: either
    # a stale listing (taken before the registered version was written) or a real change to
    # an older version (a versioned bucket's newest version deleted, clock skew). Only the
    # object's current state can tell; see :func:`settle_rechecks`.
    recheck: list[S3Object] = field(default_factory=list)


def _older(obj: S3Object, entry: Known) -> bool:
    """Whether the listed version looks older than the registered one by the clocks (which
    never decides a change by itself: see ``recheck``)."""
    if not entry.last_modified:
        return False
    try:
        return obj.last_modified < datetime.fromisoformat(entry.last_modified)
    except (TypeError, ValueError):
        return False


def plan_tick(
    listing: Iterable[S3Object],
    known: Mapping[str, Known],
    max_new: int,
    current: bool = False,
) -> TickPlan:
    """Compare a listing with the registry.

    Version identity is the ETag, never a clock: a registered key listed with another ETag
    is a change whatever its LastModified.

    * new: unregistered keys, oldest first, at most ``max_new`` (the rest wait a tick);
    * changed: registered keys with another ETag, or keys that came back after a delete.
      With ``current=False`` (a paginated listing, which can be older than a version an
      event registered meanwhile) one whose LastModified is older than the registered one's
      goes to ``recheck`` instead, for :func:`settle_rechecks` to decide from the object's
      current state (HEAD). ``current=True``: the entries are the objects' current state
      (HEAD answers of the event sensor), so they are changes;
    * gone: doc ids of registered keys missing from the listing (not already gone).

    Nothing is filtered by LastModified alone, so objects sharing a second are never skipped.
    Keys are compared as the registry stores them (:func:`storable_key`).
    """
    plan = TickPlan()
    new: list[S3Object] = []
    listed_keys: set[str] = set()
    for obj in listing:
        plan.listed += 1
        stored = storable_key(obj.key)
        listed_keys.add(stored)
        entry = known.get(stored)
        if entry is None:
            new.append(obj)
        elif entry.status in GONE_STATUSES:
            plan.changed.append(obj)
        elif entry.etag != obj.etag:
            if not current and _older(obj, entry):
                plan.recheck.append(obj)
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


def settle_rechecks(
    plan: TickPlan, known: Mapping[str, Known], heads: Mapping[str, S3Object | None]
) -> None:
    """Decide ``plan.recheck`` from each key's current state (``heads``: HEAD answers by key,
    None for a key that no longer exists; keys without an answer wait for the next tick).

    * S3 now serves the registered ETag: the listing was stale; nothing changes.
    * S3 now serves another ETag (the listed one or a newer one): a change, whatever the
      clocks say; the current object is queued.
    * The key is gone: left to the next listing, which will not list it.
    """
    for obj in plan.recheck:
        if obj.key not in heads:
            plan.stale += 1
            continue
        now = heads[obj.key]
        entry = known.get(storable_key(obj.key))
        if now is None or entry is None or now.etag == entry.etag:
            plan.stale += 1
        else:
            plan.changed.append(now)
    plan.recheck = []


@dataclass
class ListingCursor:
    """Where a prefix's listing pass stands between sensor ticks (the sensor's cursor).

    A pass lists the prefix in S3's key order over as many ticks as its size needs; each tick
    compares only the key range it listed, (``after``, last key listed] (a pass's last tick:
    (``after``, +∞)), with the registry rows of that range.

    * after: the last key listed so far (None: the pass starts at the prefix's first key);
    * started: when the pass started (time.time());
    * registered: live documents registered under the prefix when the pass started (the
      delete guard's base); escaped: whether any of them has a NUL key (stored escaped);
    * gone: documents the pass marked deleted so far; held: deletions it held back.
    """

    after: str | None = None
    started: float = 0.0
    registered: int = 0
    escaped: bool = True
    gone: int = 0
    held: int = 0

    @property
    def fresh(self) -> bool:
        return self.started == 0.0

    def to_json(self) -> str:
        return json.dumps(
            {
                "after": self.after,
                "pass": self.started,
                "registered": self.registered,
                "escaped": self.escaped,
                "gone": self.gone,
                "held": self.held,
            },
            ensure_ascii=True,
        )

    @classmethod
    def from_json(cls, raw: str | None) -> ListingCursor:
        """The cursor a tick left; anything unreadable (none yet, an older format) starts a
        new pass, which is always safe."""
        if not raw:
            return cls()
        try:
            data = json.loads(raw)
            after = data["after"]
            return cls(
                after=after if isinstance(after, str) else None,
                started=float(data["pass"]),
                registered=int(data["registered"]),
                escaped=bool(data.get("escaped", True)),
                gone=int(data.get("gone", 0)),
                held=int(data.get("held", 0)),
            )
        except (ValueError, TypeError, KeyError, AttributeError):
            return cls()


@dataclass(frozen=True)
class DeleteGuard:
    """When a listing pass may not mark documents deleted by itself.

    A pass that would mark more than ``percent`` % of the prefix's live registered documents
    deleted, and at least ``minimum`` of them, is held: a listing that suddenly returns far
    fewer objects (a wrong prefix, a permission change, a truncated listing) is more likely a
    fault than a mass deletion. ``percent`` 100 turns the guard off.
    """

    percent: float = 20.0
    minimum: int = 100

    def holds(self, cursor: ListingCursor, gone_now: int, confirmed: bool) -> bool:
        """Whether this tick's ``gone_now`` deletions are held, given what the pass marked or
        held before (once a pass is held, the rest of it is too)."""
        if confirmed or gone_now == 0 or self.percent >= 100:
            return False
        total = cursor.gone + cursor.held + gone_now
        return total >= self.minimum and total * 100 > cursor.registered * self.percent
