"""S3 event notifications as they arrive in SQS, parsed without I/O.

Three body shapes reach the queue: the S3 notification itself (S3 → SQS, or S3 → SNS → SQS
with raw message delivery), an SNS envelope whose ``Message`` is that notification as a JSON
string, and S3's ``s3:TestEvent``, sent once when a notification configuration is saved.

An event is only ever a hint, "look at this key": delivery is at least once, unordered and
possibly late, so the sensor reads the object's current state from S3 before it changes the
registry. What is parsed here is therefore just enough to find the key, to log, and to keep
one event per key when a batch holds several.

:func:`apply_messages` is what the event sensor does with a batch: each named key's current
state is read with a HEAD and applied exactly as a listing of just those keys would be
(``plan_tick``): unknown → registered, other ETag and not older → re-queued, 404 while
registered → marked for deletion.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar
from urllib.parse import unquote_plus

from rag_ingest.core.planning.listing import TickPlan, plan_tick
from rag_ingest.core.registry import Registry
from rag_ingest.core.registry.model import Scope
from rag_ingest.core.storage.s3 import S3Object, head_all

# What a body can be, once parsed.
S3_EVENTS = "s3"
TEST_EVENT = "test"
IGNORED = "ignored"  # well-formed but not an object event (e.g. an SNS subscription notice)
MALFORMED = "malformed"

_SNS_OTHER = ("SubscriptionConfirmation", "UnsubscribeConfirmation")


@dataclass(frozen=True)
class ObjectEvent:
    """One S3 event record; ``key`` is decoded (S3 sends it URL-encoded, ``+`` for spaces)."""

    bucket: str
    key: str
    name: str
    sequencer: str = ""
    etag: str | None = None
    size: int | None = None
    time: str = ""

    @property
    def order(self) -> int:
        """Sequencers are hex strings of varying length; AWS compares them after left-padding
        with zeros, which is their value as integers. Missing or invalid ones sort first."""
        try:
            return int(self.sequencer, 16)
        except ValueError:
            return -1


@dataclass(frozen=True)
class ParsedBody:
    kind: str
    events: tuple[ObjectEvent, ...] = ()
    problem: str | None = None


@dataclass
class Batch:
    """A batch's events reduced to one per (bucket, key), and what was set aside."""

    latest: dict[tuple[str, str], ObjectEvent] = field(default_factory=dict)
    out_of_scope: int = 0
    duplicates: int = 0


def parse_body(body: str) -> ParsedBody:
    """Parse one SQS message body; never raises (a bad body is ``MALFORMED`` with a reason)."""
    try:
        doc = json.loads(body)
    except (TypeError, ValueError) as exc:
        return ParsedBody(MALFORMED, problem=f"not JSON: {exc}")
    if isinstance(doc, dict) and doc.get("Type") in _SNS_OTHER:
        return ParsedBody(IGNORED, problem=f"SNS {doc['Type']}")
    if _sns_envelope(doc):
        try:
            doc = json.loads(doc["Message"])
        except ValueError as exc:
            return ParsedBody(MALFORMED, problem=f"SNS Message is not JSON: {exc}")
    return _parse_notification(doc)


def _sns_envelope(doc: Any) -> bool:
    return (
        isinstance(doc, dict)
        and isinstance(doc.get("Message"), str)
        and (doc.get("Type") == "Notification" or "TopicArn" in doc)
    )


def _parse_notification(doc: Any) -> ParsedBody:
    if not isinstance(doc, dict):
        return ParsedBody(MALFORMED, problem="not a JSON object")
    if doc.get("Event") == "s3:TestEvent":
        return ParsedBody(TEST_EVENT)
    records = doc.get("Records")
    if not isinstance(records, list) or not records:
        return ParsedBody(MALFORMED, problem="no Records")
    parsed: list[ObjectEvent] = []
    problems: list[str] = []
    for index, record in enumerate(records):
        try:
            parsed.append(_record(record))
        except (KeyError, TypeError, ValueError) as exc:
            problems.append(f"record {index}: {type(exc).__name__} {exc}")
    problem = "; ".join(problems) or None
    if not parsed:
        return ParsedBody(MALFORMED, problem=problem)
    # A body with some readable records keeps them: the broken ones are reported, and the
    # listing covers whatever they were about.
    return ParsedBody(S3_EVENTS, tuple(parsed), problem)


def _record(record: Mapping[str, Any]) -> ObjectEvent:
    s3 = record["s3"]
    obj = s3["object"]
    bucket, raw_key = s3["bucket"]["name"], obj["key"]
    if not isinstance(bucket, str) or not isinstance(raw_key, str) or not bucket or not raw_key:
        raise ValueError("bucket name and object key must be non-empty strings")
    return ObjectEvent(
        bucket=bucket,
        key=unquote_plus(raw_key),
        name=str(record.get("eventName", "")),
        sequencer=str(obj.get("sequencer", "")),
        etag=str(obj["eTag"]) if obj.get("eTag") else None,
        size=_size(obj.get("size")),
        time=str(record.get("eventTime", "")),
    )


def _size(value: Any) -> int | None:
    # Informational only (the sensor HEADs the object): a bad size does not reject the record.
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def reduce_events(events: Iterable[ObjectEvent], scope: Scope) -> Batch:
    """Keep the events of watched keys, one per (bucket, key): the highest sequencer, or the
    later one in delivery order when sequencers tie or are missing."""
    batch = Batch()
    for event in events:
        if not scope.contains(event.bucket, event.key):
            batch.out_of_scope += 1
            continue
        ident = (event.bucket, event.key)
        seen = batch.latest.get(ident)
        if seen is not None:
            batch.duplicates += 1
            if event.order < seen.order:
                continue
        batch.latest[ident] = event
    return batch


class Message(Protocol):
    """What :func:`apply_messages` reads of a queue message."""

    @property
    def message_id(self) -> str: ...
    @property
    def body(self) -> str: ...


M = TypeVar("M", bound=Message)


@dataclass
class Heads:
    """What S3 holds now for the keys events named."""

    objects: list[S3Object] = field(default_factory=list)
    answered: set[str] = field(default_factory=set)  # exists or 404: a definite answer
    failed: dict[str, str] = field(default_factory=dict)  # key → error, decided next time

    @classmethod
    def of(cls, client: Any, bucket: str, keys: Iterable[str]) -> Heads:
        answered, failed = head_all(client, bucket, keys)
        objects = [obj for obj in answered.values() if obj is not None]
        return cls(objects, set(answered), failed)


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


def apply_messages(
    messages: Sequence[M], client: Any, reg: Registry, scope: Scope, log: Any
) -> tuple[EventsTick, list[M]]:
    """Bring the registry in step with S3 for every key the messages name.

    Returns:
        The tick's counts and the messages that are done with (to delete): all but those
        naming a key whose HEAD failed, which come back after their visibility timeout.
    """
    tick = EventsTick(received=len(messages))
    parsed: list[tuple[M, ParsedBody]] = [(m, parse_body(m.body)) for m in messages]
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
    batch = reduce_events((e for _, b in parsed for e in b.events), scope)
    tick.out_of_scope, tick.duplicates, tick.keys = (
        batch.out_of_scope,
        batch.duplicates,
        len(batch.latest),
    )
    bucket = scope.bucket
    heads = Heads.of(client, bucket, sorted(key for _, key in batch.latest))
    tick.head_failed = heads.failed
    # The listing of just these keys against the registry rows of just these keys: a key
    # whose HEAD failed is in neither, so it is never taken for deleted.
    known = reg.known_keys(bucket, heads.answered)
    # HEAD answers are the objects' current state: another ETag is a change (current=True).
    tick.plan = plan_tick(heads.objects, known, max_new=len(heads.objects), current=True)
    reg.register(tick.plan.new)
    reg.requeue(tick.plan.changed)
    reg.mark_deleting(tick.plan.gone)
    for key, error in sorted(heads.failed.items()):
        log.warning(f"HEAD s3://{bucket}/{key} failed ({error}); its message is kept")
    done = [
        m
        for m, body in parsed
        if not any(e.bucket == bucket and e.key in heads.failed for e in body.events)
    ]
    return tick, done
