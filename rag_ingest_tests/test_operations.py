"""The operator's tools: one document's state and history, and re-ingesting chosen documents."""

import random
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from rag_ingest.cli import main as cli_main
from rag_ingest.core.keys import document_id
from rag_ingest.testing.harness import Harness, make_resources, make_settings
from rag_ingest_tests.sync_oracle import expected_versions, text


@pytest.fixture()
def harness(s3_endpoint: str, s3_client: Any, bucket: str, tmp_path: Path) -> Any:
    rng = random.Random(21)
    for key in ("guides/a.md", "guides/b.md", "notes/c.md", "notes/d d.md"):
        s3_client.put_object(Bucket=bucket, Key=key, Body=text(rng, 2).encode())
    settings = make_settings(bucket, tmp_path)
    with dg.instance_for_test() as instance:
        h = Harness(instance, settings, make_resources(s3_endpoint, settings))
        h.converge()
        yield h


def _env(monkeypatch: pytest.MonkeyPatch, harness: Harness) -> None:
    for name, value in (
        ("RAG_S3_BUCKET", harness.settings.bucket),
        ("RAG_DATA_DIR", str(harness.settings.data_dir)),
        ("RAG_SHARDS", "16"),
    ):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("RAG_REGISTRY_URL", raising=False)


def test_status_prints_one_documents_state_and_history(
    harness: Harness,
    s3_client: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bucket = harness.settings.bucket
    s3_client.put_object(Bucket=bucket, Key="notes/c.md", Body=b"# C\n\nA new version.")
    harness.converge()
    _env(monkeypatch, harness)
    assert cli_main(["status", f"s3://{bucket}/notes/c.md"]) == 0
    out = capsys.readouterr().out
    doc_id = document_id(bucket, "notes/c.md")
    assert f"document id    {doc_id}" in out and "status         ok" in out
    assert harness.settings.physical_collection in out
    events = [line.split()[3] for line in out.split("history:")[1].strip().splitlines()]
    assert events == ["registered", "ingested", "changed", "ingested"]
    assert cli_main(["status", "notes/d d.md"]) == 0  # a bare key works too
    assert cli_main(["status", "nowhere.md"]) == 1
    assert "no document matches" in capsys.readouterr().out


def test_the_reingest_job_takes_keys_or_a_prefix(harness: Harness, s3_client: Any) -> None:
    bucket = harness.settings.bucket
    before = harness.versions()
    config = {"keys": ["guides/a.md", f"s3://{bucket}/notes/c.md", "missing.md"], "reason": "t"}
    result = harness.execute(
        "reingest_documents",
        run_config={"ops": {"mark_documents_for_reingest": {"config": config}}},
    )
    assert result.success
    statuses = {r.key: r.status for r in harness.registry.by_status(["pending"])}
    assert statuses == {"guides/a.md": "pending", "notes/c.md": "pending"}
    runs = harness.converge()
    assert runs and all(r.success for r in runs)
    docs = sum(
        int(r.asset_materializations_for_node("raw_documents")[0].metadata["run_documents"].value)  # type: ignore[arg-type]
        for r in runs
    )
    assert docs == 2  # just the chosen documents were fetched again
    assert harness.versions() == before == expected_versions(s3_client, bucket)
    history = harness.registry.history(document_id(bucket, "guides/a.md"))
    assert [e.event for e in history][-2:] == ["requeued", "ingested"]
    assert "t (run " in (history[-2].reason or "")
    by_prefix = harness.execute(
        "reingest_documents",
        run_config={"ops": {"mark_documents_for_reingest": {"config": {"prefix": "notes/"}}}},
    )
    assert by_prefix.success
    assert {r.key for r in harness.registry.by_status(["pending"])} == {
        "notes/c.md",
        "notes/d d.md",
    }
    empty = harness.execute(
        "reingest_documents", run_config={"ops": {"mark_documents_for_reingest": {"config": {}}}}
    )
    assert not empty.success  # neither keys nor a prefix: refused, nothing marked
