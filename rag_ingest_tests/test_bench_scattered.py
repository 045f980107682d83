"""The scattered-changes benchmark (``bench.scattered``) at a tiny size: its changes really
change the bucket, the listing sensor's path and the event sensor's (S3 → SQS) bring every one
of them into the vector store in at most two runs, and the report carries the batch. No timing
assertions (the machine is shared)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.common import s3_client
from bench.gpu_speed import scenario_settings
from bench.s3server import s3_server
from bench.scattered import run_scattered
from bench.scattered_changes import ChangeMaker, pending
from bench.scattered_report import render
from rag_ingest.testing.harness import make_resources

DOCS = 200
CHANGES = 3
SHARDS = 16
SEED = 11


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_bench_scattered(tmp_path: Path) -> None:
    with s3_server("bench-scattered-test", small_docs=DOCS, seed=SEED) as info:
        result = run_scattered(
            info.endpoint,
            info.bucket,
            DOCS,
            tmp_path,
            SEED,
            batches=[CHANGES],
            shards=SHARDS,
            documents_per_run=100,
            events=True,
            say=lambda _line: None,
        )
        assert result.cold.work_left == 0
        assert result.cold.statuses.get("ok") == DOCS
        batch, via_events = result.batches
        # The same batch size through S3 → SQS notifications and the event sensor: other
        # objects, no listing in its tick, every change visible.
        assert via_events.label == f"{CHANGES} changes, events"
        assert via_events.left == 0 and 1 <= len(via_events.runs) <= 2
        assert via_events.listing == 0 and batch.listing > 0
        assert not {c.key for c in via_events.made} & {c.key for c in batch.made}
        assert batch.changes == CHANGES
        assert batch.kinds == {"modify": 1, "delete": 1, "add": 1}
        assert batch.shards_changed == CHANGES  # one change per place in the key space
        assert batch.left == 0, "a change never became visible"
        assert 1 <= len(batch.runs) <= 2
        assert all(run.success for run in batch.runs)
        assert [f.shards for f in result.floors] == [1, SHARDS]

        # The lookup is not vacuous: changes no tick has seen yet are all reported missing.
        settings = scenario_settings(info.bucket, tmp_path / "data", SHARDS, 100)
        done = [c.key for b in result.batches for c in b.made]
        client = s3_client(info.endpoint)
        maker = ChangeMaker(client, info.bucket, SEED, DOCS, settings.shard_layout, done)
        maker.batches = len(result.batches)  # added keys are named by batch: after the bench's
        unseen = maker.apply(CHANGES)
        assert not {c.key for c in unseen} & set(done)
        resources = make_resources(info.endpoint, settings)
        with resources["vectors"].open() as store:  # type: ignore[attr-defined]
            collection = store.resolve(settings.collection)
            assert pending(store, collection, unseen) == unseen

    report = render(result, "test", {})
    assert f"| {CHANGES} changes, default | {CHANGES} (1/1/1) | {CHANGES} |" in report
