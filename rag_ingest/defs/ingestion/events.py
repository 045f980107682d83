"""The event sensor: S3 event notifications from SQS, the low-latency way into the registry.

Each tick receives a bounded number of messages and reduces their events to one per key. An
event is only a hint to look at a key (delivery is at least once, unordered, possibly late),
so the key's current state is read with a HEAD and applied exactly as a listing of just those
keys would be (``plan_tick``): unknown → registered, other ETag and not older → re-queued,
404 while registered → marked for deletion. Messages are deleted only after the registry
writes committed; then the shared ``request_runs`` requests runs on the same tick.

The listing sensors keep running, slower, as the safety net for lost or never-sent events;
both feed the same registry, so a key the events already registered is unchanged to them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
from botocore.exceptions import BotoCoreError, ClientError

from rag_ingest.core.config import Settings
from rag_ingest.core.planning.listing import TickPlan, plan_tick
from rag_ingest.core.planning.s3_events import (
    IGNORED,
    MALFORMED,
    TEST_EVENT,
    ParsedBody,
    parse_body,
    reduce_events,
)
from rag_ingest.core.registry import Registry
from rag_ingest.core.storage.s3 import S3Object
from rag_ingest.defs.ingestion.sensors import INGEST_JOB, request_runs
from rag_ingest.resources import DocumentRegistry, S3Source, VectorStoreResource
from rag_ingest.resources.events import QueueMessage, S3EventsQueue

EVENTS_SENSOR = "s3_events_sensor"
EVENTS_TRIGGER = "events"
HEAD_THREADS = 16
_MISSING = ("404", "NoSuchKey", "NotFound")


@dataclass
class Heads:
    """What S3 holds now for the keys events named."""

    objects: list[S3Object] = field(default_factory=list)
    answered: set[str] = field(default_factory=set)  # exists or 404: a definite answer
    failed: dict[str, str] = field(default_factory=dict)  # key → error, decided next time


@dataclass
class EventsTick:
    received: int = 0
    deleted: int = 0
    kept: int = 0
    test_events: int = 0
    ignored: int = 0
    malformed: int = 0
    out_of_scope: int = 0
    duplicates: int = 0
    keys: int = 0
    plan: TickPlan = field(default_factory=TickPlan)
    head_failed: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        plan = self.plan
        return (
            f"{self.received} message(s) ({self.test_events} test, {self.ignored} ignored, "
            f"{self.malformed} malformed), {self.out_of_scope} event(s) outside the watched "
            f"prefixes, {self.keys} key(s) looked at ({self.duplicates} duplicate event(s)): "
            f"new {len(plan.new)}, changed {len(plan.changed)}, deleted {len(plan.gone)}, "
            f"unchanged {plan.unchanged}, stale {plan.stale}, HEAD failed "
            f"{len(self.head_failed)}; {self.deleted} message(s) deleted, {self.kept} kept"
        )


def head_object(client: Any, bucket: str, key: str) -> S3Object | None:
    """The object's current version, or None when the key does not exist (404)."""
    try:
        response = client.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if str(exc.response.get("Error", {}).get("Code")) in _MISSING:
            return None
        raise
    return S3Object(
        bucket=bucket,
        key=key,
        etag=str(response.get("ETag", "")).strip('"'),
        size=int(response.get("ContentLength", 0)),
        last_modified=response["LastModified"],
    )


def head_all(client: Any, bucket: str, keys: Iterable[str]) -> Heads:
    """HEAD every key (in parallel). A folder marker counts as absent, as in a listing."""

    def one(key: str) -> tuple[str, S3Object | None, str | None]:
        try:
            return key, head_object(client, bucket, key), None
        except (BotoCoreError, ClientError) as exc:
            return key, None, f"{type(exc).__name__}: {exc}"

    keys = list(keys)
    heads = Heads()
    if not keys:
        return heads
    with ThreadPoolExecutor(max_workers=min(HEAD_THREADS, len(keys))) as pool:
        for key, obj, error in pool.map(one, keys):
            if error is not None:
                heads.failed[key] = error
                continue
            heads.answered.add(key)
            if obj is not None and not (key.endswith("/") and obj.size == 0):
                heads.objects.append(obj)
    return heads


def apply_messages(
    messages: list[QueueMessage], client: Any, reg: Registry, settings: Settings, log: Any
) -> tuple[EventsTick, list[QueueMessage]]:
    """Bring the registry in step with S3 for every key the messages name.

    Returns:
        The tick's counts and the messages that are done with (to delete): all but those
        naming a key whose HEAD failed, which come back after their visibility timeout.
    """
    tick = EventsTick(received=len(messages))
    parsed: list[tuple[QueueMessage, ParsedBody]] = [(m, parse_body(m.body)) for m in messages]
    for message, body in parsed:
        if body.kind == TEST_EVENT:
            tick.test_events += 1
        elif body.kind == IGNORED:
            tick.ignored += 1
        elif body.kind == MALFORMED:
            # Deleted: no later delivery can make it readable, and keeping it would only
            # repeat this warning every visibility timeout. The listing covers its key, if any.
            tick.malformed += 1
            log.warning(
                f"SQS message {message.message_id} is not an S3 event notification "
                f"({body.problem}); deleting it. Body: {message.body[:300]!r}"
            )
        elif body.problem:
            log.warning(f"SQS message {message.message_id}: skipped records: {body.problem}")
    batch = reduce_events((e for _, b in parsed for e in b.events), settings.scope)
    tick.out_of_scope, tick.duplicates, tick.keys = (
        batch.out_of_scope,
        batch.duplicates,
        len(batch.latest),
    )
    heads = head_all(client, settings.bucket, sorted(key for _, key in batch.latest))
    tick.head_failed = heads.failed
    # The listing of just these keys against the registry rows of just these keys: a key
    # whose HEAD failed is in neither, so it is never taken for deleted.
    known = reg.known_keys(settings.bucket, heads.answered)
    # HEAD answers are the objects' current state: another ETag is a change (current=True).
    tick.plan = plan_tick(heads.objects, known, max_new=len(heads.objects), current=True)
    reg.register(tick.plan.new)
    reg.requeue(tick.plan.changed)
    reg.mark_deleting(tick.plan.gone)
    for key, error in sorted(heads.failed.items()):
        log.warning(f"HEAD s3://{settings.bucket}/{key} failed ({error}); its message is kept")
    done = [
        m
        for m, body in parsed
        if not any(e.bucket == settings.bucket and e.key in heads.failed for e in body.events)
    ]
    return tick, done


def evaluate_events_tick(
    context: dg.SensorEvaluationContext,
    queue: S3EventsQueue,
    source: S3Source,
    reg: Registry,
    settings: Settings,
    location: str,
) -> dg.SensorResult:
    """The body of the event sensor's tick (a plain function, so tests can call it)."""
    started = time.perf_counter()
    tick = EventsTick()
    messages = queue.receive()
    if messages:
        try:
            tick, done = apply_messages(messages, source.client, reg, settings, context.log)
        except Exception:
            # Nothing is deleted before the registry committed; let the next tick retry now
            # rather than after the visibility timeout.
            if not queue.release(messages):
                context.log.warning("could not release the messages; they return after timeout")
            raise
        try:
            refused = queue.delete(done)
        except (BotoCoreError, ClientError) as exc:
            # The registry is written: redelivered messages find their keys unchanged.
            context.log.warning(f"deleting {len(done)} SQS message(s) failed: {exc}")
            refused = [m.message_id for m in done]
        tick.deleted, tick.kept = len(done) - len(refused), len(messages) - len(done) + len(refused)
    # Every tick, not only those with messages: work left behind by a shard that was in
    # flight, or a re-ingest asked for by hand, is requested within one events interval.
    requests, summary = request_runs(context, reg, settings, location, EVENTS_TRIGGER)
    line = f"{tick.summary()}; {summary} in {time.perf_counter() - started:.2f}s"
    if messages or requests:
        context.log.info(line)
    else:
        context.log.debug(line)
    return dg.SensorResult(run_requests=requests)


def build_events_sensor(settings: Settings) -> dg.SensorDefinition:
    """The event sensor, running by default when a bucket and a queue are configured."""
    running = settings.bucket_configured and bool(settings.events_queue_url)

    @dg.sensor(
        name=EVENTS_SENSOR,
        job_name=INGEST_JOB,
        minimum_interval_seconds=settings.events_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING
        if running
        else dg.DefaultSensorStatus.STOPPED,
        description="Applies S3 event notifications from SQS to the registry (each key is "
        "HEADed, never trusted from the event) and requests reconcile runs on the same tick.",
    )
    def _sensor(
        context: dg.SensorEvaluationContext,
        s3_source: S3Source,
        registry: DocumentRegistry,
        vectors: VectorStoreResource,
        events_queue: S3EventsQueue,
    ) -> dg.SensorResult:
        return evaluate_events_tick(
            context, events_queue, s3_source, registry.registry, settings, vectors.location
        )

    return _sensor
