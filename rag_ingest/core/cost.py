"""GPU prices, the cost of measured GPU time, and the serverless-vs-always-on comparison."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from rag_ingest.core.modal_names import GPU

# Modal's published per-second GPU prices (USD), snapshots of Apr–Jun 2026. Override per
# deployment (``--prices prices.json``): prices change and differ per plan and region.
MODAL_GPU_PRICE_PER_SECOND: dict[str, float] = {
    "T4": 0.000164,
    "L4": 0.000222,
    "A10G": 0.000306,
    "A100-40GB": 0.000583,
    "A100-80GB": 0.000694,
    "H100": 0.001097,
}
# The article this project started from priced the A10G at $0.54/h; Modal's published rate is
# about twice that. The report prints both so readers can reconcile estimates made with it.
SEED_A10G_PER_HOUR = 0.54
# Always-on alternatives, USD per hour: AWS on-demand g5.xlarge (one A10G, us-east-1) and a
# RunPod on-demand L4 pod (24 GB, A10G class; third-party snapshot, March 2026).
ALWAYS_ON_PER_HOUR: dict[str, float] = {
    "AWS EC2 g5.xlarge (A10G), on-demand": 1.006,
    "RunPod L4 pod, on-demand": 0.78,
}


def gpu_cost_usd(gpu_seconds: float, gpu: str, prices: dict[str, float] | None = None) -> float:
    """Dollars for ``gpu_seconds`` on ``gpu`` at per-second prices.

    Raises:
        KeyError: the GPU is not in the price table.
    """
    table = MODAL_GPU_PRICE_PER_SECOND if prices is None else prices
    if gpu not in table:
        raise KeyError(f"no price for GPU {gpu!r}; known: {', '.join(sorted(table))}")
    return gpu_seconds * table[gpu]


@dataclass(frozen=True)
class PriceTable:
    modal_per_second: dict[str, float] = field(
        default_factory=lambda: dict(MODAL_GPU_PRICE_PER_SECOND)
    )
    always_on_per_hour: dict[str, float] = field(default_factory=lambda: dict(ALWAYS_ON_PER_HOUR))

    @classmethod
    def load(cls, path: str | Path | None) -> PriceTable:
        """Defaults, updated from a JSON file ``{"modal_per_second": {...},
        "always_on_per_hour": {...}}`` when given."""
        table = cls()
        if path is None:
            return table
        data = json.loads(Path(path).read_text())
        unknown = set(data) - {"modal_per_second", "always_on_per_hour"}
        if unknown:
            raise ValueError(f"unknown price table sections: {', '.join(sorted(unknown))}")
        for section in ("modal_per_second", "always_on_per_hour"):
            for name, price in data.get(section, {}).items():
                if not isinstance(price, int | float) or price < 0:
                    raise ValueError(f"{section}.{name}: price must be a non-negative number")
                getattr(table, section)[name] = float(price)
        return table


@dataclass(frozen=True)
class Workload:
    """Embedding work recorded by materializations over a window."""

    window_hours: float
    runs: int
    texts: int
    tokens: int
    embed_seconds: float
    gpu_seconds: float
    backends: tuple[str, ...] = ()
    cache: CacheTotals | None = None


@dataclass(frozen=True)
class CacheTotals:
    """The embedding cache over the window (``core.registry.embedding_cache``): saved figures
    are each run's hits at that run's own measured cost per embedded text."""

    hits: int
    misses: int
    evictions: int
    texts_embedded: int
    embed_seconds_saved: float
    gpu_seconds_saved: float
    usd_saved: float

    def describe(self) -> str:
        looked_up = self.hits + self.misses
        rate = self.hits / looked_up if looked_up else 0.0
        return (
            f"Embedding cache: {self.hits:,} hits, {self.misses:,} misses ({rate:.1%} hit rate), "
            f"{self.evictions:,} evicted; {self.texts_embedded:,} texts embedded; saved "
            f"{self.embed_seconds_saved:,.1f} embed-s, {self.gpu_seconds_saved:,.1f} GPU-s, "
            f"${self.usd_saved:,.4f} (at each run's measured cost per embedded text)."
        )


@dataclass(frozen=True)
class CostLine:
    option: str
    basis: str
    usd: float


@dataclass(frozen=True)
class CostReport:
    workload: Workload
    gpu: str
    gpu_seconds: float
    gpu_seconds_source: str
    lines: list[CostLine]
    break_even_utilisation: dict[str, float]
    utilisation: float


def price_workload(
    workload: Workload,
    gpu: str = GPU,
    prices: PriceTable | None = None,
    assumed_tokens_per_gpu_second: float | None = None,
) -> CostReport:
    """Price the workload on Modal per second and on always-on GPUs for the same window.

    GPU-seconds are the ones Modal runs recorded. When none were recorded (local embedder), an
    estimate needs ``assumed_tokens_per_gpu_second``; without it the Modal line is priced at
    zero GPU-seconds and the report says so.

    Raises:
        KeyError: ``gpu`` has no Modal price.
    """
    prices = prices or PriceTable()
    per_second = prices.modal_per_second.get(gpu)
    if per_second is None:
        raise KeyError(f"no Modal price for GPU {gpu!r}; known: {sorted(prices.modal_per_second)}")
    if workload.gpu_seconds > 0:
        gpu_seconds, source = workload.gpu_seconds, "measured on Modal"
    elif assumed_tokens_per_gpu_second:
        gpu_seconds = workload.tokens / assumed_tokens_per_gpu_second
        source = f"estimated: {workload.tokens:,} tokens at {assumed_tokens_per_gpu_second:,.0f}/s"
    else:
        gpu_seconds, source = 0.0, "none recorded (local embedder); pass an assumed throughput"
    lines = [
        CostLine(
            f"Modal {gpu}, per second",
            f"{gpu_seconds:,.1f} GPU-s × ${per_second}/s",
            gpu_seconds * per_second,
        ),
        CostLine(
            f"Seed article's {gpu} rate",
            f"{gpu_seconds:,.1f} GPU-s × ${SEED_A10G_PER_HOUR}/h",
            gpu_seconds * SEED_A10G_PER_HOUR / 3600,
        ),
    ]
    for name, hourly in prices.always_on_per_hour.items():
        lines.append(
            CostLine(
                f"{name}, always on",
                f"{workload.window_hours:,.1f} h × ${hourly}/h",
                workload.window_hours * hourly,
            )
        )
    window_seconds = workload.window_hours * 3600
    return CostReport(
        workload=workload,
        gpu=gpu,
        gpu_seconds=gpu_seconds,
        gpu_seconds_source=source,
        lines=lines,
        break_even_utilisation={
            name: hourly / (per_second * 3600) for name, hourly in prices.always_on_per_hour.items()
        },
        utilisation=gpu_seconds / window_seconds if window_seconds else 0.0,
    )


def render_markdown(report: CostReport) -> str:
    w = report.workload
    rows = [
        f"Window: {w.window_hours:,.1f} h; {w.runs} embedding runs; {w.texts:,} chunks; "
        f"{w.tokens:,} tokens; embedder: {', '.join(w.backends) or 'none'}.",
        *([w.cache.describe()] if w.cache is not None else []),
        f"GPU-seconds ({report.gpu}): {report.gpu_seconds:,.1f} ({report.gpu_seconds_source}); "
        f"utilisation of one GPU over the window: {report.utilisation:.2%}.",
        "",
        "| option | basis | USD |",
        "| --- | --- | ---: |",
        *(f"| {line.option} | {line.basis} | {line.usd:,.4f} |" for line in report.lines),
        "",
        "| always-on option | break-even utilisation vs Modal |",
        "| --- | ---: |",
        *(f"| {name} | {share:.1%} |" for name, share in report.break_even_utilisation.items()),
        "",
        f"Always-on is cheaper only above the break-even utilisation. The A10G rate quoted "
        f"by the article this project started from (${SEED_A10G_PER_HOUR}/h) is below Modal's "
        f"published "
        f"${MODAL_GPU_PRICE_PER_SECOND['A10G'] * 3600:.2f}/h.",
    ]
    return "\n".join(rows)
