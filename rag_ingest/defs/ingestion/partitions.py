"""What every ingestion asset shares: its group, the shard partitions and how backfills batch
them into runs (see ``core.planning.shards``)."""

import dagster as dg

from rag_ingest.core.config import Settings

GROUP = "ingestion"


def shard_partitions(settings: Settings) -> dg.StaticPartitionsDefinition:
    return dg.StaticPartitionsDefinition(settings.shard_layout.keys())


def backfill_policy(settings: Settings) -> dg.BackfillPolicy:
    """Backfills run ranges of shards, not one run per shard: the model loads once per run."""
    return dg.BackfillPolicy.multi_run(settings.shards_per_backfill_run)
