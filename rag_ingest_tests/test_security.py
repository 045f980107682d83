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


def _everything_said(instance: dg.DagsterInstance, runs: list[Any]) -> str:
    """Every event of every run as stored (messages, errors and their stack traces,
    metadata), with each run's config and tags."""
    from dagster._serdes import serialize_value

    said = []
    for run in runs:
        said += [serialize_value(entry) for entry in instance.all_logs(run.run_id)]
        said.append(str(run.dagster_run.run_config) + str(run.dagster_run.tags))
    return "\n".join(said)


@pytest.fixture
def corpus_env(
    s3_endpoint: str, s3_client: Any, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sample guides in a fresh bucket, and the environment a deployment would set."""
    upload_corpus(s3_client, bucket, SAMPLE_CORPUS / "guides")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDtesting")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRETS["AWS_SECRET_ACCESS_KEY"])
    monkeypatch.setenv("RAG_S3_BUCKET", bucket)
    monkeypatch.setenv("RAG_S3_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RAG_SHARDS", "16")


def _sync_capturing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> tuple[str, list[Any], int, int]:
    """One sensor tick and its runs wired as in production, with everything said kept: the
    runs' stored events, Python logging at DEBUG, and any exception that escaped. Returns
    that text, the runs, the documents registered and those still waiting for work."""
    import traceback

    settings = Settings.from_env()
    (tmp_path / "instance").mkdir()
    (tmp_path / "instance" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    caplog.set_level("DEBUG")
    escaped = ""
    with dg.instance_for_test(temp_dir=str(tmp_path / "instance")) as instance:
        harness = Harness(instance, settings, build_resources(settings))
        try:
            runs = harness.sync()
        except Exception as exc:  # the tick itself may fail on a refused service
            escaped, runs = "".join(traceback.format_exception(exc)), harness.runs
        said = _everything_said(instance, runs) + caplog.text + escaped
        registered = sum(harness.registry.status_counts(settings.scope).values())
        waiting = harness.registry.work_count(settings.scope, None)
    return said, runs, registered, waiting


@pytest.mark.usefixtures("corpus_env")
def test_qdrant_api_key_is_sent_to_the_server_and_said_nowhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Server mode with an API key, against a server that refuses every request: the real
    qdrant-client sends the key on every request, and no log line, event, error, stack trace,
    run config or file holds it; the documents stay registered with their work left."""
    from rag_ingest.testing.recorders import HttpRecorder

    server = HttpRecorder(status=503)
    key = SECRETS["RAG_QDRANT_API_KEY"]
    monkeypatch.setenv("RAG_QDRANT_URL", server.url)
    monkeypatch.setenv("RAG_QDRANT_API_KEY", key)
    try:
        said, runs, registered, waiting = _sync_capturing(tmp_path, caplog)
    finally:
        server.close()
    assert server.requests, "nothing reached the Qdrant server"
    assert all(r.get("api-key") == key for r in server.requests), server.requests[0]
    assert "refused by the test server" in said or "503" in said  # the failure was reported
    assert key not in said
    assert _files_containing(tmp_path, [key.encode()]) == []
    assert not any(run.success for run in runs)
    assert registered and waiting == registered  # nothing lost: all still to do


@pytest.mark.usefixtures("corpus_env")
def test_modal_token_is_sent_to_modal_and_said_nowhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The Modal embedder with a token, against a stand-in for Modal's API (the unmodified
    Modal client, via ``MODAL_SERVER_URL``) that refuses it: the client sends the token, the
    run fails naming the refusal, and the token is said nowhere."""
    from rag_ingest.testing.recorders import GrpcRecorder

    api = GrpcRecorder()
    token = SECRETS["MODAL_TOKEN_SECRET"]
    monkeypatch.setenv("RAG_EMBEDDER", "modal")
    monkeypatch.setenv("MODAL_SERVER_URL", api.url)
    monkeypatch.setenv("MODAL_TOKEN_ID", "ak-rag-ingest-test")
    monkeypatch.setenv("MODAL_TOKEN_SECRET", token)
    try:
        said, runs, registered, waiting = _sync_capturing(tmp_path, caplog)
    finally:
        api.close()
    assert api.requests, "nothing reached Modal's API"
    assert all(r.get("x-modal-token-secret") == token for r in api.requests), api.requests[0]
    assert runs and not any(run.success for run in runs)
    # The embedder looks the class up when its resource starts: the run fails there, before
    # any step, with Modal's refusal named.
    refusals = [
        event.event_specific_data.error.to_string()
        for run in runs
        for event in run.all_events
        if event.event_type_value == "RESOURCE_INIT_FAILURE"
    ]
    assert refusals and all("Modal rejected the credentials" in r for r in refusals), refusals
    assert "refused by the test server" in said
    assert token not in said
    assert _files_containing(tmp_path, [token.encode()]) == []
    assert registered and waiting == registered
