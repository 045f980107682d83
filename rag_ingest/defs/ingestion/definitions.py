"""The ingestion domain's definitions, built from the deployment's settings.

Each asset has its own module (``raw_documents`` → ``chunks`` → ``embeddings`` →
``qdrant_collection``), each a factory over the settings; this assembles them with the
registry check, the job and the sensors.
"""

import dagster as dg

from rag_ingest.core.config import Settings, load_settings
from rag_ingest.defs.ingestion.checks import build_registry_check
from rag_ingest.defs.ingestion.chunks import build_chunks
from rag_ingest.defs.ingestion.embeddings import build_embeddings
from rag_ingest.defs.ingestion.partitions import GROUP, shard_partitions
from rag_ingest.defs.ingestion.qdrant_collection import build_qdrant_collection
from rag_ingest.defs.ingestion.raw_documents import build_raw_documents
from rag_ingest.defs.ingestion.sensors import INGEST_JOB, build_listing_sensor, sensor_names


def ingestion_assets(settings: Settings) -> list[dg.AssetsDefinition]:
    """The four steps of a reconcile run, in order."""
    return [
        build_raw_documents(settings),
        build_chunks(settings),
        build_embeddings(settings),
        build_qdrant_collection(settings),
    ]


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
        from rag_ingest.defs.ingestion.event_sensor import build_events_sensor

        sensors.append(build_events_sensor(settings))
    return dg.Definitions(
        assets=ingestion_assets(settings),
        asset_checks=[build_registry_check(settings)],
        jobs=[ingest_job],
        sensors=sensors,
    )


@dg.definitions
def defs() -> dg.Definitions:
    return ingestion_definitions(load_settings())
