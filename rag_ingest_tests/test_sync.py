"""Incremental sync on real components: changed, deleted, re-created objects, and a randomized
walk whose every step must leave Qdrant equal to what S3 holds."""

import itertools
import os
import random
import time
import uuid
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from rag_ingest.core.keys import document_id
from rag_ingest.core.pipeline.runfiles import run_path
from rag_ingest.resources import LocalEmbedder
from rag_ingest.testing.harness import Harness, make_resources, make_settings, shard_range
from rag_ingest_tests.sync_oracle import expected_versions, text


@pytest.fixture()
def harness(s3_endpoint: str, bucket: str, tmp_path: Path) -> Any:
    settings = make_settings(bucket, tmp_path, documents_per_run=4)
    with dg.instance_for_test() as instance:
        yield Harness(instance, settings, make_resources(s3_endpoint, settings))


def _documents_read(runs: list[dg.ExecuteInProcessResult]) -> int:
    """Documents the runs' raw_documents steps fetched or passed on (the work they did)."""
    total = 0
    for run in runs:
        materializations = run.asset_materializations_for_node("raw_documents")
        total += int(materializations[0].metadata["run_documents"].value)  # type: ignore[arg-type]
    return total


def _keys_in_shards(
    harness: Harness, bucket: str, shards: list[str], per_shard: int = 1
) -> list[str]:
    """Keys d/NNN.md that land in the given shards, ``per_shard`` of each."""
    layout, found = harness.settings.shard_layout, []
    for shard in shards:
        hits = (f"d/{i:03d}.md" for i in range(10_000))
        found += [k for k in hits if layout.of(document_id(bucket, k)) == shard][:per_shard]
    return found


def test_a_changed_object_is_re_ingested_alone_and_its_old_chunks_vanish(
    harness: Harness, s3_client: Any, bucket: str
) -> None:
    rng = random.Random(1)
    for i in range(6):
        s3_client.put_object(Bucket=bucket, Key=f"d/{i}.md", Body=text(rng, 12).encode())
    assert all(r.success for r in harness.sync())
    changed = document_id(bucket, "d/2.md")
    s3_client.put_object(Bucket=bucket, Key="d/2.md", Body=text(rng, 1).encode())  # shorter
    runs = harness.sync()
    assert [r.success for r in runs] == [True]
    shard = harness.settings.shard_layout.of(changed)
    # The run may cover idle shards around it (cheaper than another run); it reads one document.
    first, last = shard_range(runs[0])
    assert first <= shard <= last
    assert _documents_read(runs) == 1  # nothing else fetched or parsed again
    assert harness.versions() == expected_versions(s3_client, bucket)
    assert harness.sync() == []


def test_changes_spread_over_the_key_space_become_one_run(
    harness: Harness, s3_client: Any, bucket: str
) -> None:
    rng = random.Random(2)
    # Three changed documents in shards 1, 5 and 9: idle shards between them are bridged.
    keys = _keys_in_shards(harness, bucket, [f"{i:x}" for i in range(16)])
    for key in keys:
        s3_client.put_object(Bucket=bucket, Key=key, Body=text(rng, 2).encode())
    harness.sync()
    for i in (1, 5, 9):
        s3_client.put_object(Bucket=bucket, Key=keys[i], Body=text(rng, 2).encode())
    runs = harness.sync()
    assert len(runs) == 1 and runs[0].success
    # The idle shards between them are bridged (Settings.bridge_shards); the edges are not
    # reached again: the first sync materialized every shard, empty ones included.
    assert shard_range(runs[0]) == ("1", "9") and _documents_read(runs) == 3
    assert harness.versions() == expected_versions(s3_client, bucket)


def _latest_shard_metadata(harness: Harness, shard: str) -> dict[str, Any]:
    records = harness.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("qdrant_collection"), asset_partitions=[shard]),
        limit=1,
    ).records
    mat = records[0].asset_materialization
    assert mat is not None
    return {k: v.value for k, v in mat.metadata.items()}


def test_a_deleted_object_leaves_qdrant_in_one_reconcile(
    harness: Harness, s3_client: Any, bucket: str
) -> None:
    rng = random.Random(3)
    for key in ("keep.md", "drop.md"):
        s3_client.put_object(Bucket=bucket, Key=key, Body=text(rng, 3).encode())
    harness.sync()
    dropped = document_id(bucket, "drop.md")
    s3_client.delete_object(Bucket=bucket, Key="drop.md")
    (removal,) = harness.sync()
    assert removal.success and removal.dagster_run.job_name == "ingest_documents"
    assert {d for d, _, _ in harness.versions()} == {document_id(bucket, "keep.md")}
    meta = _latest_shard_metadata(harness, harness.settings.shard_layout.of(dropped))
    assert meta["removed"] == 1 and "drop.md" in meta["changes"]
    record = harness.registry.lookup([dropped])[dropped]
    assert record.status == "removed"
    assert [e.event for e in harness.registry.history(dropped)][-2:] == ["deleted", "removed"]
    assert harness.sync() == []


def test_deleted_recreated_and_deleted_again_converges(
    harness: Harness, s3_client: Any, bucket: str
) -> None:
    rng = random.Random(6)
    s3_client.put_object(Bucket=bucket, Key="x.md", Body=text(rng, 2).encode())
    harness.sync()
    for _ in range(2):
        s3_client.delete_object(Bucket=bucket, Key="x.md")
        assert all(r.success for r in harness.sync())
        assert harness.versions() == set()
        s3_client.put_object(Bucket=bucket, Key="x.md", Body=text(rng, 2).encode())
        assert all(r.success for r in harness.sync())
        assert harness.versions() == expected_versions(s3_client, bucket) != set()
    s3_client.delete_object(Bucket=bucket, Key="x.md")
    (run,) = harness.sync()  # the third removal gets its run too (no reused run key)
    assert run.success and harness.versions() == set()


def test_recreated_keys_same_content_new_key_and_double_modification(
    harness: Harness, s3_client: Any, bucket: str
) -> None:
    rng = random.Random(4)
    s3_client.put_object(Bucket=bucket, Key="a.md", Body=text(rng, 3).encode())
    s3_client.put_object(Bucket=bucket, Key="b.md", Body=text(rng, 3).encode())
    harness.sync()
    # Re-created after its removal ran.
    body_a = s3_client.get_object(Bucket=bucket, Key="a.md")["Body"].read()
    s3_client.delete_object(Bucket=bucket, Key="a.md")
    harness.sync()
    s3_client.put_object(Bucket=bucket, Key="a.md", Body=body_a)
    # Re-created before the removal ran: the removal run must leave it alone.
    s3_client.delete_object(Bucket=bucket, Key="b.md")
    pending_removal = harness.tick()
    s3_client.put_object(Bucket=bucket, Key="b.md", Body=text(rng, 2).encode())
    harness.launch(harness.tick())
    harness.launch(pending_removal)
    # Same content under a new key; one object modified twice between ticks.
    s3_client.copy_object(
        Bucket=bucket, Key="copy-of-a.md", CopySource={"Bucket": bucket, "Key": "a.md"}
    )
    s3_client.put_object(Bucket=bucket, Key="c.md", Body=text(rng, 2).encode())
    s3_client.put_object(Bucket=bucket, Key="c.md", Body=text(rng, 4).encode())
    assert all(r.success for r in harness.sync())
    harness.sync()
    assert harness.versions() == expected_versions(s3_client, bucket)
    docs = {d for d, _, _ in harness.versions()}
    assert {document_id(bucket, k) for k in ("a.md", "b.md", "copy-of-a.md", "c.md")} == docs


def _slow_run_up_to_embeddings(harness: Harness, shard: str, run_id: str) -> None:
    """The first three steps of a run over ``shard``; its last step has not run yet."""
    job = harness.job("ingest_documents")
    result = job.execute_in_process(
        instance=harness.instance,
        run_id=run_id,
        tags={
            "dagster/asset_partition_range_start": shard,
            "dagster/asset_partition_range_end": shard,
        },
        asset_selection=[dg.AssetKey(a) for a in ("raw_documents", "chunks", "embeddings")],
        run_config={"ops": {"raw_documents": {"config": {"force": True}}}},
    )
    assert result.success


def _late_last_step(harness: Harness, shard: str, slow_run: str) -> dg.ExecuteInProcessResult:
    """The slow run's qdrant_collection step, reaching Qdrant after a newer version did (a
    run of its own that reads the slow run's files, as a re-execution would)."""
    late = str(uuid.uuid4())
    store = harness.resources["storage"].store  # type: ignore[attr-defined]
    for asset in ("chunks", "embeddings"):
        store.write(run_path(late, asset), store.read(run_path(slow_run, asset)))
    return harness.job("ingest_documents").execute_in_process(
        instance=harness.instance,
        run_id=late,
        tags={
            "dagster/asset_partition_range_start": shard,
            "dagster/asset_partition_range_end": shard,
        },
        asset_selection=[dg.AssetKey("qdrant_collection")],
    )


@pytest.mark.parametrize("same_second", [False, True])
def test_an_older_version_finishing_last_does_not_overwrite_the_newer(
    harness: Harness, s3_client: Any, bucket: str, same_second: bool
) -> None:
    rng = random.Random(5)
    s3_client.put_object(Bucket=bucket, Key="v.md", Body=text(rng, 6).encode())
    harness.sync()
    shard = harness.settings.shard_layout.of(document_id(bucket, "v.md"))
    slow = str(uuid.uuid4())
    _slow_run_up_to_embeddings(harness, shard, slow)
    if not same_second:
        time.sleep(1.1)  # the newer version gets a later LastModified
    # Either way the registry's current ETag decides: any other version is superseded.
    s3_client.put_object(Bucket=bucket, Key="v.md", Body=text(rng, 2).encode())
    harness.sync()
    newer = harness.versions()
    late = _late_last_step(harness, shard, slow)
    assert late.success
    assert harness.versions() == newer == expected_versions(s3_client, bucket)
    meta = _latest_shard_metadata(harness, shard)
    assert meta["superseded"] == 1 and "newer version" in meta["changes"]


_EMBED_CALLS = itertools.count()


class FlakyEmbedder(LocalEmbedder):
    """The real local model, failing at random (seeded) like a lost GPU worker."""

    failure_rate: float = 0.3
    seed: int = 0

    def embed(self, texts: list[str]) -> Any:
        if random.Random(f"{self.seed}:{next(_EMBED_CALLS)}").random() < self.failure_rate:
            raise RuntimeError("injected embedder failure")
        return super().embed(texts)


def test_randomized_walk_keeps_qdrant_equal_to_s3(
    s3_endpoint: str, s3_client: Any, bucket: str, tmp_path: Path
) -> None:
    """Adds, modifies, deletes, re-creations, bad objects and embedder faults, in random order;
    after each step's ticks and runs (with retries), Qdrant holds exactly S3's documents.
    ``RAG_SOAK_STEPS`` lengthens the walk; ``RAG_SOAK_SEED`` changes it."""
    steps = int(os.environ.get("RAG_SOAK_STEPS", "12"))
    seed = int(os.environ.get("RAG_SOAK_SEED", "20261128"))
    rng = random.Random(seed)
    settings = make_settings(bucket, tmp_path, documents_per_run=3)
    embedder = FlakyEmbedder(failure_rate=0.25, seed=seed)
    live: set[str] = set()
    gone: set[str] = set()
    with dg.instance_for_test() as instance:
        harness = Harness(instance, settings, make_resources(s3_endpoint, settings, embedder))
        for step in range(steps):
            for _ in range(rng.randint(1, 4)):
                op = rng.choice(["add", "add", "modify", "delete", "recreate", "bad"])
                if op == "add" or (op in ("modify", "delete") and not live):
                    key = f"docs/{rng.choice(['', 'sub/', 'a b/'])}{step}-{rng.randint(0, 999)}.md"
                    s3_client.put_object(Bucket=bucket, Key=key, Body=text(rng, 3).encode())
                    live.add(key)
                elif op == "modify":
                    key = rng.choice(sorted(live))
                    body = text(rng, rng.randint(1, 8)).encode()
                    s3_client.put_object(Bucket=bucket, Key=key, Body=body)
                elif op == "delete":
                    key = rng.choice(sorted(live))
                    s3_client.delete_object(Bucket=bucket, Key=key)
                    live.discard(key)
                    gone.add(key)
                elif op == "recreate" and gone:
                    key = rng.choice(sorted(gone))
                    s3_client.put_object(Bucket=bucket, Key=key, Body=text(rng, 2).encode())
                    gone.discard(key)
                    live.add(key)
                else:
                    key = f"bad/{step}-{rng.randint(0, 99)}.txt"
                    s3_client.put_object(Bucket=bucket, Key=key, Body=b"\xff\xfe\x00bad")
                    live.add(key)
            for _ in range(2):  # a second tick finds nothing left to do
                runs = harness.sync(retries=4)
                assert all(r.success for r in runs), f"step {step}: a run failed 5 times"
            assert harness.versions() == expected_versions(s3_client, bucket), f"step {step}"
            statuses = harness.registry.status_counts()
            assert set(statuses) <= {"ok", "failed", "removed"}, statuses
        assert harness.failed_attempts > 0  # the faults really happened and were recovered
