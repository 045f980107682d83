"""Which shards to request runs for, decided from the registry's work and past requests.

A shard with work is requested unless a run in flight covers it (that run, or the next one,
will see the work). A shard whose work is unchanged since its last request, with no run in
flight, was not cleared by that run (it failed, or was killed): it is requested again after a
back-off that doubles each time, so a broken dependency does not cause a storm of runs, and a
run that failed after its retries never leaves documents pending for good.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Set
from dataclasses import dataclass

from rag_ingest.core.planning.shards import RunRange, Shards, plan_ranges
from rag_ingest.core.registry.model import ShardRequest, ShardWork

MAX_BACKOFF_SECONDS = 3600.0


@dataclass(frozen=True)
class PlannedRun:
    """One run to request: its shard range and the key that deduplicates the request."""

    range: RunRange
    run_key: str


@dataclass(frozen=True)
class Decision:
    runs: list[PlannedRun]
    requests: dict[int, ShardRequest]
    waiting: dict[int, float]
    """Shards held back by their back-off: seconds until they may be requested."""

    @property
    def ranges(self) -> list[RunRange]:
        return [run.range for run in self.runs]


def signature(documents: int, max_seq: int) -> str:
    return f"{documents}@{max_seq}"


def decide(
    layout: Shards,
    work: Mapping[int, ShardWork | tuple[int, int]],
    previous: Mapping[int, ShardRequest],
    in_flight: Set[int],
    now: float,
    backoff: float,
    max_documents: int,
    full: bool = False,
    max_bytes: int | None = None,
    max_gap: int = 8,
    unmaterialized: Set[int] | None = None,
) -> Decision:
    """Shards to request now, grouped into run ranges, each with its run key.

    Args:
        work: per shard index, its documents needing work, their highest change number and
            their bytes (a plain ``(documents, max_seq)`` pair counts as 0 bytes).
        previous: the last request per shard.
        in_flight: shards covered by a queued or running run.
        backoff: the back-off unit; the n-th repeated request waits ``backoff * 2**n``.
        full: a periodic full reconcile: every shard not in flight is requested (shards
            without work only verify their points against the registry).
        max_bytes: the bytes a run may hold (see ``plan_ranges``); ``None``: documents alone.
        max_gap: idle shards a run bridges (``Settings.bridge_shards``: a run's fixed cost
            over an idle shard's); runs also reach the key space's edges within it.
        unmaterialized: shards never materialized: a run reaches an edge only to fill one of
            them (``None``: always, as on a first sync).
    """
    eligible: dict[int, int] = {}
    sizes: dict[int, int] = {}
    requests: dict[int, ShardRequest] = {}
    waiting: dict[int, float] = {}
    for index in range(layout.count):
        if index in in_flight:
            continue
        docs, max_seq, size = ShardWork(*work.get(index, (0, 0)))
        if docs <= 0 and not full:
            continue
        sig = signature(docs, max_seq)
        last = previous.get(index)
        attempts = 0
        if last is not None and last.signature == sig and docs > 0:
            attempts = last.attempts + 1
            delay = min(MAX_BACKOFF_SECONDS, backoff * (2**attempts))
            if now - last.requested_at < delay and not full:
                waiting[index] = delay - (now - last.requested_at)
                continue
        eligible[index] = max(docs, 1)
        sizes[index] = size
        requests[index] = ShardRequest(sig, attempts, now)
    ranges = plan_ranges(
        layout,
        eligible,
        max_documents,
        max_gap,
        skip=sorted(in_flight),
        sizes=sizes,
        max_bytes=max_bytes,
        edges=True if unmaterialized is None else unmaterialized,
    )
    full_pass = int(now) if full else 0
    runs = [PlannedRun(r, run_key(layout, r, requests, full_pass)) for r in ranges]
    return Decision(runs, requests, waiting)


def run_key(
    layout: Shards, run: RunRange, requests: Mapping[int, ShardRequest], full_pass: int = 0
) -> str:
    """Stable for the same work and attempt: a tick repeated after a crash is deduplicated,
    while new work or a new attempt gets a new key. ``full_pass`` (the time of a periodic full
    reconcile) makes each pass's keys new: idle shards have the same work every day."""
    parts = [f"full:{full_pass}"] if full_pass else []
    parts += [
        f"{i}:{requests[i].signature}:{requests[i].attempts}"
        for i in range(layout.index(run.first), layout.index(run.last) + 1)
        if i in requests
    ]
    digest = hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]
    return f"reconcile:{run.first}-{run.last}:{digest}"
