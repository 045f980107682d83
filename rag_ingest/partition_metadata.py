"""Per-partition materialization metadata for range runs, at a cost independent of the instance.

``AssetExecutionContext.add_asset_metadata(partition_key=...)`` in dagster 1.13 validates the key
by listing every dynamic partition of the instance on each call: ~175 ms per call with 100,000
partitions registered (SQLite), so a 200-partition run spent minutes per asset on validation
alone. :class:`PartitionMetadata` validates the run's keys once and hands all entries to the
step's metadata accumulator in one update, which is what the public call does after validating.
Should a future Dagster drop that accumulator, it falls back to the public call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg


class PartitionMetadata:
    """Collects metadata per partition key of the running asset; :meth:`flush` attaches it.

    Args:
        context: The asset's execution context.
        partition_keys: The run's partition keys (``context.partition_keys``, read once by the
            caller: that property lists the instance's partitions too).
    """

    def __init__(self, context: dg.AssetExecutionContext, partition_keys: Sequence[str]) -> None:
        self._context = context
        self._targeted = frozenset(partition_keys)
        self._entries: dict[str, dict[str, Any]] = {}

    def add(self, partition_key: str, metadata: Mapping[str, Any]) -> None:
        if partition_key not in self._targeted:
            raise dg.DagsterInvariantViolationError(
                f"partition {partition_key!r} is not targeted by this run"
            )
        self._entries.setdefault(partition_key, {}).update(metadata)

    def flush(self) -> None:
        """Attach everything collected to the partitions' materializations (once per step)."""
        if not self._entries:
            return
        entries, self._entries = self._entries, {}
        if not _add_to_accumulator(self._context, entries):
            for key, metadata in entries.items():
                self._context.add_asset_metadata(metadata, partition_key=key)


def _add_to_accumulator(
    context: dg.AssetExecutionContext, entries: Mapping[str, Mapping[str, Any]]
) -> bool:
    try:
        from dagster._core.execution.context.metadata_logging import (
            AssetMetadataHandle,
            OutputMetadataAccumulator,
        )

        step = context.op_execution_context._step_execution_context
        accumulator = step._metadata_accumulator
        current = dict(accumulator.per_output_metadata)
    except (ImportError, AttributeError):
        return False
    asset_key = context.assets_def.key
    for key, metadata in entries.items():
        handle = AssetMetadataHandle(asset_key=asset_key, partition_key=key)
        current[handle] = {**current.get(handle, {}), **metadata}
    step._metadata_accumulator = OutputMetadataAccumulator(per_output_metadata=current)
    return True
