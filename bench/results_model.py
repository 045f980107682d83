"""What one ``bench.run`` invocation measured: filled in by ``bench.run``, rendered by
``bench.report``. A module of its own so the report needs no import of the runner (and the
runner, which writes the report, no cycle)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Results:
    args: argparse.Namespace
    machine: dict[str, str]
    command: str
    gpu: list[Any] = field(default_factory=list)  # GpuSpeedResult per repeat
    get_rates: list[Any] = field(default_factory=list)  # GetRate per repeat
    s3_populate: Any = None
    cost: Any = None
    burst: Any = None
    cpu: Any = None
    ui: Any = None
    errors: dict[str, str] = field(default_factory=dict)  # scenario → what failed
    total_seconds: float = 0.0
