"""Faults injected into the real components: S3 errors, vanished objects, Qdrant down or locked,
the embedder failing, a run killed with SIGKILL. Each time a re-run converges."""

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, ClassVar

import dagster as dg
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ReadTimeoutError

from rag_ingest.core.keys import document_id
from rag_ingest.resources import LocalEmbedder, S3Source, VectorStoreResource
from rag_ingest.testing import REPO
from rag_ingest.testing.harness import Harness, make_resources, make_settings
from rag_ingest.testing.ports import free_port
from rag_ingest_tests.sync_oracle import expected_versions, text


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_kwargs: Any) -> Any:
        yield self.body


class FlakyS3(S3Source):
    """The real client, with faults injected before GetObject requests leave it."""

    faults_per_key: int = 2
    always: bool = False
    calls: ClassVar[dict[str, int]] = {}

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        super().setup_for_execution(context)
        self.client.meta.events.register("before-send.s3.GetObject", self._inject)

    def _inject(self, request: Any, **_kwargs: Any) -> Any:
        n = FlakyS3.calls[request.url] = FlakyS3.calls.get(request.url, 0) + 1
        if not self.always and n > self.faults_per_key:
            return None
        if n % 2:
            body = b"<Error><Code>SlowDown</Code><Message>Reduce your rate</Message></Error>"
            return AWSResponse(request.url, 503, {}, _Raw(body))
        raise ReadTimeoutError(endpoint_url=request.url)


def _seed(client: Any, bucket: str, n: int = 4) -> list[str]:
    rng = random.Random(n)
    keys = [f"docs/{i}.md" for i in range(n)]
    for key in keys:
        client.put_object(Bucket=bucket, Key=key, Body=text(rng, 3).encode())
    return keys


@pytest.fixture()
def instance() -> Any:
    with dg.instance_for_test() as inst:
        yield inst


def _harness(instance: Any, endpoint: str, bucket: str, data: Path, **resources: Any) -> Harness:
    # A full reconcile on the first tick puts every shard into one run.
    settings = make_settings(bucket, data, full_reconcile_hours=24)
    harness = Harness(instance, settings, {**make_resources(endpoint, settings), **resources})
    harness.full_reconcile_due()
    return harness


def test_throttling_5xx_and_timeouts_are_retried(
    s3_endpoint: str, s3_client: Any, bucket: str, tmp_path: Path, instance: Any
) -> None:
    _seed(s3_client, bucket)
    flaky = FlakyS3(bucket=bucket, endpoint_url=s3_endpoint, max_attempts=5)
    FlakyS3.calls.clear()
    harness = _harness(instance, s3_endpoint, bucket, tmp_path, s3_source=flaky)
    assert [r.success for r in harness.sync()] == [True]
    assert all(n == 3 for n in FlakyS3.calls.values())  # 503, timeout, then success
    assert harness.versions() == expected_versions(s3_client, bucket)


def test_an_s3_outage_fails_the_run_and_a_rerun_converges(
    s3_endpoint: str, s3_client: Any, bucket: str, tmp_path: Path, instance: Any
) -> None:
    _seed(s3_client, bucket)
    down = FlakyS3(bucket=bucket, endpoint_url=s3_endpoint, max_attempts=3, always=True)
    harness = _harness(instance, s3_endpoint, bucket, tmp_path, s3_source=down)
    request = harness.tick()
    (failed,) = harness.launch(request)
    assert not failed.success and harness.versions() == set()
    harness.resources["s3_source"] = S3Source(bucket=bucket, endpoint_url=s3_endpoint)
    assert [r.success for r in harness.launch(request, rerun=True)] == [True]
    assert harness.versions() == expected_versions(s3_client, bucket)


def test_an_object_deleted_between_list_and_get_is_treated_as_deleted(
    s3_endpoint: str, s3_client: Any, bucket: str, tmp_path: Path, instance: Any
) -> None:
    keys = _seed(s3_client, bucket)
    harness = _harness(instance, s3_endpoint, bucket, tmp_path)
    request = harness.tick()
    s3_client.delete_object(Bucket=bucket, Key=keys[0])
    assert [r.success for r in harness.launch(request)] == [True]
    doc_id = document_id(bucket, keys[0])
    assert harness.registry.lookup([doc_id])[doc_id].status == "missing"
    (removal,) = harness.sync()
    assert removal.success and removal.dagster_run.job_name == "ingest_documents"
    assert harness.sync() == []
    assert harness.registry.lookup([doc_id])[doc_id].status == "removed"
    assert harness.registry.status_counts() == {"ok": len(keys) - 1, "removed": 1}
    assert harness.versions() == expected_versions(s3_client, bucket)


class BrokenEmbedder(LocalEmbedder):
    def embed(self, texts: list[str]) -> Any:
        raise RuntimeError("GPU worker lost")


def test_embedder_failure_leaves_no_partial_document_and_a_rerun_completes(
    s3_endpoint: str, s3_client: Any, bucket: str, tmp_path: Path, instance: Any
) -> None:
    rng = random.Random(7)
    keys = _seed(s3_client, bucket)
    harness = _harness(instance, s3_endpoint, bucket, tmp_path)
    harness.sync()
    before = harness.versions()
    for key in keys[:2]:
        s3_client.put_object(Bucket=bucket, Key=key, Body=text(rng, 6).encode())
    harness.resources["embedder"] = BrokenEmbedder()
    request = harness.tick()
    # The two changed documents land in one run or two, depending on how far apart their
    # shards are (the bucket name is random): every run must fail at embeddings.
    failed = harness.launch(request)
    assert failed and not any(run.success for run in failed)
    messages = ""
    for run in failed:
        failure = next(e for e in run.all_events if e.event_type_value == "STEP_FAILURE")
        message = str(failure.event_specific_data.error)  # type: ignore[union-attr]
        assert failure.step_key == "embeddings" and "GPU worker lost" in message
        messages += message
    for key in keys[:2]:
        assert f"s3://{bucket}/{key}" in messages
    assert harness.versions() == before  # old versions whole, nothing half-written
    harness.resources["embedder"] = LocalEmbedder()
    assert [r.success for r in harness.launch(request, rerun=True)] == [True] * len(failed)
    assert harness.versions() == expected_versions(s3_client, bucket)


def test_qdrant_unavailable_then_back_converges(
    s3_endpoint: str, s3_client: Any, bucket: str, tmp_path: Path, instance: Any
) -> None:
    _seed(s3_client, bucket)
    harness = _harness(instance, s3_endpoint, bucket, tmp_path)
    local = harness.resources["vectors"]
    down = f"http://127.0.0.1:{free_port()}"
    harness.resources["vectors"] = VectorStoreResource(engine="server", url=down, timeout_seconds=2)
    request = harness.tick()
    (failed,) = harness.launch(request)
    assert not failed.success
    assert {e.step_key for e in failed.all_events if e.is_step_failure} == {"qdrant_collection"}
    harness.resources["vectors"] = local
    assert [r.success for r in harness.launch(request, rerun=True)] == [True]
    assert harness.versions() == expected_versions(s3_client, bucket)


def test_a_run_waits_for_the_embedded_qdrant_lock_instead_of_crashing(
    s3_endpoint: str, s3_client: Any, bucket: str, tmp_path: Path, instance: Any
) -> None:
    _seed(s3_client, bucket)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import time
            from rag_ingest.core.vectorstore import open_vector_store
            store = open_vector_store("edge", path={str(tmp_path / "qdrant-edge")!r})
            print("locked", flush=True)
            time.sleep(6)
            store.close()
        """),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    patient = VectorStoreResource(path=str(tmp_path / "qdrant-edge"), lock_wait_seconds=60)
    harness = _harness(instance, s3_endpoint, bucket, tmp_path, vectors=patient)
    assert [r.success for r in harness.sync()] == [True]
    assert holder.wait(timeout=30) == 0
    assert harness.versions() == expected_versions(s3_client, bucket)


def test_a_run_killed_with_sigkill_converges_on_rerun(
    s3_endpoint: str, s3_client: Any, bucket: str, tmp_path: Path, monkeypatch: Any
) -> None:
    rng = random.Random(9)
    for i in range(10):
        s3_client.put_object(Bucket=bucket, Key=f"k/{i}.md", Body=text(rng, 10).encode())
    home = tmp_path / "home"
    home.mkdir()
    data = tmp_path / "data"
    script = textwrap.dedent(f"""
        from pathlib import Path
        from dagster import DagsterInstance
        from rag_ingest.testing.harness import Harness, make_resources, make_settings
        settings = make_settings({bucket!r}, Path({str(data)!r}))
        resources = make_resources({s3_endpoint!r}, settings)
        Harness(DagsterInstance.get(), settings, resources).sync()
    """)
    env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # Kill it while it writes to Qdrant (the collection folder exists) or, failing that, late.
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if (data / "qdrant-edge" / "collections").exists():
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    # Not `with instance:`: in dagster 1.13.27 its __exit__ leaves the instance's state storage
    # in a context variable, which breaks definitions built by later tests.
    instance = dg.DagsterInstance.get()
    try:
        # What run monitoring (on in dagster_home/dagster.yaml) does once the worker is dead:
        # the run is marked failed, so its shards no longer count as in flight.
        for run in instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
            instance.report_run_failed(run, "run worker killed with SIGKILL")
        settings = make_settings(bucket, data)
        harness = Harness(instance, settings, make_resources(s3_endpoint, settings))
        # The registry still shows the killed run's documents as not done: once their shards'
        # back-off has passed, they are requested again.
        runs = harness.converge()
        assert runs and all(r.success for r in runs)
        points = harness.points()
        assert len({p.id for p in points}) == len(points)
        assert harness.versions() == expected_versions(s3_client, bucket)
    finally:
        instance.dispose()
