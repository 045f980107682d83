"""One listing tick of a prefix: the next part of a pass over its keys, compared with the
registry rows of the same key range, and written (see :class:`ListingCursor`).

A pass that fits in one tick (a small prefix) lists everything and compares everything, as a
single listing always did. A larger one advances ``after`` tick by tick; the union of its
ticks' ranges is the whole key space, so a pass over a bucket that does not change meanwhile
leaves the registry as one listing of it would.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from rag_ingest.core.planning.listing import (
    DeleteGuard,
    ListingCursor,
    TickPlan,
    plan_tick,
    settle_rechecks,
)
from rag_ingest.core.registry import DeleteHold, Registry
from rag_ingest.core.storage.s3 import ListingPage, head_all, list_page


@dataclass
class ListingTick:
    plan: TickPlan
    page: ListingPage
    # The range compared: (after, upper]; None: unbounded.
    after: str | None
    upper: str | None
    cursor: ListingCursor  # the next tick's
    pass_done: bool
    requeued: int  # re-queued (rows changed by another writer since the listing began: not)
    deleted: int  # marked deleting
    held: int  # deletions held back by the delete guard in this tick
    hold: DeleteHold | None  # the prefix's hold after this tick
    skipped: int  # writes left alone: the row changed after this tick's listing began

    def summary(self) -> str:
        plan = self.plan
        where = (
            "whole prefix"
            if self.after is None and self.upper is None
            else "keys "
            + (
                f"({self.after!r}, {self.upper!r}]"
                if self.upper is not None
                else f"after {self.after!r}"
            )
        )
        text = (
            f"listed {plan.listed} ({where}; pass "
            f"{'complete' if self.pass_done else 'continues next tick'}), new {len(plan.new)} "
            f"(deferred {plan.deferred}), changed {self.requeued}, deleted {self.deleted}, "
            f"unchanged {plan.unchanged}, stale listing entries {plan.stale}"
        )
        if self.held:
            text += f", deletions held {self.held}"
        if self.skipped:
            text += f", left to newer writes {self.skipped}"
        return text


def listing_tick(
    client: Any,
    reg: Registry,
    bucket: str,
    prefix: str,
    cursor: ListingCursor,
    *,
    max_keys: int,
    max_seconds: float,
    max_new: int,
    guard: DeleteGuard,
) -> ListingTick:
    """List the next part of ``prefix`` after ``cursor`` and bring the registry in step with
    it for that key range: new keys registered, changed ones re-queued, missing ones marked
    deleting unless the delete guard holds the pass.

    Writes are compare-and-set against the registry's change number read before the listing:
    a row another writer (the events sensor) changed after it is newer than what this listing
    saw, and is left for the next pass.
    """
    if cursor.fresh:
        registered, escaped = reg.prefix_stats(bucket, prefix)
        cursor = ListingCursor(started=time.time(), registered=registered, escaped=escaped)
    snapshot = reg.max_seq()
    page = list_page(client, bucket, prefix, cursor.after, max_keys, max_seconds)
    upper = None if page.complete else page.last_key
    known = reg.known_range(bucket, prefix, cursor.after, upper, cursor.escaped)
    plan = plan_tick(page.objects, known, max_new)
    # Entries whose clocks disagree with the registry: the object's current state decides.
    # A key whose HEAD failed stays as the registry has it until the next listing.
    answered, _ = head_all(client, bucket, [o.key for o in plan.recheck])
    settle_rechecks(plan, known, answered)

    hold = reg.delete_hold(bucket, prefix)
    confirmed = hold is not None and hold.confirmed_at is not None
    holding = guard.holds(cursor, len(plan.gone), confirmed)
    reg.register(plan.new)
    requeued = reg.requeue(plan.changed, unchanged_since=snapshot)
    held = len(plan.gone) if holding else 0
    deleted = [] if holding else reg.mark_deleting(plan.gone, unchanged_since=snapshot)
    if holding:
        reg.hold_deletes(bucket, prefix, cursor.gone + cursor.held + held, cursor.registered)
    skipped = len(plan.changed) - len(requeued) + (0 if holding else len(plan.gone) - len(deleted))

    nxt = ListingCursor(
        after=cursor.after,
        started=cursor.started,
        registered=cursor.registered,
        escaped=cursor.escaped,
        gone=cursor.gone + len(deleted),
        held=cursor.held,
    )
    pass_done = False
    if not plan.deferred:
        # With new keys deferred the same range is listed again (its deferred keys first).
        nxt.after, nxt.held = page.last_key, cursor.held + held
        if page.complete:
            pass_done = True
            if nxt.held == 0 and hold is not None:
                # The listing came back (an unconfirmed hold), or a pass that started after
                # the confirmation applied every deletion.
                reg.clear_delete_hold(bucket, prefix, cursor.started if confirmed else None)
            nxt = ListingCursor()
    return ListingTick(
        plan=plan,
        page=page,
        after=cursor.after,
        upper=upper,
        cursor=nxt,
        pass_done=pass_done,
        requeued=len(requeued),
        deleted=len(deleted),
        held=held,
        hold=reg.delete_hold(bucket, prefix),
        skipped=skipped,
    )
