from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from rag_ingest import sensors as sensors_module
from rag_ingest.core import registry as registry_module
from rag_ingest.core.config import Settings
from rag_ingest.core.keys import partition_key
from rag_ingest.partitions import DOCUMENTS_PARTITION
from rag_ingest.resources import DocumentRegistry
from rag_ingest.sensors import RANGE_END_TAG, RANGE_START_TAG, build_s3_sensor, sensor_name
from rag_ingest_tests.helpers import Harness, make_resources


def _put_many(client: Any, bucket: str, keys: list[str]) -> None:
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: client.put_object(Bucket=bucket, Key=k, Body=k.encode()), keys))


def _covered(result: dg.SensorResult, ordered: Sequence[str]) -> list[str]:
    keys: list[str] = []
    for request in result.run_requests or []:
        assert isinstance(request, dg.RunRequest)
        first, last = request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG]
        keys += ordered[ordered.index(first) : ordered.index(last) + 1]
    return keys


def test_paginates_caps_per_tick_and_never_skips_same_second_objects(
    s3_endpoint: str, s3_client: Any, bucket: str, tmp_path: Path
) -> None:
    keys = [f"docs/{i:05d}.txt" for i in range(1205)]
    _put_many(s3_client, bucket, keys)
    s3_client.put_object(Bucket=bucket, Key="docs/folder/", Body=b"")  # a folder marker
    s3_client.put_object(Bucket=bucket, Key="elsewhere/x.txt", Body=b"x")  # outside the prefix
    seconds = {
        o["LastModified"]
        for p in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="docs/")
        for o in p.get("Contents", [])
    }
    assert len(seconds) < 1205  # many objects share a LastModified second

    with dg.instance_for_test() as instance:
        harness = Harness(
            instance,
            make_resources(s3_endpoint, bucket, tmp_path),
            prefix="docs/",
            max_new_per_tick=500,
            partitions_per_run=200,
        )
        requested: list[str] = []
        sizes = []
        for _ in range(3):
            result = harness.tick()
            ordered = instance.get_dynamic_partitions(DOCUMENTS_PARTITION)
            covered = _covered(result, ordered)
            sizes.append(len(covered))
            counts = [int(_count(r, ordered)) for r in result.run_requests or []]
            assert max(counts) <= 200
            requested += covered
        assert sizes == [500, 500, 205]
        expected = {partition_key(bucket, k) for k in keys}
        assert sorted(requested) == sorted(expected)  # each exactly once, nothing else
        assert set(instance.get_dynamic_partitions(DOCUMENTS_PARTITION)) == expected
        assert len(harness.cursor or "") < 12  # the cursor is one integer, not a key list
        quiet = harness.tick()
        assert not quiet.run_requests


def _count(request: Any, ordered: Sequence[str]) -> int:
    first, last = request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG]
    return ordered.index(last) - ordered.index(first) + 1


def test_a_tick_that_died_after_registering_is_repaired_by_the_next(
    s3_endpoint: str, s3_client: Any, bucket: str, tmp_path: Path
) -> None:
    _put_many(s3_client, bucket, ["a.md", "b.md"])
    with dg.instance_for_test() as instance:
        harness = Harness(instance, make_resources(s3_endpoint, bucket, tmp_path))
        registry = harness.resources["registry"]
        assert isinstance(registry, DocumentRegistry)
        from rag_ingest.core.s3 import list_objects

        # The registry write happened, the partitions and runs did not (daemon crash).
        registry.registry.register(
            list(
                list_objects(
                    harness.resources["s3_source"].client,  # type: ignore[attr-defined]
                    bucket,
                    "",
                )
            )
        )
        result = harness.tick()
        ordered = instance.get_dynamic_partitions(DOCUMENTS_PARTITION)
        assert sorted(_covered(result, ordered)) == sorted(
            partition_key(bucket, k) for k in ("a.md", "b.md")
        )
        assert result.run_requests and all(
            isinstance(r, dg.RunRequest) and r.run_key for r in result.run_requests
        )


def test_one_sensor_per_prefix_running_only_when_a_bucket_is_set() -> None:
    settings = Settings.from_env({"RAG_S3_BUCKET": "b", "RAG_S3_PREFIXES": "docs/, reports/q3 ,"})
    sensors = [build_s3_sensor(p, settings) for p in settings.prefixes]
    assert [s.name for s in sensors] == [sensor_name("docs/"), sensor_name("reports/q3")]
    assert all(s.default_status == dg.DefaultSensorStatus.RUNNING for s in sensors)
    assert all(s.minimum_interval_seconds == 30 for s in sensors)
    unset = Settings.from_env({})
    assert unset.prefixes == ("",)
    assert build_s3_sensor("", unset).default_status == dg.DefaultSensorStatus.STOPPED


@pytest.mark.slow
def test_a_burst_of_10000_objects_becomes_tens_of_runs(
    s3_endpoint: str, s3_client: Any, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Registry rows and partitions are written in slices; uneven ones here, to cover the seams.
    monkeypatch.setattr(registry_module, "INSERT_BATCH", 700)
    monkeypatch.setattr(sensors_module, "PARTITIONS_PER_ADD", 700)
    keys = [f"burst/{i // 100:03d}/{i:05d}.txt" for i in range(10_000)]
    _put_many(s3_client, bucket, keys)
    with dg.instance_for_test() as instance:
        harness = Harness(instance, make_resources(s3_endpoint, bucket, tmp_path))
        first, second = harness.tick(), harness.tick()  # 5,000 new objects per tick by default
        assert harness.tick().run_requests == []
        requests = [*(first.run_requests or []), *(second.run_requests or [])]
        assert len(requests) == 50  # 10,000 documents / 200 per run
        ordered = instance.get_dynamic_partitions(DOCUMENTS_PARTITION)
        covered = _covered(first, ordered) + _covered(second, ordered)
        assert sorted(covered) == sorted(partition_key(bucket, k) for k in keys)
        assert harness.registry.status_counts() == {"pending": 10_000}
        seqs = [seq for _, seq, _ in harness.registry.requested_after(0, bucket, "")]
        assert seqs == list(range(1, 10_001))
