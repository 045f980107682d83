"""What every step of a run shares, free of Dagster: its shards, and per-shard tallies.

The Dagster layer builds a :class:`RunScope` from the run's partition keys
(``defs.ingestion.run_files.run_scope``) and puts a :class:`ShardTally`'s counts and table on
each shard's materialization (``defs.ingestion.shard_report``); the steps themselves, and the
writer in ``core.pipeline.write``, only count.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rag_ingest.core.planning.shards import Shards
from rag_ingest.core.registry.model import Scope

# Documents listed per shard in a materialization's table of changes.
CHANGES_SHOWN = 50


@dataclass(frozen=True)
class RunScope:
    """The shards of a run, the documents it watches and where its intermediate files live."""

    layout: Shards
    watched: Scope
    shards: list[str]
    run_id: str
    storage_run: str

    @property
    def hashes(self) -> tuple[int, int]:
        """Key-hash range of the run (runs cover contiguous shard ranges)."""
        return self.layout.hash_range(self.shards[0], self.shards[-1])

    def shard_of(self, doc_id: str) -> str:
        return self.layout.of(doc_id)


@dataclass
class ShardTally:
    """Per-shard counts and a capped table of documents, one of each per shard of the run."""

    scope: RunScope
    columns: Sequence[str] = ("action", "object", "status", "reason")
    counts: dict[str, Counter[str]] = field(default_factory=dict)
    rows: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for shard in self.scope.shards:
            self.counts[shard] = Counter()
            self.rows[shard] = []

    def count(self, doc_id: str, **amounts: int) -> None:
        self.counts[self.scope.shard_of(doc_id)].update(amounts)

    def add(self, doc_id: str, *row: Any) -> None:
        shard = self.scope.shard_of(doc_id)
        self.counts[shard]["listed_documents"] += 1
        if len(self.rows[shard]) < CHANGES_SHOWN:
            self.rows[shard].append(row)

    def totals(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for counts in self.counts.values():
            total.update(counts)
        return total
