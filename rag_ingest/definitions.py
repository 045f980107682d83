"""The code location, loaded the ``dg`` way from ``rag_ingest/defs/`` (one folder per domain).

``dg dev``, ``make dev`` and ``dagster dev`` (``workspace.yaml``) all load ``defs``.
Every domain builds its definitions from one :class:`~rag_ingest.core.config.Settings`, read
from the environment once; :func:`build_definitions` builds the same set from explicit settings
(tests, scripts).
"""

import multiprocessing
import sys
import warnings
from pathlib import Path

import dagster as dg
from dagster.components.core.component_tree import ComponentTree

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


def in_run_worker() -> bool:
    """Whether this process executes a run (or a step) rather than serving the code location.

    Dagster's code server starts each launched run in a ``multiprocessing`` child (and the
    multiprocess executor each step); other run launchers start ``dagster api execute_run`` /
    ``execute_step``. The code server, the UI and ``dg`` load definitions in a main process.
    """
    api_commands = {"execute_run", "execute_step"}
    return multiprocessing.parent_process() is not None or bool(api_commands & set(sys.argv[1:3]))


def _defs_folder_without_catalogue(project: Path) -> dg.Definitions:
    """The defs folder's definitions alone: what ``load_from_defs_folder`` builds, less the
    catalogue of every component type installed (entry points scanned, a JSON schema per type),
    which only the UI and ``dg`` read (repository metadata) and a run never does."""
    tree = ComponentTree.for_project(path_within_project=project)
    # load_from_defs_folder silences Dagster's preview warnings of the same loading.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return tree.build_defs(tree.defs_module_path)


@dg.definitions
def defs() -> dg.Definitions:
    project = Path(__file__).parent
    if in_run_worker():
        return _defs_folder_without_catalogue(project)
    return dg.load_from_defs_folder(path_within_project=project)
