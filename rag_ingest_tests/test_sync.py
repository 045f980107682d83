"""Incremental sync on real components: changed, deleted, re-created objects, and a randomized
walk whose every step must leave Qdrant equal to what S3 holds."""

import itertools
import os
import random
import time
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from rag_ingest.core.chunking import chunk_blocks
from rag_ingest.core.extract import ExtractionError, extract
from rag_ingest.core.keys import partition_key
from rag_ingest.core.s3 import list_objects
from rag_ingest.embedders import LocalEmbedder
from rag_ingest.partitions import DOCUMENTS_PARTITION
from rag_ingest.sensors import RANGE_END_TAG, RANGE_START_TAG
from rag_ingest_tests.helpers import Harness, make_resources

WORDS = [
    "river",
    "mountain",
    "glacier",
    "honey",
    "bread",
    "chess",
    "ocean",
    "tide",
    "forest",
    "desert",
    "volcano",
    "comet",
    "library",
    "engine",
    "garden",
    "lantern",
    "harbor",
    "meadow",
    "orbit",
    "puzzle",
]


def text(rng: random.Random, paragraphs: int) -> str:
    body = "\n\n".join(
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 120))) + "."
        for _ in range(paragraphs)
    )
    return f"# Doc {rng.randint(0, 10**6)}\n\n{body}\n"


def expected_versions(client: Any, bucket: str) -> set[tuple[str, str, int]]:
    """What the collection must hold: every chunk of every valid object now in S3."""
    triples = set()
    for obj in list_objects(client, bucket, ""):
        data = client.get_object(Bucket=bucket, Key=obj.key)["Body"].read()
        try:
            blocks = extract(obj.key, data).blocks
        except ExtractionError:
            continue
        doc_id = partition_key(bucket, obj.key)
        triples |= {(doc_id, obj.etag, c.index) for c in chunk_blocks(blocks)}
    return triples


@pytest.fixture()
def harness(s3_endpoint: str, bucket: str, tmp_path: Path) -> Any:
    with dg.instance_for_test() as instance:
        yield Harness(instance, make_resources(s3_endpoint, bucket, tmp_path), partitions_per_run=4)


def _ranges(runs: list[dg.ExecuteInProcessResult]) -> list[tuple[str, str]]:
    return [
        (r.dagster_run.tags[RANGE_START_TAG], r.dagster_run.tags[RANGE_END_TAG])
        for r in runs
        if RANGE_START_TAG in r.dagster_run.tags
    ]


def test_a_changed_object_is_re_ingested_alone_and_its_old_chunks_vanish(
    harness: Harness, s3_client: Any, bucket: str
) -> None:
    rng = random.Random(1)
    for i in range(6):
        s3_client.put_object(Bucket=bucket, Key=f"d/{i}.md", Body=text(rng, 12).encode())
    assert all(r.success for r in harness.sync())
    changed = partition_key(bucket, "d/2.md")
    s3_client.put_object(Bucket=bucket, Key="d/2.md", Body=text(rng, 1).encode())  # shorter
    runs = harness.sync()
    assert [r.success for r in runs] == [True]
    assert _ranges(runs) == [(changed, changed)]  # nothing else fetched or parsed again
    assert harness.versions() == expected_versions(s3_client, bucket)
    assert harness.instance.get_dynamic_partitions(DOCUMENTS_PARTITION)[-1] == changed
    assert harness.sync() == []


def test_changes_spread_over_the_order_become_one_run(
    harness: Harness, s3_client: Any, bucket: str
) -> None:
    rng = random.Random(2)
    for i in range(12):
        s3_client.put_object(Bucket=bucket, Key=f"d/{i:02d}.md", Body=text(rng, 2).encode())
    harness.sync()
    for i in (1, 5, 9):
        s3_client.put_object(Bucket=bucket, Key=f"d/{i:02d}.md", Body=text(rng, 2).encode())
    runs = harness.sync()
    assert len(runs) == 1 and runs[0].success
    assert harness.versions() == expected_versions(s3_client, bucket)


def test_a_deleted_object_leaves_qdrant_then_its_partition_goes(
    harness: Harness, s3_client: Any, bucket: str
) -> None:
    rng = random.Random(3)
    for key in ("keep.md", "drop.md"):
        s3_client.put_object(Bucket=bucket, Key=key, Body=text(rng, 3).encode())
    harness.sync()
    dropped = partition_key(bucket, "drop.md")
    s3_client.delete_object(Bucket=bucket, Key="drop.md")
    (removal,) = harness.sync()
    assert removal.success and removal.dagster_run.job_name == "remove_documents"
    assert {d for d, _, _ in harness.versions()} == {partition_key(bucket, "keep.md")}
    observations = harness.instance.fetch_observations(
        dg.AssetRecordsFilter(
            asset_key=dg.AssetKey("qdrant_collection"), asset_partitions=[dropped]
        ),
        limit=5,
    ).records
    assert observations[0].asset_observation.metadata["status"].value == "removed"  # type: ignore[union-attr]
    assert harness.registry.lookup([dropped])[dropped].status == "removed"
    assert harness.sync() == []  # this tick drops the partition and the row
    assert dropped not in harness.instance.get_dynamic_partitions(DOCUMENTS_PARTITION)
    assert harness.registry.lookup([dropped]) == {}


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
    assert {partition_key(bucket, k) for k in ("a.md", "b.md", "copy-of-a.md", "c.md")} == docs


def test_an_older_version_finishing_last_does_not_overwrite_the_newer(
    harness: Harness, s3_client: Any, bucket: str
) -> None:
    rng = random.Random(5)
    s3_client.put_object(Bucket=bucket, Key="v.md", Body=text(rng, 6).encode())
    harness.sync()
    doc_id = partition_key(bucket, "v.md")
    storage = Path(harness.resources["storage"].base)  # type: ignore[attr-defined]
    stale = {a: (storage / a / f"{doc_id}.parquet").read_bytes() for a in ("chunks", "embeddings")}
    # LastModified has 1-second resolution and versions within one second are unordered (see
    # docs/architecture.md, Limits); with a warm model the first sync can finish inside it.
    time.sleep(1.1)
    s3_client.put_object(Bucket=bucket, Key="v.md", Body=text(rng, 2).encode())
    harness.sync()
    newer = harness.versions()
    for asset, data in stale.items():  # the slow run of the old version reaches Qdrant now
        (storage / asset / f"{doc_id}.parquet").write_bytes(data)
    job = harness.job("ingest_documents")
    late = job.execute_in_process(
        instance=harness.instance,
        partition_key=doc_id,
        asset_selection=[dg.AssetKey("qdrant_collection")],
    )
    assert late.success
    assert harness.versions() == newer == expected_versions(s3_client, bucket)
    event = harness.instance.get_latest_materialization_event(dg.AssetKey("qdrant_collection"))
    assert event is not None and event.asset_materialization is not None
    assert "newer version" in str(event.asset_materialization.metadata["skipped"].value)


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
    resources = make_resources(s3_endpoint, bucket, tmp_path)
    resources["embedder"] = FlakyEmbedder(failure_rate=0.25, seed=seed)
    live: set[str] = set()
    gone: set[str] = set()
    with dg.instance_for_test() as instance:
        harness = Harness(instance, resources, partitions_per_run=3)
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
            for _ in range(2):  # a second tick finishes removals and retries nothing else
                runs = harness.sync(retries=4)
                assert all(r.success for r in runs), f"step {step}: a run failed 5 times"
            assert harness.versions() == expected_versions(s3_client, bucket), f"step {step}"
            statuses = harness.registry.status_counts()
            assert set(statuses) <= {"ok", "failed"}, statuses
        assert harness.failed_attempts > 0  # the faults really happened and were recovered
