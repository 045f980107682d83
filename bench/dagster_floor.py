"""Dagster's own cost per document: the ingestion job's shape with asset bodies that do nothing.

Four chained assets on the project's partitions definition and backfill policy, range runs of
``per_run`` partitions executed in process on a fresh SQLite instance, each body attaching one
metadata entry per partition as the real assets do. What remains is run creation (one planned
event per asset and partition), step orchestration and storing one materialization per asset
and partition: the floor under any design with one partition per document.

A second measurement shows the profile-driven change in ``rag_ingest.partition_metadata``: one
asset attaching per-partition metadata with Dagster's public ``add_asset_metadata`` (which lists
every registered partition on each call) against the project's collector, on an instance that
holds ``registered`` partitions.
"""

import tempfile
from dataclasses import dataclass
from typing import Any

from .common import Stopwatch, env_vars

# Dagster reads this when it creates a run: one planned event per asset carrying the run's
# partition subset, instead of one per asset and partition. Its documented cost: partitions of
# a failed run are not marked failed in Dagster's partition status.
SUBSET_PLANNED_ENV = "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"

ASSETS = ("raw_documents", "chunks", "embeddings", "qdrant_collection")


@dataclass
class FloorMeasure:
    documents: int
    runs: int
    seconds: float

    @property
    def per_document(self) -> float:
        return self.seconds / self.documents if self.documents else float("nan")


@dataclass
class MetadataMeasure:
    registered: int
    partitions: int
    public_seconds: float
    collector_seconds: float


def _chain(length: int, public_metadata: bool) -> list[Any]:
    """``length`` chained assets named as the project's; per-partition metadata attached with
    Dagster's ``add_asset_metadata`` (``public_metadata``) or the project's collector."""
    import dagster as dg
    from rag_ingest.assets import BACKFILL_POLICY
    from rag_ingest.partition_metadata import PartitionMetadata
    from rag_ingest.partitions import documents_partitions

    def make(name: str, upstream: Any) -> Any:
        @dg.asset(
            name=name,
            partitions_def=documents_partitions,
            backfill_policy=BACKFILL_POLICY,
            deps=[upstream] if upstream is not None else [],
        )
        def body(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
            keys = context.partition_keys
            if public_metadata:
                for key in keys:
                    context.add_asset_metadata({"status": "ok"}, partition_key=key)
            else:
                per_doc = PartitionMetadata(context, keys)
                for key in keys:
                    per_doc.add(key, {"status": "ok"})
                per_doc.flush()
            return dg.MaterializeResult(metadata={"run_documents": len(keys)})

        return body

    assets: list[Any] = []
    for name in ASSETS[:length]:
        assets.append(make(name, assets[-1] if assets else None))
    return assets


def _run_ranges(instance: Any, assets: list[Any], keys: list[str], per_run: int) -> int:
    import dagster as dg
    from rag_ingest.sensors import RANGE_END_TAG, RANGE_START_TAG

    from .pipeline import QUIET_LOGS

    runs = 0
    for start in range(0, len(keys), per_run):
        part = keys[start : start + per_run]
        result = dg.materialize(
            assets,
            instance=instance,
            run_config=QUIET_LOGS,
            tags={RANGE_START_TAG: part[0], RANGE_END_TAG: part[-1]},
        )
        assert result.success
        runs += 1
    return runs


def run_floor(documents: int, per_run: int, subset_planned: bool = False) -> FloorMeasure:
    """The four-asset chain over ``documents`` fresh partitions, ``per_run`` per run.

    ``subset_planned``: with :data:`SUBSET_PLANNED_ENV` set (one planned event per asset).
    """
    import dagster as dg
    from rag_ingest.partitions import DOCUMENTS_PARTITION

    keys = [f"floor-{i:07d}" for i in range(documents)]
    with tempfile.TemporaryDirectory() as home, dg.instance_for_test(temp_dir=home) as instance:
        instance.add_dynamic_partitions(DOCUMENTS_PARTITION, keys)
        with (
            env_vars(**{SUBSET_PLANNED_ENV: "true" if subset_planned else None}),
            Stopwatch() as sw,
        ):
            runs = _run_ranges(instance, _chain(len(ASSETS), False), keys, per_run)
    return FloorMeasure(documents, runs, sw.seconds)


def run_metadata(registered: int, partitions: int) -> MetadataMeasure:
    """One asset, one run of ``partitions`` keys, on an instance holding ``registered`` keys."""
    import dagster as dg
    from rag_ingest.partitions import DOCUMENTS_PARTITION

    keys = [f"meta-{i:07d}" for i in range(max(registered, partitions))]
    seconds: dict[bool, float] = {}
    with tempfile.TemporaryDirectory() as home, dg.instance_for_test(temp_dir=home) as instance:
        instance.add_dynamic_partitions(DOCUMENTS_PARTITION, keys)
        for public in (True, False):
            with Stopwatch() as sw:
                _run_ranges(instance, _chain(1, public), keys[:partitions], partitions)
            seconds[public] = sw.seconds
    return MetadataMeasure(len(keys), partitions, seconds[True], seconds[False])
