"""The health audit lists S3 before it opens an embedded store (review L5): a writer waiting
for the folder lock waits for the comparison only, not for a listing of the whole bucket."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from rag_ingest.cli import main as cli_main
from rag_ingest.core.index import audit
from rag_ingest.core.vectorstore import StoreLocked
from rag_ingest.core.vectorstore.edge import EdgeStore
from rag_ingest.testing.harness import Harness, make_resources, make_settings


@pytest.fixture()
def harness(
    s3_endpoint: str, s3_client: Any, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Harness]:
    for name in ("RAG_S3_PREFIXES", "RAG_QDRANT_URL", "RAG_QDRANT_PATH", "RAG_REGISTRY_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {
        "RAG_DATA_DIR": str(tmp_path),
        "RAG_S3_BUCKET": bucket,
        "RAG_S3_ENDPOINT_URL": s3_endpoint,
        "RAG_EMBEDDER": "local",
        "RAG_SHARDS": "16",
        "RAG_FULL_RECONCILE_HOURS": "0",
    }.items():
        monkeypatch.setenv(name, value)
    for i in range(3):
        s3_client.put_object(Bucket=bucket, Key=f"h/{i}.md", Body=f"# Note {i}\n\nText.".encode())
    settings = make_settings(bucket, tmp_path)
    with dg.instance_for_test() as instance:
        h = Harness(instance, settings, make_resources(s3_endpoint, settings))
        h.converge()
        yield h


def test_health_lists_s3_without_holding_the_store(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = harness.settings.qdrant_path
    free_while_listing: list[bool] = []
    listing = audit.list_objects

    def list_and_probe(*args: Any, **kwargs: Any) -> Any:
        try:  # a writer arriving now: does it get the store?
            EdgeStore(folder, lock_wait_seconds=0.2).close()
            free_while_listing.append(True)
        except StoreLocked:
            free_while_listing.append(False)
        return listing(*args, **kwargs)

    monkeypatch.setattr(audit, "list_objects", list_and_probe)
    result = harness.execute("monitor_collection")
    assert result.success
    assert free_while_listing == [True]  # the collection_health asset
    assert cli_main(["health"]) == 0, capsys.readouterr().out
    assert free_while_listing == [True, True]  # and `rag-ingest health`
