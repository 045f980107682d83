"""What one ``bench.peers`` invocation measured: filled in by ``bench.peers``, rendered by
``bench.peer_report`` (a module of its own, so neither imports the other)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .peer_systems import SyncFigures

PHASES = ("cold", "unchanged", "changed", "edit")
SYSTEMS = ("project", "llamaindex", "seed")


@dataclass
class PeersResult:
    """What one invocation measured: per repeat, phase and system."""

    documents: int
    chunks: int  # by the project's chunker at the budget
    long_key: str
    long_chunks: int
    changed: list[str]
    max_tokens: int
    overlap: int
    shards: int
    repeats: list[dict[str, dict[str, SyncFigures]]] = field(default_factory=list)
    confirm_seconds: list[list[float]] = field(default_factory=list)  # the project's, per phase
    load: list[tuple[float, float, float]] = field(default_factory=list)  # before, after

    def figures(self, phase: str, system: str) -> list[SyncFigures]:
        return [r[phase][system] for r in self.repeats]

    def texts(self, phase: str, system: str) -> int:
        """Texts embedded: the same in every repeat (checked), so the first's."""
        counts = {f.texts_embedded for f in self.figures(phase, system)}
        if len(counts) != 1:
            raise AssertionError(f"{system} embedded {counts} texts in {phase} across repeats")
        return counts.pop()

    def median_wall(self, phase: str, system: str) -> float:
        walls = sorted(f.wall_seconds for f in self.figures(phase, system))
        mid = len(walls) // 2
        return walls[mid] if len(walls) % 2 else (walls[mid - 1] + walls[mid]) / 2

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
