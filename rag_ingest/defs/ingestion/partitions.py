"""What every ingestion asset shares: its group, the shard partitions and how backfills batch
them into runs (see ``core.planning.shards``)."""

from typing import Any

import dagster as dg

from rag_ingest.core.config import Settings

GROUP = "ingestion"


def shard_partitions(settings: Settings) -> dg.StaticPartitionsDefinition:
    return dg.StaticPartitionsDefinition(settings.shard_layout.keys())


def backfill_policy(settings: Settings) -> dg.BackfillPolicy:
    """Backfills run ranges of shards, not one run per shard: the model loads once per run."""
    return dg.BackfillPolicy.multi_run(settings.shards_per_backfill_run)


def shard_asset(settings: Settings, **kwargs: Any) -> Any:
    """``@dg.asset`` for an ingestion asset: partitioned by shard, batched by the backfill
    policy, in the ingestion group; ``kwargs`` add what is the asset's own."""
    return dg.asset(
        partitions_def=shard_partitions(settings),
        backfill_policy=backfill_policy(settings),
        group_name=GROUP,
        **kwargs,
    )
