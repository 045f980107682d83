"""Credentials never reach logs, metadata, the instance or stored files."""

from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from rag_ingest.core.config import Settings
from rag_ingest.defs.resources import build_resources
from rag_ingest.testing import SAMPLE_CORPUS
from rag_ingest.testing.harness import Harness
from rag_ingest.testing.s3 import upload_corpus

SECRETS = {
    "AWS_SECRET_ACCESS_KEY": "SeCrEt-aws-7f3a9c1d",
    "AWS_SESSION_TOKEN": "SeCrEt-session-2b8e4f",
    "RAG_QDRANT_API_KEY": "SeCrEt-qdrant-5d1c0a",
    "MODAL_TOKEN_SECRET": "SeCrEt-modal-9e7b3f",
}


def _files_containing(root: Path, needles: list[bytes]) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            hits += [f"{path}: {n.decode()}" for n in needles if n in data]
    return hits


def test_no_credential_appears_in_logs_metadata_or_files(
    s3_endpoint: str, s3_client: Any, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload_corpus(s3_client, bucket, SAMPLE_CORPUS / "guides")
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDtesting")
    monkeypatch.setenv("RAG_S3_BUCKET", bucket)
    monkeypatch.setenv("RAG_S3_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RAG_SHARDS", "16")
    settings = Settings.from_env()
    resources = build_resources(settings)  # wired exactly as in production
    (tmp_path / "instance").mkdir()
    (tmp_path / "instance" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with dg.instance_for_test(temp_dir=str(tmp_path / "instance")) as instance:
        harness = Harness(instance, settings, resources)
        runs = harness.sync()
        assert runs and all(r.success for r in runs)
        needles = [v.encode() for v in SECRETS.values()]
        logs = "\n".join(
            str(entry.dagster_event or "") + entry.user_message
            for run in runs
            for entry in instance.all_logs(run.run_id)
        )
        assert not [v for v in SECRETS.values() if v in logs]
        for run in runs:
            config = str(run.dagster_run.run_config) + str(run.dagster_run.tags)
            assert not [v for v in SECRETS.values() if v in config]
        assert _files_containing(tmp_path, needles) == []
