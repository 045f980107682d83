"""The put → searchable benchmark's measurements and its report (``bench.events_latency``)."""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass, field

from .common import machine_info


@dataclass
class Sample:
    tick: float
    run: float
    check: float
    total: float
    runs: int


@dataclass
class Results:
    keys: int
    repeats: int
    populate_seconds: float = 0.0
    register_seconds: float = 0.0
    seed_seconds: float = 0.0
    events: list[Sample] = field(default_factory=list)
    idle_events_ticks: list[float] = field(default_factory=list)
    idle_request_runs: list[float] = field(default_factory=list)
    listing: list[Sample] = field(default_factory=list)
    listing_memory: list[Sample] = field(default_factory=list)
    list_only_seconds: float = 0.0
    listed: int = 0
    # Read before anything runs: the load others put on the machine matters to the numbers.
    machine: dict[str, str] = field(default_factory=machine_info)


def _row(name: str, samples: list[Sample]) -> str:
    def med(values: list[float]) -> str:
        return f"{statistics.median(values):.2f}"

    def span(values: list[float]) -> str:
        return f"{min(values):.2f}–{max(values):.2f}"

    t = [s.total for s in samples]
    return (
        f"| {name} | {med([s.tick for s in samples])} | {med([s.run for s in samples])} | "
        f"{med([s.check for s in samples])} | **{med(t)}** | {span(t)} | {samples[0].runs} |"
    )


def report(results: Results, command: str) -> str:
    machine = "\n".join(f"- {k}: {v}" for k, v in results.machine.items())
    ev, li, mem = results.events, results.listing, results.listing_memory
    ev_med = statistics.median(s.total for s in ev)
    li_med = statistics.median(s.total for s in li)
    mem_med = statistics.median(s.total for s in mem)
    idle = statistics.median(results.idle_events_ticks)
    asking = statistics.median(results.idle_request_runs)
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"""# Put → searchable: S3 events vs listing ({results.keys:,} keys in the bucket)

Command: `{command}` ({results.repeats} repeats per mode; medians, and min–max of the total).

Each repeat puts one new Markdown document (~2–20 KB of the benchmark corpus) beside
{results.keys:,} existing keys (registered and settled), then times the sensor tick that
requests its run, the run (executed in process, 256 shards: one shard's run), and the check
that a point of the document is in the collection. Seconds:

| path | tick | run | check | put → searchable | min–max | runs |
| --- | ---: | ---: | ---: | ---: | ---: | ---: |
{_row("events (SQS, HEAD the key)", ev)}
{_row("listing sensor (moto LIST)", li)}
{_row("listing sensor, listing from memory", mem)}

What the measured time leaves out, and adds in a deployment:

- **Waiting for the tick.** A put lands at a random point of the sensor's interval: on
  average half of it, at worst all of it. Events: `RAG_EVENTS_INTERVAL_SECONDS` = 10 →
  +5 s average, +10 s worst, so about **{ev_med + 5:.0f} s** average put → searchable here.
  Listing alone: 30 s by default → +15 s / +30 s, about **{li_med + 15:.0f} s** here with
  moto's LIST ({mem_med + 15:.0f} s with the listing from memory); with a queue configured
  the listing runs hourly, so it is only the safety net.
- **Launching the run.** The daemon's queued run coordinator and a run worker process start
  (seconds, the same for both paths) are not measured here: runs execute in process.

Components measured apart:

- One full listing of {results.listed:,} keys through moto: {results.list_only_seconds:.1f} s.
  Moto re-sorts the bucket on every 1,000-key page (O(n²)); S3 serves the same listing as
  {results.listed // 1000 + 1} sequential ListObjectsV2 page(s), so this component is moto's,
  not S3's. The "listing from memory" row removes it and keeps the sensor's own work
  (registry read of {results.keys:,} rows, diff, registration, run requests).
- An events tick with an empty queue: median {idle:.2f} s over
  {len(results.idle_events_ticks)} ticks, with {results.keys:,} documents registered: the
  1 s long poll of the empty queue (waiting, not work) and {asking:.2f} s for the shared
  `request_runs` (registry work per shard, runs in flight), which the event sensor calls
  every tick.
- Setup, not latency: {results.keys:,} objects into moto's backend {results.populate_seconds:.1f}
  s; registered and recorded `empty` in {results.register_seconds:.1f} s; seed document (first
  run: model load, collection created) {results.seed_seconds:.1f} s.

Setup honesty: the {results.keys:,} existing keys are empty objects recorded as the run
would leave them (`empty`, no points) instead of being ingested: the registry and the bucket
hold {results.keys:,} rows and keys, the Qdrant collection holds only the measured
documents' points. Runs execute in process on a test Dagster instance (SQLite storage).

Load average (1/5/15 min) at the start and at the end of the run, on {os.cpu_count()} cores:
{results.machine["load average (1/5/15 min) at start"]} and {load}. Where that is above the
core count the machine was shared with other work: absolute seconds, moto's LIST most of
all, are inflated; the two paths ran one after the other.

Machine:

{machine}
"""
