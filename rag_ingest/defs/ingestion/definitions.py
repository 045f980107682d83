"""The ingestion domain's definitions, built from the deployment's settings."""

import dagster as dg

from rag_ingest.core.config import Settings, load_settings
from rag_ingest.defs.checks import build_registry_check
from rag_ingest.defs.ingestion.assets import GROUP, build_ingestion_assets
from rag_ingest.defs.ingestion.partitions import shard_partitions
from rag_ingest.defs.ingestion.sensors import INGEST_JOB, build_listing_sensor, sensor_names


def ingestion_definitions(settings: Settings) -> dg.Definitions:
    names = sensor_names(settings.prefixes)
    ingest_job = dg.define_asset_job(
        INGEST_JOB,
        selection=dg.AssetSelection.groups(GROUP),
        partitions_def=shard_partitions(settings),
        executor_def=dg.in_process_executor,
        description="Reconcile a range of key-space shards: S3 objects → chunks → embeddings "
        "→ Qdrant (the model loads once per run, not once per step).",
    )
    sensors = [build_listing_sensor(p, names[p], settings) for p in settings.prefixes]
    if settings.events_queue_url:
        from rag_ingest.defs.ingestion.events import build_events_sensor

        sensors.append(build_events_sensor(settings))
    return dg.Definitions(
        assets=build_ingestion_assets(settings),
        asset_checks=[build_registry_check(settings)],
        jobs=[ingest_job],
        sensors=sensors,
    )


@dg.definitions
def defs() -> dg.Definitions:
    return ingestion_definitions(load_settings())
