"""How a step finds its run and the files its upstream step wrote.

The steps pass documents through one file per asset per run (``core.pipeline.runfiles``),
read lazily in windows, rather than through Dagster inputs. An IO manager can stream (it can
drain a generator the step returns), but it writes after the step has returned its
materialization, and what it adds as output metadata lands identically on every partition of
the run: the per-shard counts and tables the steps tally while writing would be lost. Each
materialization records the run whose files hold it (:data:`STORAGE_RUN`), so a run of a
downstream asset alone finds them.
"""

from collections.abc import Iterator

import dagster as dg

from rag_ingest.core.config import Settings
from rag_ingest.core.pipeline.runfiles import DocumentRow, read_rows, run_path
from rag_ingest.core.pipeline.scope import RunScope
from rag_ingest.resources import IntermediateStore

STORAGE_RUN = "storage_run"


def run_scope(context: dg.AssetExecutionContext, settings: Settings) -> RunScope:
    layout = settings.shard_layout
    shards = sorted(context.partition_keys, key=layout.index)
    run = context.run
    # Re-executions (run retries, "re-execute from failure") share the root run id, so a
    # retried step reads what the original run's earlier steps wrote.
    return RunScope(layout, settings.scope, shards, run.run_id, run.root_run_id or run.run_id)


def read_upstream(
    context: dg.AssetExecutionContext,
    scope: RunScope,
    storage: IntermediateStore,
    asset: str,
) -> Iterator[DocumentRow]:
    """The upstream asset's rows for this run's shards.

    In a run that materialized the upstream asset too (or a re-execution of one), that is the
    run's own file. A run of this asset alone reads, per shard, the file of the run that last
    materialized the upstream asset for that shard.
    """
    store = storage.store
    own = run_path(scope.storage_run, asset)
    if store.exists(own):
        yield from read_rows(store, own, [scope.hashes])
        return
    by_run: dict[str, list[tuple[int, int]]] = {}
    for shard in scope.shards:
        records = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[shard]),
            limit=1,
            ascending=False,
        ).records
        if not records:
            context.log.warning(f"shard {shard}: {asset} was never materialized; nothing to do")
            continue
        materialization = records[0].asset_materialization
        meta = materialization.metadata if materialization else {}
        source = getattr(meta.get(STORAGE_RUN), "value", None) or records[0].run_id
        by_run.setdefault(str(source), []).append(scope.layout.hash_range(shard))
    for source, ranges in by_run.items():
        path = run_path(source, asset)
        if not store.exists(path):
            raise dg.Failure(
                description=f"{asset} of run {source} is no longer stored (run files are "
                "removed once their documents are in Qdrant), so this asset cannot run on its "
                "own for these shards. Materialize the four ingestion assets together (select "
                "raw_documents → qdrant_collection, or the job ingest_documents, for the same "
                "shards); to re-ingest documents already in the index, set "
                "`ops: raw_documents: config: force: true` in the launchpad",
                metadata={"missing_file": store.uri(path)},
            )
        yield from read_rows(store, path, ranges)
