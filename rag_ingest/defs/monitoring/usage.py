"""Embedding work recorded in the Dagster event log, summed per run over a time window."""

from __future__ import annotations

import time
from typing import Any

import dagster as dg

from rag_ingest.core.cost import CacheTotals, Workload

EMBEDDINGS = dg.AssetKey("embeddings")
PAGE = 1000


def _number(metadata: dict[str, Any], name: str) -> float:
    value = metadata.get(name)
    raw = getattr(value, "value", value)
    return float(raw) if isinstance(raw, int | float) else 0.0


def embedding_workload(
    instance: dg.DagsterInstance, window_hours: float, now: float | None = None
) -> Workload:
    """Sum the run totals of ``embeddings`` materializations in the last ``window_hours``.

    A run over many partitions writes one materialization per partition, each carrying the
    run's totals (``run_*``), so totals are counted once per run.
    """
    now = time.time() if now is None else now
    records_filter = dg.AssetRecordsFilter(
        asset_key=EMBEDDINGS, after_timestamp=now - window_hours * 3600, before_timestamp=now
    )
    per_run: dict[str, dict[str, Any]] = {}
    cursor = None
    while True:
        result = instance.fetch_materializations(records_filter, limit=PAGE, cursor=cursor)
        for record in result.records:
            entry = record.event_log_entry
            materialization = entry.asset_materialization
            if materialization is not None and entry.run_id not in per_run:
                per_run[entry.run_id] = dict(materialization.metadata)
        if not result.has_more:
            break
        cursor = result.cursor
    runs = list(per_run.values())

    def total(name: str) -> float:
        return sum(_number(m, name) for m in runs)

    # Runs recorded before the cache existed carry none of its figures.
    cached = [m for m in runs if "cache_hits" in m]
    cache = (
        CacheTotals(
            hits=int(total("cache_hits")),
            misses=int(total("cache_misses")),
            evictions=int(total("cache_evictions")),
            texts_embedded=int(total("texts_embedded")),
            embed_seconds_saved=total("cache_embed_seconds_saved"),
            gpu_seconds_saved=total("cache_gpu_seconds_saved"),
            usd_saved=total("cache_usd_saved"),
        )
        if cached
        else None
    )
    backends = sorted({str(getattr(m.get("backend"), "value", "")) for m in per_run.values()})
    return Workload(
        window_hours=window_hours,
        runs=len(per_run),
        texts=int(sum(_number(m, "run_texts") for m in per_run.values())),
        tokens=int(sum(_number(m, "run_tokens") for m in per_run.values())),
        embed_seconds=sum(_number(m, "run_embed_seconds") for m in per_run.values()),
        gpu_seconds=sum(_number(m, "run_gpu_seconds") for m in per_run.values()),
        backends=tuple(b for b in backends if b),
        cache=cache,
    )
