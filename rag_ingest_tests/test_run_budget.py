"""A run's extraction time budget (issue 18 item 9): once spent, ``raw_documents`` takes no
new document and leaves the rest pending; the next requests ingest them, each exactly once."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from rag_ingest.core.keys import document_id
from rag_ingest.core.pipeline.windows import Budget
from rag_ingest.testing.harness import Harness, make_resources, make_settings
from rag_ingest_tests.sync_oracle import expected_versions, text

# Spent before the second document is taken: each run extracts one document.
TINY = 1e-6


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_budget_hands_out_work_until_spent_then_holds_the_rest() -> None:
    clock = Clock()
    budget = Budget[str](10.0, clock)
    taken = []
    for item in budget.take(["a", "b", "del:c", "d", "del:e", "f"], lambda s: "del" in s):
        taken.append(item)
        clock.now += 4.0  # each document takes 4 s
    # a (0 s), b (4 s), del:c (free), d (12 s: spent, held), del:e (free), f (held)
    assert taken == ["a", "b", "del:c", "del:e"]
    assert budget.held == ["d", "f"] and budget.deferred == 2 and budget.taken == 2
    # However slow, the first costly item is always taken: every run makes progress.
    late = Budget[str](1.0, clock)
    clock.now += 100.0
    assert list(late.take(["x", "y"])) == ["x"] and late.held == ["y"]


def _seed(client: Any, bucket: str, n: int) -> list[str]:
    rng = random.Random(n)
    keys = [f"docs/{i}.md" for i in range(n)]
    for key in keys:
        client.put_object(Bucket=bucket, Key=key, Body=text(rng, 2).encode())
    return keys


def _raw_metadata(run: dg.ExecuteInProcessResult) -> dict[str, Any]:
    (first, *_) = run.asset_materializations_for_node("raw_documents")
    return {k: getattr(v, "value", v) for k, v in first.metadata.items()}


@pytest.fixture()
def harness(s3_endpoint: str, bucket: str, tmp_path: Path) -> Any:
    settings = make_settings(bucket, tmp_path, run_extract_budget_seconds=TINY)
    with dg.instance_for_test() as instance:
        yield Harness(instance, settings, make_resources(s3_endpoint, settings))


def test_a_spent_budget_defers_documents_and_later_runs_ingest_each_once(
    harness: Harness, s3_client: Any, bucket: str
) -> None:
    keys = _seed(s3_client, bucket, 5)
    ids = [document_id(bucket, k) for k in keys]
    first = harness.sync()
    assert first and all(r.success for r in first)  # deferring is not failing
    meta = [_raw_metadata(r) for r in first]
    taken = sum(m["run_ok"] for m in meta)
    deferred = sum(m["run_deferred"] for m in meta)
    assert taken == len(first) and taken + deferred == 5 and deferred > 0
    assert all(m["run_planned"] == m["run_ok"] + m["run_deferred"] for m in meta)
    counts = harness.registry.status_counts()
    assert counts == {"ok": taken, "pending": deferred}  # the rest wait, none failed

    harness.converge(timeout=180)
    assert harness.registry.status_counts() == {"ok": 5}
    assert harness.versions() == expected_versions(s3_client, bucket)
    # Each document was ingested by exactly one run.
    ingested = Counter(
        doc for doc in ids for e in harness.registry.history(doc) if e.event == "ingested"
    )
    assert ingested == dict.fromkeys(ids, 1)
    runs = {e.run_id for doc in ids for e in harness.registry.history(doc) if e.run_id}
    assert len(runs) >= 2


def test_a_forced_run_asks_again_for_what_its_budget_left(
    harness: Harness, s3_client: Any, bucket: str
) -> None:
    keys = _seed(s3_client, bucket, 3)
    ids = [document_id(bucket, k) for k in keys]
    harness.converge(timeout=180)
    before = {doc: harness.registry.lookup([doc])[doc].run_id for doc in ids}
    forced = harness.materialize_all(force=True)
    assert forced.success
    meta = _raw_metadata(forced)
    assert meta["run_forced"] and meta["run_ok"] == 1 and meta["run_deferred"] == 2
    # Already ingested, so not work by themselves: the forced run marked them pending.
    assert harness.registry.status_counts() == {"ok": 1, "pending": 2}
    harness.converge(timeout=180)
    after = {doc: harness.registry.lookup([doc])[doc].run_id for doc in ids}
    assert all(after[d] != before[d] for d in ids)  # every document was re-ingested
    assert harness.versions() == expected_versions(s3_client, bucket)
