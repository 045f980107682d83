"""What every ingestion step needs to know about its run: shards, files, per-shard reports."""

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from rag_ingest.core.config import Settings
from rag_ingest.core.md_table import md_table
from rag_ingest.core.pipeline.runfiles import DocumentRow, read_rows, run_path
from rag_ingest.core.planning.shards import Shards
from rag_ingest.resources import IntermediateStore

# Documents listed per shard in a materialization's table of changes.
CHANGES_SHOWN = 50
STORAGE_RUN = "storage_run"


@dataclass(frozen=True)
class RunScope:
    """The shards of a run and where its intermediate files live."""

    settings: Settings
    shards: list[str]
    run_id: str
    storage_run: str

    @property
    def layout(self) -> Shards:
        return self.settings.shard_layout

    @property
    def hashes(self) -> tuple[int, int]:
        """Key-hash range of the run (runs cover contiguous shard ranges)."""
        return self.layout.hash_range(self.shards[0], self.shards[-1])

    def shard_of(self, doc_id: str) -> str:
        return self.layout.of(doc_id)


def run_scope(context: dg.AssetExecutionContext, settings: Settings) -> RunScope:
    layout = settings.shard_layout
    shards = sorted(context.partition_keys, key=layout.index)
    run = context.run
    # Re-executions (run retries, "re-execute from failure") share the root run id, so a
    # retried step reads what the original run's earlier steps wrote.
    return RunScope(settings, shards, run.run_id, run.root_run_id or run.run_id)


def read_upstream(
    context: dg.AssetExecutionContext,
    scope: RunScope,
    storage: IntermediateStore,
    asset: str,
) -> Iterator[DocumentRow]:
    """The upstream asset's rows for this run's shards.

    In a run that materialized the upstream asset too (or a re-execution of one), that is the
    run's own file. A run of this asset alone reads, per shard, the file of the run that last
    materialized the upstream asset for that shard.
    """
    store = storage.store
    own = run_path(scope.storage_run, asset)
    if store.exists(own):
        yield from read_rows(store, own, [scope.hashes])
        return
    by_run: dict[str, list[tuple[int, int]]] = {}
    for shard in scope.shards:
        records = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[shard]),
            limit=1,
            ascending=False,
        ).records
        if not records:
            context.log.warning(f"shard {shard}: {asset} was never materialized; nothing to do")
            continue
        materialization = records[0].asset_materialization
        meta = materialization.metadata if materialization else {}
        source = getattr(meta.get(STORAGE_RUN), "value", None) or records[0].run_id
        by_run.setdefault(str(source), []).append(scope.layout.hash_range(shard))
    for source, ranges in by_run.items():
        path = run_path(source, asset)
        if not store.exists(path):
            raise dg.Failure(
                description=f"{asset} of run {source} is no longer stored (files are removed "
                "once their documents are written to Qdrant); materialize the whole ingest "
                "chain for these shards instead",
                metadata={"missing_file": store.uri(path)},
            )
        yield from read_rows(store, path, ranges)


@dataclass
class ShardReport:
    """Per-shard counts and a capped table of documents, for each shard's materialization."""

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

    def attach(
        self, context: dg.AssetExecutionContext, title: str, always: Sequence[str] = ()
    ) -> None:
        """Put each shard's counts (``always`` ones even at 0) and table on its
        materialization of the running asset."""
        for shard in self.scope.shards:
            counts = self.counts[shard]
            listed = counts.pop("listed_documents", 0)
            meta: dict[str, Any] = {name: 0 for name in always}
            meta |= {name: int(n) for name, n in sorted(counts.items())}
            meta[title] = dg.MetadataValue.md(md_table(self.columns, self.rows[shard], listed))
            meta[f"{title}_total"] = listed
            meta[STORAGE_RUN] = self.scope.storage_run
            context.add_asset_metadata(meta, partition_key=shard)
