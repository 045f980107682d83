"""The monitoring domain's definitions: its assets, their job and the daily schedule (which
also builds any vector index backlog: ``defs.maintenance.index``)."""

import dagster as dg

from rag_ingest.core.config import Settings, load_settings
from rag_ingest.defs.monitoring import GROUP
from rag_ingest.defs.monitoring.cleanup import intermediate_files
from rag_ingest.defs.monitoring.cost import embedding_cost_report
from rag_ingest.defs.monitoring.health import build_collection_health


def monitoring_definitions(settings: Settings) -> dg.Definitions:
    job = dg.define_asset_job(
        "monitor_collection",
        selection=dg.AssetSelection.groups(GROUP) | dg.AssetSelection.assets("index_maintenance"),
        executor_def=dg.in_process_executor,
        description="Collection health, drift, index versions, cost report, file clean-up, and "
        "the vector index built.",
    )
    schedule = dg.ScheduleDefinition(
        name="monitor_collection_schedule",
        job=job,
        cron_schedule=settings.monitor_cron,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Health, drift and cost of the collection (RAG_MONITOR_CRON).",
    )
    return dg.Definitions(
        assets=[build_collection_health(settings), embedding_cost_report, intermediate_files],
        jobs=[job],
        schedules=[schedule],
    )


@dg.definitions
def defs() -> dg.Definitions:
    return monitoring_definitions(load_settings())
