"""The maintenance domain's definitions."""

import dagster as dg

from rag_ingest.core.config import Settings, load_settings
from rag_ingest.defs.maintenance.reingest import build_reingest_job


def maintenance_definitions(settings: Settings) -> dg.Definitions:
    return dg.Definitions(jobs=[build_reingest_job(settings)])


@dg.definitions
def defs() -> dg.Definitions:
    return maintenance_definitions(load_settings())
