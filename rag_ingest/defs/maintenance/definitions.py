"""The maintenance domain's definitions: re-ingest chosen documents, and build the vector index
outside the ingestion runs (a sensor on the unindexed backlog; the daily monitoring job too)."""

import dagster as dg

from rag_ingest.core.config import Settings, load_settings
from rag_ingest.defs.maintenance.index import (
    ASSET,
    JOB,
    build_index_maintenance,
    build_index_sensor,
)
from rag_ingest.defs.maintenance.reingest import build_reingest_job


def maintenance_definitions(settings: Settings) -> dg.Definitions:
    index_job = dg.define_asset_job(
        JOB,
        selection=dg.AssetSelection.assets(ASSET),
        executor_def=dg.in_process_executor,
        description="Build the live and current collections' vector index (Qdrant Edge).",
    )
    return dg.Definitions(
        assets=[build_index_maintenance(settings)],
        jobs=[build_reingest_job(settings), index_job],
        sensors=[build_index_sensor(settings)],
    )


@dg.definitions
def defs() -> dg.Definitions:
    return maintenance_definitions(load_settings())
