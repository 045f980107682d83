"""The event sensor: S3 event notifications from SQS, the low-latency way into the registry.

Each tick receives a bounded number of messages and applies them to the registry
(``core.planning.s3_events.apply_messages``: every named key is HEADed, never trusted from the
event). Messages are deleted only after the registry writes committed; then the shared
``request_runs`` requests runs on the same tick.

The listing sensors keep running, slower, as the safety net for lost or never-sent events;
both feed the same registry, so a key the events already registered is unchanged to them.
"""

from __future__ import annotations

import time

import dagster as dg
from botocore.exceptions import BotoCoreError, ClientError

from rag_ingest.core.config import Settings
from rag_ingest.core.planning.s3_events import EventsTick, apply_messages
from rag_ingest.core.registry import Registry
from rag_ingest.defs.ingestion.sensors import INGEST_JOB, request_runs
from rag_ingest.resources import DocumentRegistry, S3Source, VectorStoreResource
from rag_ingest.resources.sqs import S3EventsQueue

EVENTS_SENSOR = "s3_events_sensor"
EVENTS_TRIGGER = "events"


def evaluate_events_tick(
    context: dg.SensorEvaluationContext,
    queue: S3EventsQueue,
    source: S3Source,
    reg: Registry,
    settings: Settings,
    location: str,
    vectors: VectorStoreResource | None = None,
) -> dg.SensorResult:
    """The body of the event sensor's tick (a plain function, so tests can call it)."""
    started = time.perf_counter()
    tick = EventsTick()
    messages = queue.receive()
    if messages:
        try:
            tick, done = apply_messages(messages, source.client, reg, settings.scope, context.log)
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
    requests, summary = request_runs(context, reg, settings, location, EVENTS_TRIGGER, vectors)
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
            context, events_queue, s3_source, registry.registry, settings, vectors.location, vectors
        )

    return _sensor
