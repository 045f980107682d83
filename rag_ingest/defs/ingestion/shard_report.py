"""A run's per-shard counts and tables, put on each shard's materialization.

A run over many shards materializes each of them; the counting itself is plain
(``core.pipeline.scope.ShardTally``), this adds the Dagster half: one metadata set per shard.
"""

from collections.abc import Sequence
from typing import Any

import dagster as dg

from rag_ingest.core.md_table import md_table
from rag_ingest.core.pipeline.scope import ShardTally
from rag_ingest.defs.ingestion.run_files import STORAGE_RUN


class ShardReport(ShardTally):
    """Per-shard counts and a capped table of documents, for each shard's materialization."""

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
