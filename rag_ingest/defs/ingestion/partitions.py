"""The one partitions definition: fixed key-space shards (see ``core.shards``)."""

import dagster as dg

from rag_ingest.core.config import Settings


def shard_partitions(settings: Settings) -> dg.StaticPartitionsDefinition:
    return dg.StaticPartitionsDefinition(settings.shard_layout.keys())
