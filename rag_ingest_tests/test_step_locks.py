"""The steps that replaced Dagster's op-level pools hold the deployment's locks (issue 18
item 0): ``qdrant_collection`` and ``collection_health`` the ``qdrant`` lock, ``embeddings`` the
``embedder`` lock with a local embedder only. A lock held elsewhere for the whole wait fails
the step, naming the lock; once free, the next run converges."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pytest

from rag_ingest.core.registry.lock import exclusive
from rag_ingest.defs.locks import EMBEDDER_LOCK, QDRANT_LOCK
from rag_ingest.resources import LocalEmbedder, VectorStoreResource
from rag_ingest.resources.embedders import EmbedStats
from rag_ingest.testing.harness import Harness, make_resources, make_settings
from rag_ingest_tests.sync_oracle import expected_versions


class RemoteEmbedder(LocalEmbedder):
    """The local model standing in for a remote service (Modal): it needs no lock."""

    @property
    def serializes_runs(self) -> bool:
        return False

    def embed(self, texts: list[str]) -> tuple[np.ndarray, EmbedStats]:
        return super().embed(texts)


@pytest.fixture()
def harness(s3_endpoint: str, s3_client: Any, bucket: str, tmp_path: Path) -> Iterator[Harness]:
    for i in range(3):
        s3_client.put_object(Bucket=bucket, Key=f"l/{i}.md", Body=f"# Lock {i}\n\nText.".encode())
    settings = make_settings(bucket, tmp_path)
    resources = make_resources(s3_endpoint, settings)
    resources["vectors"] = VectorStoreResource(
        engine=settings.qdrant_engine, path=str(settings.qdrant_path), lock_wait_seconds=0.5
    )
    resources["embedder"] = LocalEmbedder(lock_wait_seconds=0.5)
    with dg.instance_for_test() as instance:
        yield Harness(instance, settings, resources)


def _failure(run: dg.ExecuteInProcessResult, step: str) -> str:
    (event,) = [e for e in run.all_events if e.is_step_failure and e.step_key == step]
    return str(event.step_failure_data.error)  # type: ignore[union-attr]


def _metadata(run: dg.ExecuteInProcessResult, node: str, name: str) -> Any:
    (first, *_) = run.asset_materializations_for_node(node)
    return first.metadata[name].value


def test_the_qdrant_write_waits_for_the_qdrant_lock(
    harness: Harness, s3_client: Any, bucket: str
) -> None:
    with exclusive(harness.registry, QDRANT_LOCK, 1.0):
        (run,) = harness.sync()
    assert not run.success
    assert "lock 'qdrant'" in _failure(run, "qdrant_collection")
    assert harness.versions() == set()  # nothing written without the lock
    harness.converge(timeout=120)
    assert harness.versions() == expected_versions(s3_client, bucket)
    last = harness.runs[-1]
    assert 0.0 <= _metadata(last, "qdrant_collection", "run_lock_wait_seconds") < 0.5
    assert 0.0 <= _metadata(last, "embeddings", "run_lock_wait_seconds") < 0.5


def test_local_embedding_takes_the_embedder_lock_a_remote_embedder_does_not(
    harness: Harness, s3_client: Any, bucket: str
) -> None:
    with exclusive(harness.registry, EMBEDDER_LOCK, 1.0):
        (run,) = harness.sync()
        assert not run.success
        assert "lock 'embedder'" in _failure(run, "embeddings")
        harness.resources["embedder"] = RemoteEmbedder(lock_wait_seconds=0.5)
        harness.converge(timeout=120)  # the lock is still held: a remote embedder ignores it
    assert harness.versions() == expected_versions(s3_client, bucket)


def test_collection_health_waits_for_the_qdrant_lock(harness: Harness) -> None:
    harness.converge(timeout=120)
    with exclusive(harness.registry, QDRANT_LOCK, 1.0):
        run = harness.execute("monitor_collection")
    assert not run.success
    assert "lock 'qdrant'" in _failure(run, "collection_health")
    run = harness.execute("monitor_collection")
    assert run.success
    assert _metadata(run, "collection_health", "lock_wait_seconds") < 0.5
