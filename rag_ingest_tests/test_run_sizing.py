"""Runs sized by cost (issue 22): scattered changes over a 256-shard key space become one or
two runs, not one per neighbourhood, and the first sync materializes every shard (empty ones
as empty) instead of leaving most of the key space "missing" in the UI."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import dagster as dg

from rag_ingest.core.keys import document_id, key_hash
from rag_ingest.testing.harness import Harness, make_resources, make_settings
from rag_ingest_tests.sync_oracle import expected_versions, text


def test_fifteen_scattered_changes_are_at_most_two_runs(
    s3_endpoint: str, s3_client: Any, bucket: str, tmp_path: Path
) -> None:
    rng = random.Random(22)
    keys = [f"docs/{i:03d}.md" for i in range(60)]
    for key in keys:
        s3_client.put_object(Bucket=bucket, Key=key, Body=text(rng, 2).encode())
    settings = make_settings(bucket, tmp_path / "data", shards=256)
    with dg.instance_for_test() as instance:
        harness = Harness(instance, settings, make_resources(s3_endpoint, settings))
        first = harness.converge()
        assert all(run.success for run in first)
        # Every shard is materialized by the first sync: the UI shows none missing.
        materialized = instance.get_materialized_partitions(dg.AssetKey("qdrant_collection"))
        assert materialized == set(settings.shard_layout.keys())
        # 5 modified, 5 deleted, 5 added, spread over the key space.
        by_hash = sorted(keys, key=lambda k: key_hash(document_id(bucket, k)))
        for key in by_hash[0:60:12]:
            s3_client.put_object(Bucket=bucket, Key=key, Body=text(rng, 3).encode())
        for key in by_hash[6:60:12]:
            s3_client.delete_object(Bucket=bucket, Key=key)
        for i in range(5):
            s3_client.put_object(Bucket=bucket, Key=f"new/{i}.md", Body=text(rng, 2).encode())
        tick = harness.tick()
        assert 1 <= len(tick.run_requests or []) <= 2, tick.run_requests
        assert all(run.success for run in harness.launch(tick))
        assert harness.versions() == expected_versions(s3_client, bucket)
