"""PartitionMetadata: per-partition metadata on a range run, without per-key partition listing."""

from collections.abc import Iterator
from typing import Any

import dagster as dg
import pytest

from rag_ingest import partition_metadata
from rag_ingest.partition_metadata import PartitionMetadata
from rag_ingest.sensors import RANGE_END_TAG, RANGE_START_TAG

PARTS = dg.DynamicPartitionsDefinition(name="pm_test")
KEYS = [f"doc-{i:03d}" for i in range(30)]
RANGE = {RANGE_START_TAG: KEYS[0], RANGE_END_TAG: KEYS[-1]}  # one run over every key


def _asset(mode: str) -> dg.AssetsDefinition:
    @dg.asset(partitions_def=PARTS, backfill_policy=dg.BackfillPolicy.single_run(), name="pm")
    def pm(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        keys = context.partition_keys
        if mode == "public":
            for key in keys:
                context.add_asset_metadata({"n": int(key[-3:])}, partition_key=key)
        else:
            per_doc = PartitionMetadata(context, keys)
            for key in keys:
                per_doc.add(key, {"n": int(key[-3:])})
                per_doc.add(key, {"key_again": key})  # merged with the first entry
            if mode == "unknown":
                per_doc.add("not-in-run", {"n": -1})
            per_doc.flush()
        return dg.MaterializeResult(metadata={"run_documents": len(keys)})

    return pm


@pytest.fixture
def instance(tmp_path: Any) -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test(temp_dir=str(tmp_path)) as inst:
        inst.add_dynamic_partitions(PARTS.name or "", KEYS)
        yield inst


def _run(
    instance: dg.DagsterInstance, mode: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[dg.ExecuteInProcessResult, int]:
    calls = 0
    original = dg.DagsterInstance.get_dynamic_partitions

    def counting(self: dg.DagsterInstance, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(dg.DagsterInstance, "get_dynamic_partitions", counting)
    result = dg.materialize(
        [_asset(mode)],
        instance=instance,
        tags=RANGE,
        raise_on_error=False,
    )
    monkeypatch.undo()
    return result, calls


def _metadata(result: dg.ExecuteInProcessResult) -> dict[str, dict[str, Any]]:
    out = {}
    for event in result.get_asset_materialization_events():
        mat = event.materialization
        assert mat.partition is not None
        out[mat.partition] = {k: v.value for k, v in mat.metadata.items()}
    return out


def test_each_partition_gets_its_own_metadata_plus_run_totals(
    instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    result, _ = _run(instance, "collector", monkeypatch)
    assert result.success
    meta = _metadata(result)
    assert sorted(meta) == KEYS
    for key in KEYS:
        assert meta[key] == {"n": int(key[-3:]), "key_again": key, "run_documents": len(KEYS)}


def test_partition_listing_does_not_grow_with_the_run(
    instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The public call lists every partition of the instance once per key; the collector must
    # not, or a 200-document run on an instance with 100k documents pays minutes for it.
    _, public_calls = _run(instance, "public", monkeypatch)
    _, collector_calls = _run(instance, "collector", monkeypatch)
    assert public_calls >= len(KEYS)
    assert collector_calls < 10


def test_key_outside_the_run_is_refused(
    instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    result, _ = _run(instance, "unknown", monkeypatch)
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error
    assert failure is not None and "not-in-run" in failure.message


def test_falls_back_to_the_public_call(
    instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(partition_metadata, "_add_to_accumulator", lambda *_: False)
    result = dg.materialize(
        [_asset("collector")],
        instance=instance,
        tags=RANGE,
    )
    assert _metadata(result)[KEYS[7]]["key_again"] == KEYS[7]
