"""Listing sensors on real moto S3 and a real Dagster instance: registration, run requests,
bursts, in-flight shards, back-off after failed runs, prefixes and their names."""

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from rag_ingest.core.config import Settings
from rag_ingest.core.keys import document_id
from rag_ingest.core.registry import store as registry_store
from rag_ingest.core.storage.s3 import list_objects
from rag_ingest.defs.ingestion.sensors import (
    RANGE_END_TAG,
    RANGE_START_TAG,
    build_listing_sensor,
    sensor_names,
)
from rag_ingest.resources import LocalEmbedder
from rag_ingest.testing.harness import Harness, make_resources, make_settings
from rag_ingest_tests.sync_oracle import expected_versions, text


def _put_many(client: Any, bucket: str, keys: list[str]) -> None:
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: client.put_object(Bucket=bucket, Key=k, Body=k.encode()), keys))


def _harness(instance: Any, endpoint: str, bucket: str, data: Path, **changes: Any) -> Harness:
    settings = make_settings(bucket, data, **changes)
    return Harness(instance, settings, make_resources(endpoint, settings))


def _requested_shards(harness: Harness, result: dg.SensorResult) -> list[str]:
    layout = harness.settings.shard_layout
    shards: list[str] = []
    for request in result.run_requests or []:
        assert isinstance(request, dg.RunRequest)
        shards += layout.span(request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG])
    return shards


def _registered(harness: Harness, bucket: str, prefix: str = "") -> set[str]:
    return set(harness.registry.known(bucket, prefix))


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
        harness = _harness(
            instance,
            s3_endpoint,
            bucket,
            tmp_path,
            prefixes=("docs/",),
            max_new_per_tick=500,
            documents_per_run=200,
        )
        layout = harness.settings.shard_layout
        sizes: list[int] = []
        registered: set[str] = set()
        for _ in range(3):
            result = harness.tick()
            new = _registered(harness, bucket) - registered
            registered |= new
            sizes.append(len(registered))
            # Shards that got new documents are requested (the others back off: their work
            # is unchanged since the last request, and nothing ran it here).
            shards_with_new_work = {layout.of(document_id(bucket, k)) for k in new}
            assert set(_requested_shards(harness, result)) >= shards_with_new_work
            for request in result.run_requests or []:
                first, last = request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG]
                docs = int(request.tags["rag_ingest/documents"])
                assert docs <= 200 or first == last  # a shard is never split
        assert sizes == [500, 1000, 1205]
        assert _registered(harness, bucket) == set(keys)  # each exactly once, nothing else
        assert harness.tick() is not None and _registered(harness, bucket) == set(keys)


def test_a_tick_that_died_after_registering_is_repaired_by_the_next(
    s3_endpoint: str, s3_client: Any, bucket: str, tmp_path: Path
) -> None:
    _put_many(s3_client, bucket, ["a.md", "b.md"])
    with dg.instance_for_test() as instance:
        harness = _harness(instance, s3_endpoint, bucket, tmp_path)
        # The registry write happened, the runs did not (daemon crash).
        harness.registry.register(
            list(list_objects(harness.resources["s3_source"].client, bucket, ""))
        )  # type: ignore[attr-defined]
        result = harness.tick()
        layout = harness.settings.shard_layout
        wanted = {layout.of(document_id(bucket, k)) for k in ("a.md", "b.md")}
        assert wanted <= set(_requested_shards(harness, result))
        assert result.run_requests and all(
            isinstance(r, dg.RunRequest) and r.run_key for r in result.run_requests
        )


def test_shards_held_by_a_run_in_flight_are_not_requested_again(
    s3_endpoint: str, s3_client: Any, bucket: str, tmp_path: Path
) -> None:
    _put_many(s3_client, bucket, ["a.md"])
    with dg.instance_for_test() as instance:
        harness = _harness(instance, s3_endpoint, bucket, tmp_path)
        (request,) = harness.tick().run_requests or []
        assert isinstance(request, dg.RunRequest)
        queued = instance.create_run_for_job(
            job_def=harness.job("ingest_documents"),
            tags=request.tags,
            status=dg.DagsterRunStatus.NOT_STARTED,
        )
        s3_client.put_object(Bucket=bucket, Key="a.md", Body=b"changed while queued")
        assert not harness.tick().run_requests  # the queued run will see the change itself
        instance.delete_run(queued.run_id)
        (again,) = harness.tick().run_requests or []
        assert isinstance(again, dg.RunRequest) and again.run_key != request.run_key


class BrokenEmbedder(LocalEmbedder):
    def embed(self, texts: list[str]) -> Any:
        raise RuntimeError("GPU worker lost")


def test_documents_of_a_run_that_failed_are_requested_again_after_a_back_off(
    s3_endpoint: str, s3_client: Any, bucket: str, tmp_path: Path
) -> None:
    import random
    from dataclasses import replace

    rng = random.Random(3)
    s3_client.put_object(Bucket=bucket, Key="a.md", Body=text(rng, 2).encode())
    with dg.instance_for_test() as instance:
        harness = _harness(instance, s3_endpoint, bucket, tmp_path, retry_backoff_seconds=60)
        good = harness.resources["embedder"]
        harness.resources["embedder"] = BrokenEmbedder()
        (failed,) = harness.sync(retries=1)  # failed twice: the instance's retries are spent
        assert not failed.success
        assert harness.sync() == []  # within the back-off (2 × 60 s): not yet
        # Two minutes pass (the request's time moves back instead of the test sleeping).
        reg, count = harness.registry, harness.settings.shards
        requests = reg.shard_requests(count)
        reg.save_shard_requests(
            count, {i: replace(r, requested_at=r.requested_at - 121) for i, r in requests.items()}
        )
        harness.resources["embedder"] = good
        (rerun,) = harness.sync()
        key = "dagster/run_key"
        assert rerun.success and rerun.dagster_run.tags[key] != failed.dagster_run.tags[key]
        assert harness.versions() == expected_versions(s3_client, bucket)


def test_a_reset_registry_or_instance_converges_without_duplicates(
    s3_endpoint: str, s3_client: Any, bucket: str, tmp_path: Path
) -> None:
    import random

    rng = random.Random(4)
    for i in range(5):
        s3_client.put_object(Bucket=bucket, Key=f"r/{i}.md", Body=text(rng, 2).encode())
    with dg.instance_for_test() as instance:
        harness = _harness(instance, s3_endpoint, bucket, tmp_path)
        harness.converge()
        before = harness.points()
    # A fresh Dagster instance: the registry still knows everything, nothing to do.
    with dg.instance_for_test() as instance:
        harness = _harness(instance, s3_endpoint, bucket, tmp_path)
        assert harness.sync() == []
        # The registry lost too: every object is new again, written to the same point ids.
        harness.registry.close()
        for leftover in tmp_path.glob("registry.sqlite*"):
            leftover.unlink()
        harness = _harness(instance, s3_endpoint, bucket, tmp_path)
        harness.converge()
        after = harness.points()
        assert sorted(p.id for p in after) == sorted(p.id for p in before)
        assert harness.versions() == expected_versions(s3_client, bucket)


def test_prefixes_are_literal_and_case_sensitive(
    s3_endpoint: str, s3_client: Any, bucket: str, tmp_path: Path
) -> None:
    _put_many(s3_client, bucket, ["docs/a.txt", "Docs/b.txt", "docs_x/c.txt"])
    with dg.instance_for_test() as instance:
        harness = _harness(instance, s3_endpoint, bucket, tmp_path, prefixes=("docs/", "Docs/"))
        harness.tick("docs/")
        harness.tick("Docs/")
        assert _registered(harness, bucket, "docs/") == {"docs/a.txt"}
        assert _registered(harness, bucket, "Docs/") == {"Docs/b.txt"}
        # A tick of one prefix never marks the other's documents deleted.
        harness.tick("docs/")
        statuses = {r.key: r.status for r in harness.registry.by_status(["pending", "deleting"])}
        assert statuses == {"docs/a.txt": "pending", "Docs/b.txt": "pending"}


def test_one_sensor_per_prefix_with_distinct_names_running_only_when_a_bucket_is_set() -> None:
    settings = Settings.from_env({"RAG_S3_BUCKET": "b", "RAG_S3_PREFIXES": "docs/, reports/q3 ,"})
    names = sensor_names(settings.prefixes)
    assert names == {"docs/": "s3_sensor_docs", "reports/q3": "s3_sensor_reports_q3"}
    sensors = [build_listing_sensor(p, names[p], settings) for p in settings.prefixes]
    assert all(s.default_status == dg.DefaultSensorStatus.RUNNING for s in sensors)
    assert all(s.minimum_interval_seconds == 30 for s in sensors)
    unset = Settings.from_env({})
    assert unset.prefixes == ("",)
    sensor = build_listing_sensor("", "s3_sensor_bucket_root", unset)
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
    # Prefixes whose readable names collide still get distinct, stable names.
    colliding = sensor_names(("a-b/", "a_b/"))
    assert len(set(colliding.values())) == 2
    assert colliding == sensor_names(("a-b/", "a_b/"))
    from rag_ingest.definitions import build_definitions

    defs = build_definitions(Settings(bucket="b", prefixes=("a-b/", "a_b/")))
    dg.Definitions.validate_loadable(defs)
    with pytest.raises(ValueError, match="lies inside"):
        Settings.from_env({"RAG_S3_BUCKET": "b", "RAG_S3_PREFIXES": "docs/,docs/2026/"})


@pytest.mark.slow
def test_a_burst_of_10000_objects_is_requested_on_the_first_tick_in_few_runs(
    s3_endpoint: str, s3_client: Any, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Registry rows are written in slices; uneven ones here, to cover the seams.
    monkeypatch.setattr(registry_store, "INSERT_BATCH", 700)
    keys = [f"burst/{i // 100:03d}/{i:05d}.txt" for i in range(10_000)]
    _put_many(s3_client, bucket, keys)
    with dg.instance_for_test() as instance:
        harness = _harness(instance, s3_endpoint, bucket, tmp_path, shards=256)
        first = harness.tick()
        requests = first.run_requests or []
        assert 5 <= len(requests) <= 10  # 10,000 documents, ~2,000 per run
        docs = [int(r.tags["rag_ingest/documents"]) for r in requests]  # type: ignore[union-attr]
        assert sum(docs) == 10_000 and max(docs) <= 2000
        assert set(_requested_shards(harness, first)) == set(harness.settings.shard_layout.keys())
        assert harness.registry.status_counts() == {"pending": 10_000}
        assert _registered(harness, bucket) == set(keys)
