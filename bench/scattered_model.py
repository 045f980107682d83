"""What ``bench.scattered`` measures: each batch of changes and the cold ingest beside it."""

from __future__ import annotations

from dataclasses import dataclass, field

from .gpu_speed import GpuSpeedResult, RunTiming, TickTiming
from .scattered_changes import Change


@dataclass
class Batch:
    label: str
    changes: int
    kinds: dict[str, int]
    shards_changed: int
    bridge_shards: int
    ticks: list[TickTiming] = field(default_factory=list)
    runs: list[RunTiming] = field(default_factory=list)
    events: list[dict[str, int]] = field(default_factory=list)  # per run, by event type
    made: list[Change] = field(default_factory=list)
    load: float = float("nan")  # 1-minute load average when the batch started
    searchable: float = float("nan")  # tick start → the lookup that shows every change
    last_run_end: float = float("nan")
    lookup_seconds: float = 0.0
    left: int = -1  # changes the last lookup did not show

    @property
    def shards_run(self) -> int:
        return sum(r.shards for r in self.runs)

    @property
    def tick_seconds(self) -> float:
        return sum(t.seconds for t in self.ticks)

    @property
    def listing(self) -> float:
        return sum(t.listing_seconds for t in self.ticks)

    @property
    def run_seconds(self) -> float:
        return sum(r.wall for r in self.runs)

    @property
    def dagster(self) -> float:
        return sum(r.dagster for r in self.runs)

    @property
    def bodies(self) -> float:
        return sum(r.bodies for r in self.runs)

    @property
    def materializations(self) -> int:
        return sum(e.get("ASSET_MATERIALIZATION", 0) for e in self.events)


@dataclass
class ScatteredResult:
    documents: int
    shards: int
    storage: str
    cold: GpuSpeedResult
    batches: list[Batch] = field(default_factory=list)
    floors: list[RunTiming] = field(default_factory=list)  # one idle shard, every shard
    floor_events: list[dict[str, int]] = field(default_factory=list)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def ratio(self, batch: Batch) -> float:
        return batch.searchable / self.cold.wall if self.cold.wall else float("nan")

    def ratio_without_listing(self, batch: Batch) -> float:
        """The same ratio with moto's LIST (quadratic in the bucket, unlike S3's) taken out of
        both sides."""
        cold = self.cold.wall_without_listing
        return (batch.searchable - batch.listing) / cold if cold else float("nan")
