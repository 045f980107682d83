"""GPU prices and the cost of measured GPU time."""

from __future__ import annotations

# Modal's published per-second GPU prices (USD), as of mid-2026. Override per deployment.
MODAL_GPU_PRICE_PER_SECOND: dict[str, float] = {
    "T4": 0.000164,
    "L4": 0.000222,
    "A10G": 0.000306,
    "A100-40GB": 0.000583,
    "A100-80GB": 0.000694,
    "H100": 0.001097,
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
