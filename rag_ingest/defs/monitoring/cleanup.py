"""``intermediate_files``: remove what runs that ended without writing to Qdrant left behind.

A run deletes its own intermediate files once its documents are written. A run that failed
keeps them, so "re-execute from failure" can resume; once it has ended longer ago than the
retention, nothing will resume it (the next reconcile redoes the work) and its files go.
"""

import time

import dagster as dg
from pydantic import Field

from rag_ingest.core.pipeline.runfiles import RUNS
from rag_ingest.defs.monitoring import GROUP
from rag_ingest.resources import IntermediateStore

_FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


class CleanupConfig(dg.Config):
    retention_hours: float = Field(
        default=72.0,
        description="Hours after a run ended (failed, canceled or succeeded without cleaning "
        "up) before its intermediate files are removed; until then it can be re-executed "
        "from failure.",
    )


@dg.asset(
    group_name=GROUP,
    kinds={"parquet"},
    description="Removes intermediate files of runs that ended longer ago than the retention.",
)
def intermediate_files(
    context: dg.AssetExecutionContext, config: CleanupConfig, storage: IntermediateStore
) -> dg.MaterializeResult:
    store = storage.store
    cutoff = time.time() - config.retention_hours * 3600
    kept = removed = 0
    for run_id in store.list_dirs(RUNS):
        record = context.instance.get_run_record_by_id(run_id)
        ended = record.end_time if record is not None else None
        finished = record is None or record.dagster_run.status in _FINISHED
        # Unknown runs (another instance, a reset one) have no end time: removed as well.
        if finished and (ended is None or ended < cutoff) and run_id != context.run_id:
            store.delete_tree(f"{RUNS}/{run_id}")
            removed += 1
        else:
            kept += 1
    return dg.MaterializeResult(metadata={"run_folders_removed": removed, "run_folders_kept": kept})
