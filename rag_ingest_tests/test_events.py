"""The event sensor on moto's S3 and SQS (real bucket notifications) with a real Dagster
instance and real runs: latency path, changes and deletes, duplicates and reordering, message
deletion only after the registry write, scope, races with the listing. Bodies: see
``test_events_parsing``."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from rag_ingest.core.config import Settings
from rag_ingest.core.keys import document_id
from rag_ingest.core.planning.s3_events import apply_messages
from rag_ingest.core.registry import Registry
from rag_ingest.defs.ingestion.event_sensor import EVENTS_SENSOR, build_events_sensor
from rag_ingest.defs.ingestion.sensors import RANGE_END_TAG, RANGE_START_TAG
from rag_ingest.resources.sqs import QueueMessage, S3EventsQueue
from rag_ingest.testing.harness import Harness, make_resources, make_settings
from rag_ingest_tests.s3_events import notification, s3_record, sns_envelope
from rag_ingest_tests.sync_oracle import expected_versions, text


@pytest.fixture()
def sqs(s3_endpoint: str) -> Any:
    import boto3

    return boto3.client("sqs", endpoint_url=s3_endpoint, region_name="us-east-1")


@pytest.fixture()
def queue_url(sqs: Any) -> str:
    return str(sqs.create_queue(QueueName=f"events-{uuid.uuid4().hex[:12]}")["QueueUrl"])


def _notify(s3_client: Any, sqs: Any, bucket: str, queue_url: str, prefix: str = "") -> None:
    """Real bucket notifications to the queue (moto sends an s3:TestEvent first)."""
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    config: dict[str, Any] = {
        "QueueArn": arn["Attributes"]["QueueArn"],
        "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"],
    }
    if prefix:
        config["Filter"] = {"Key": {"FilterRules": [{"Name": "prefix", "Value": prefix}]}}
    s3_client.put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration={"QueueConfigurations": [config]}
    )


def _queued(sqs: Any, queue_url: str) -> tuple[int, int]:
    """(visible, in flight) messages."""
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attrs = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)["Attributes"]
    return int(attrs[names[0]]), int(attrs[names[1]])


@pytest.fixture()
def harness(
    s3_endpoint: str, s3_client: Any, sqs: Any, bucket: str, queue_url: str, tmp_path: Path
) -> Iterator[Harness]:
    _notify(s3_client, sqs, bucket, queue_url)
    with _harness(s3_endpoint, bucket, queue_url, tmp_path) as harness:
        yield harness


@contextmanager
def _harness(
    endpoint: str, bucket: str, queue_url: str, data: Path, visibility: int = 30, **changes: Any
) -> Iterator[Harness]:
    settings = make_settings(bucket, data, events_queue_url=queue_url, **changes)
    resources = make_resources(endpoint, settings)
    resources["events_queue"] = S3EventsQueue(
        queue_url=queue_url,
        endpoint_url=endpoint,
        region_name="us-east-1",
        max_attempts=2,
        wait_seconds=0,
        visibility_timeout_seconds=visibility,
    )
    with dg.instance_for_test() as instance:
        yield Harness(instance, settings, resources)


def _shards(harness: Harness, result: dg.SensorResult) -> set[str]:
    layout, found = harness.settings.shard_layout, set()
    for request in result.run_requests or []:
        assert isinstance(request, dg.RunRequest)
        found |= set(layout.span(request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG]))
    return found


def _history(harness: Harness, bucket: str, key: str) -> list[str]:
    return [e.event for e in harness.registry.history(document_id(bucket, key))]


def test_a_put_is_requested_on_the_same_tick_and_searchable_after_its_run(
    harness: Harness, s3_client: Any, sqs: Any, bucket: str, queue_url: str
) -> None:
    rng = random.Random(1)
    s3_client.put_object(Bucket=bucket, Key="docs/new doc.md", Body=text(rng, 3).encode())
    result = harness.events_tick()
    doc = document_id(bucket, "docs/new doc.md")
    # One run, over the document's shard (and the idle shards a run bridges: Settings).
    assert len(result.run_requests or []) == 1
    assert harness.settings.shard_layout.of(doc) in _shards(harness, result)
    assert _queued(sqs, queue_url) == (0, 0)  # the test event and the put, both deleted
    (run,) = harness.launch(result)
    assert run.success and run.dagster_run.tags["rag_ingest/trigger"] == "events"
    assert harness.versions() == expected_versions(s3_client, bucket)
    # The listing, the safety net, finds nothing to do: no second registration, no run.
    assert harness.tick().run_requests == []
    assert _history(harness, bucket, "docs/new doc.md") == ["registered", "ingested"]
    assert harness.events_tick().run_requests == []


def test_changes_and_deletes_arrive_through_events(
    harness: Harness, s3_client: Any, bucket: str
) -> None:
    rng = random.Random(2)
    for key in ("a.md", "b.md"):
        s3_client.put_object(Bucket=bucket, Key=key, Body=text(rng, 4).encode())
    harness.launch(harness.events_tick())
    s3_client.put_object(Bucket=bucket, Key="a.md", Body=text(rng, 1).encode())
    s3_client.delete_object(Bucket=bucket, Key="b.md")
    result = harness.events_tick()
    layout = harness.settings.shard_layout
    touched = {layout.of(document_id(bucket, k)) for k in ("a.md", "b.md")}
    assert _shards(harness, result) >= touched
    assert all(r.success for r in harness.launch(result))
    assert harness.versions() == expected_versions(s3_client, bucket)
    assert _history(harness, bucket, "a.md")[-2:] == ["changed", "ingested"]
    assert _history(harness, bucket, "b.md")[-2:] == ["deleted", "removed"]
    assert harness.tick().run_requests == [] and harness.events_tick().run_requests == []


def _send_raw(sqs: Any, queue_url: str, *bodies: str) -> None:
    for body in bodies:
        sqs.send_message(QueueUrl=queue_url, MessageBody=body)


def test_duplicate_and_out_of_order_events_converge_on_what_s3_holds(
    s3_endpoint: str, s3_client: Any, sqs: Any, bucket: str, queue_url: str, tmp_path: Path
) -> None:
    # No bucket notification here: the events are sent by hand, in the wrong order.
    rng = random.Random(3)
    old = s3_client.put_object(Bucket=bucket, Key="r.md", Body=text(rng, 2).encode())["ETag"]
    time.sleep(1.1)  # LastModified has 1-second resolution
    new = s3_client.put_object(Bucket=bucket, Key="r.md", Body=text(rng, 2).encode())["ETag"]
    put_old = notification(s3_record("r.md", bucket, seq="0A", etag=old))
    put_new = notification(s3_record("r.md", bucket, seq="0B", etag=new))
    gone = notification(s3_record("gone.md", bucket, "ObjectRemoved:Delete", seq="0C"))
    _send_raw(sqs, queue_url, put_new, put_new, gone, put_old)  # a duplicate, the old one last
    with _harness(s3_endpoint, bucket, queue_url, tmp_path) as harness:
        runs = harness.launch(harness.events_tick())
        assert [r.success for r in runs] == [True]
        record = harness.registry.find(f"s3://{bucket}/r.md")[0]
        assert record.etag == new.strip('"') and record.status == "ok"
        assert harness.registry.find("gone.md") == []  # a delete of an unknown key: nothing
        # The old version's event, delivered late and twice: HEAD says nothing changed.
        _send_raw(sqs, queue_url, put_old, sns_envelope(put_old))
        assert harness.events_tick().run_requests == []
        assert _queued(sqs, queue_url) == (0, 0)
        assert _history(harness, bucket, "r.md") == ["registered", "ingested"]
        assert harness.versions() == expected_versions(s3_client, bucket)


def test_messages_are_deleted_only_after_the_registry_write(
    s3_endpoint: str,
    s3_client: Any,
    sqs: Any,
    bucket: str,
    queue_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _notify(s3_client, sqs, bucket, queue_url)
    rng = random.Random(4)
    s3_client.put_object(Bucket=bucket, Key="late.md", Body=text(rng, 2).encode())
    real_register = Registry.register

    def broken(self: Registry, objects: Any, run_id: str | None = None) -> list[str]:
        raise RuntimeError("registry unavailable")

    with _harness(s3_endpoint, bucket, queue_url, tmp_path, visibility=2) as harness:
        # A failure the tick sees: the messages are released at once, the next tick retries.
        monkeypatch.setattr(Registry, "register", broken)
        with pytest.raises(RuntimeError, match="registry unavailable"):
            harness.events_tick()
        assert _queued(sqs, queue_url) == (2, 0)  # the test event and the put, both kept
        assert harness.registry.find("late.md") == []
        # A crash (nothing released): the messages stay invisible until their timeout.
        monkeypatch.setattr(S3EventsQueue, "release", lambda self, messages: False)
        with pytest.raises(RuntimeError):
            harness.events_tick()
        monkeypatch.setattr(Registry, "register", real_register)
        assert harness.events_tick().run_requests == [] and _queued(sqs, queue_url) == (0, 2)
        time.sleep(2.2)
        result = harness.events_tick()  # redelivered
        assert [r.success for r in harness.launch(result)] == [True]
        assert _queued(sqs, queue_url) == (0, 0)
        assert harness.versions() == expected_versions(s3_client, bucket)


def test_events_outside_the_watched_prefixes_are_ignored_and_deleted(
    s3_endpoint: str, s3_client: Any, sqs: Any, bucket: str, queue_url: str, tmp_path: Path
) -> None:
    _notify(s3_client, sqs, bucket, queue_url)  # no filter: the bucket sends every key
    for key in ("docs/in.md", "Docs/case.md", "other/out.md", "docs/folder/"):
        s3_client.put_object(Bucket=bucket, Key=key, Body=b"" if key.endswith("/") else b"x")
    _send_raw(sqs, queue_url, notification(s3_record("docs/in.md", "another-bucket")), "garbage")
    with _harness(s3_endpoint, bucket, queue_url, tmp_path, prefixes=("docs/",)) as harness:
        harness.events_tick()
        assert set(harness.registry.known(bucket, "")) == {"docs/in.md"}
        assert _queued(sqs, queue_url) == (0, 0)


def test_the_listing_and_the_events_racing_to_register_a_key_both_succeed(
    harness: Harness, s3_client: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3_client.put_object(Bucket=bucket, Key="race.md", Body=b"# Race\n\nboth saw it.\n")
    harness.events_tick()
    # The listing read the registry just before the event registered the key.
    monkeypatch.setattr(Registry, "known", lambda self, bucket, prefix: {})
    harness.tick()
    assert len(harness.registry.find("race.md")) == 1
    assert _history(harness, bucket, "race.md") == ["registered"]


class _Log:
    def __init__(self) -> None:
        self.warnings: list[str] = []

    def warning(self, message: str) -> None:
        self.warnings.append(message)


class _FlakyS3:
    """HEAD fails for one key (throttled, access denied) and works for the others."""

    def __init__(self, client: Any, bad: str) -> None:
        self.client, self.bad = client, bad

    def head_object(self, Bucket: str, Key: str) -> Any:
        if Key == self.bad:
            from botocore.exceptions import ClientError

            error = {"Error": {"Code": "SlowDown", "Message": "Please reduce your request rate"}}
            raise ClientError(error, "HeadObject")  # type: ignore[arg-type]
        return self.client.head_object(Bucket=Bucket, Key=Key)


def test_a_failed_head_keeps_its_message_and_never_marks_the_key_deleted(
    s3_client: Any, bucket: str, tmp_path: Path
) -> None:
    for key in ("ok.md", "bad.md"):
        s3_client.put_object(Bucket=bucket, Key=key, Body=b"x")
    settings = make_settings(bucket, tmp_path, events_queue_url="q")
    reg = Registry(f"sqlite:///{tmp_path / 'registry.sqlite'}")
    reg.register([o for o in _listing(s3_client, bucket) if o.key == "bad.md"])
    messages = [
        QueueMessage("1", "h1", notification(s3_record("ok.md", bucket))),
        QueueMessage(
            "2", "h2", notification(s3_record("bad.md", bucket), s3_record("ok.md", bucket))
        ),
        QueueMessage("3", "h3", "{broken"),
    ]
    log = _Log()
    tick, done = apply_messages(messages, _FlakyS3(s3_client, "bad.md"), reg, settings.scope, log)
    assert [m.message_id for m in done] == ["1", "3"]  # the malformed one is deleted too
    assert [o.key for o in tick.plan.new] == ["ok.md"] and tick.plan.gone == []
    assert set(tick.head_failed) == {"bad.md"} and tick.malformed == 1
    assert reg.find("bad.md")[0].status == "pending"
    assert any("not an S3 event notification" in w for w in log.warnings)
    assert any("bad.md" in w and "kept" in w for w in log.warnings)
    reg.close()


def _listing(client: Any, bucket: str) -> list[Any]:
    from rag_ingest.core.storage.s3 import list_objects

    return list(list_objects(client, bucket, ""))


def test_the_event_sensor_and_its_settings() -> None:
    env = {
        "RAG_S3_BUCKET": "b",
        "RAG_S3_EVENTS_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/123456789012/q",
        "RAG_EVENTS_INTERVAL_SECONDS": "5",
    }
    settings = Settings.from_env(env)
    assert settings.events_interval_seconds == 5 and settings.sensor_interval_seconds == 3600
    assert Settings.from_env({}).events_interval_seconds == 10
    with pytest.raises(ValueError, match="RAG_EVENTS_INTERVAL_SECONDS"):
        Settings.from_env({**env, "RAG_EVENTS_INTERVAL_SECONDS": "0"})
    sensor = build_events_sensor(settings)
    assert sensor.name == EVENTS_SENSOR and sensor.minimum_interval_seconds == 5
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    unset = build_events_sensor(Settings(events_queue_url=env["RAG_S3_EVENTS_QUEUE_URL"]))
    assert unset.default_status == dg.DefaultSensorStatus.STOPPED


def test_definitions_wire_the_queue_only_when_one_is_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from rag_ingest.definitions import build_definitions

    monkeypatch.setenv("RAG_S3_BUCKET", "b")
    monkeypatch.setenv("RAG_S3_EVENTS_QUEUE_URL", "https://sqs.eu-west-1.amazonaws.com/1/q")
    defs = build_definitions(Settings.from_env())
    dg.Definitions.validate_loadable(defs)
    # The Edge index's maintenance sensor is there either way (the default engine is Edge).
    always = {"s3_sensor_bucket_root", "index_backlog_sensor"}
    assert {s.name for s in defs.sensors or []} == always | {EVENTS_SENSOR}
    assert isinstance((defs.resources or {})["events_queue"], S3EventsQueue)
    monkeypatch.delenv("RAG_S3_EVENTS_QUEUE_URL")
    plain = build_definitions(Settings.from_env())
    assert "events_queue" not in (plain.resources or {})
    assert {s.name for s in plain.sensors or []} == always
