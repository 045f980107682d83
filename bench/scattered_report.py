"""The markdown report of ``bench.scattered``: bars, batches, and where each batch's time goes."""

from __future__ import annotations

import math

from .scattered_model import Batch, ScatteredResult

# Issue 22's first bar: (changes, largest share of the cold wall); at most two runs for both.
BARS = {15: 0.05, 150: 0.10}
MAX_RUNS = 2


def _load(values: tuple[float, float, float]) -> str:
    return " / ".join(f"{x:.2f}" for x in values)


def _per_shard(result: ScatteredResult) -> tuple[float, float, float]:
    """(fixed Dagster seconds of a run, Dagster seconds per idle shard, body seconds per idle
    shard), from the floors: one run over one idle shard, one over all of them."""
    if len(result.floors) < 2:
        nan = float("nan")
        return nan, nan, nan
    one, every = result.floors
    extra = max(1, every.shards - one.shards)
    bodies = max(0.0, (every.bodies - one.bodies) / extra)  # noise can make it negative
    return one.dagster, (every.dagster - one.dagster) / extra, bodies


def _default_bridge(result: ScatteredResult) -> str:
    bridges = [b.bridge_shards for b in result.batches if b.label.endswith(", default")]
    return str(bridges[0]) if bridges else "?"


def _verdict(result: ScatteredResult, batch: Batch) -> str:
    bar = BARS.get(batch.changes)
    if batch.left:
        return f"**not converged** ({batch.left} change(s) not shown)"
    if bar is None:
        return "no bar"
    ok = len(batch.runs) <= MAX_RUNS and result.ratio(batch) <= bar
    return "**met**" if ok else "**missed**"


def _bars(result: ScatteredResult) -> list[str]:
    lines = [
        "| batch | changes (modify/delete/add) | shards changed | runs | shards per run "
        "| tick-to-searchable | ÷ cold wall | without moto's LIST: seconds, ÷ cold | bar "
        "| verdict |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for b in result.batches:
        kinds = "/".join(str(b.kinds.get(k, 0)) for k in ("modify", "delete", "add"))
        per_run = ", ".join(str(r.shards) for r in b.runs) or "–"
        bar = BARS.get(b.changes)
        bar_text = f"≤ {MAX_RUNS} runs, ≤ {bar:.0%}" if bar is not None else "–"
        lines.append(
            f"| {b.label} | {b.changes} ({kinds}) | {b.shards_changed} | {len(b.runs)} "
            f"| {per_run} | {b.searchable:.2f} s | {result.ratio(b):.1%} "
            f"| {b.searchable - b.listing:.2f} s, {result.ratio_without_listing(b):.1%} "
            f"| {bar_text} "
            f"| {_verdict(result, b)} |"
        )
    return lines


def _breakdown(result: ScatteredResult) -> list[str]:
    fixed, dagster_shard, body_shard = _per_shard(result)
    lines = [
        "| batch | load at start | sensor tick (moto LIST) | run Dagster: fixed (floor) "
        "| run Dagster: the rest (per shard run) | asset bodies: idle-shard share (floor rate) "
        "| asset bodies: the rest (changed shards' work) | lookups | materialization events |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for b in result.batches:
        runs = len(b.runs)
        fixed_total = fixed * runs
        rest = b.dagster - fixed_total
        idle = max(0, b.shards_run - b.shards_changed)
        idle_bodies = body_shard * idle
        per = rest / b.shards_run if b.shards_run else float("nan")
        load = "not recorded" if math.isnan(b.load) else f"{b.load:.1f}"
        lines.append(
            f"| {b.label} | {load} | {b.tick_seconds:.2f} s ({b.listing:.2f} s) "
            f"| {fixed_total:.2f} s "
            f"| {rest:.2f} s ({per:.3f} s) | {idle_bodies:.2f} s ({idle} idle shards) "
            f"| {b.bodies - idle_bodies:.2f} s | {b.lookup_seconds:.2f} s "
            f"| {b.materializations} ({b.materializations / max(1, b.shards_run):.1f} per shard) |"
        )
    lines += [
        "",
        f"Floors (no work): a run over one idle shard costs Dagster **{fixed:.2f} s** "
        f"outside its asset bodies; each further idle shard adds **{dagster_shard:.3f} s** of "
        f"Dagster bookkeeping and {body_shard:.3f} s of asset bodies (the per-shard "
        "verification).",
    ]
    for run, events in zip(result.floors, result.floor_events, strict=False):
        mats = events.get("ASSET_MATERIALIZATION", 0)
        lines.append(
            f"- floor over {run.shards} shard(s): wall {run.wall:.2f} s, bodies "
            f"{run.bodies:.2f} s, Dagster {run.dagster:.2f} s, {mats} materialization events, "
            f"{sum(events.values())} events in all"
        )
    if len(result.floor_events) == 2:
        one, every = result.floor_events
        extra = max(1, result.floors[1].shards - result.floors[0].shards)
        grown = {k: (every.get(k, 0) - one.get(k, 0)) / extra for k in every}
        per = ", ".join(f"{k} {v:g}" for k, v in sorted(grown.items()) if v)
        lines.append(f"- events each further idle shard adds, by type: {per}")
    return lines


def render(result: ScatteredResult, command: str, machine: dict[str, str]) -> str:
    cold = result.cold
    shards_per_run = [r.shards for r in cold.runs]
    lines = [
        f"# Scattered changes in a {result.documents:,}-document bucket ({result.storage})",
        "",
        f"Command: `{command}`",
        "",
        "Embedder: the BENCH-ONLY hashing embedder (`bench/hashing_embedder.py`) for the cold "
        "ingest and every batch alike. One repeat of each measurement.",
        "",
        "## Bars (issue 22)",
        "",
        *_bars(result),
        "",
        f"Cold wall: **{cold.wall:.1f} s** ({cold.docs_per_second:.1f} docs/s; load "
        f"{_load(cold.load_before)} at its start, {_load(cold.load_after)} at its end; "
        f"{len(cold.ticks)} tick(s), {len(cold.runs)} run(s) of "
        f"{min(shards_per_run, default=0)}–{max(shards_per_run, default=0)} shards; moto's "
        f"LIST {cold.listing:.1f} s of it; work left {cold.work_left}, {cold.points:,} "
        f"points). Dagster instance storage: {result.storage}; {result.shards} shards; the "
        f"sensor bridges up to {_default_bridge(result)} idle shards (`Settings.bridge_shards`) "
        "unless a batch names another setting.",
        "",
        "## Where a batch's time goes",
        "",
        "Tick-to-searchable = sensor tick(s) + runs + lookups. A run's time is its asset bodies "
        "plus Dagster's bookkeeping (run wall − bodies); the floors split the bookkeeping into "
        "a run's fixed cost and the rest, which grows with the shards the run covers.",
        "",
        *_breakdown(result),
        "",
        "## Machine",
        "",
        *[f"- {k}: {v}" for k, v in machine.items()],
        f"- load average at the end: {_load(result.load_after)}",
        "",
    ]
    return "\n".join(lines)
