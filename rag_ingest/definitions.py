"""The code location, loaded the ``dg`` way from ``rag_ingest/defs/`` (one folder per domain).

``dg dev``, ``make dev`` and ``dagster dev`` (``workspace.yaml``) all load ``defs``.
Every domain builds its definitions from one :class:`~rag_ingest.core.config.Settings`, read
from the environment once; :func:`build_definitions` builds the same set from explicit settings
(tests, scripts).
"""

import warnings
from pathlib import Path

import dagster as dg

from rag_ingest.core.config import Settings, load_settings
from rag_ingest.defs.ingestion.definitions import ingestion_definitions
from rag_ingest.defs.maintenance.definitions import maintenance_definitions
from rag_ingest.defs.monitoring.definitions import monitoring_definitions
from rag_ingest.defs.resources import resource_definitions

# backfill_policy is "beta" in 1.13 but is the documented way to batch partitions into runs.
# Set on import, before any definitions are built (the defs folder and build_definitions both
# come through this module).
warnings.filterwarnings("ignore", category=dg.BetaWarning, message=".*backfill_policy.*")


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    settings = settings or load_settings()
    return dg.Definitions.merge(
        ingestion_definitions(settings),
        maintenance_definitions(settings),
        monitoring_definitions(settings),
        resource_definitions(settings),
    )


@dg.definitions
def defs() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
