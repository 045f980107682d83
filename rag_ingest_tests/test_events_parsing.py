"""S3 event notification bodies: direct, SNS-wrapped, test events, malformed ones, encoded
keys, one event per key by sequencer; the queue URL's region."""

from __future__ import annotations

import json

import pytest

from rag_ingest.core.planning.s3_events import (
    IGNORED,
    MALFORMED,
    S3_EVENTS,
    TEST_EVENT,
    ObjectEvent,
    parse_body,
    reduce_events,
)
from rag_ingest.core.registry import Scope
from rag_ingest.resources.sqs import region_from_url
from rag_ingest_tests.s3_events import notification, s3_record, sns_envelope


def test_direct_notifications_decode_url_encoded_keys() -> None:
    message = notification(
        s3_record("docs/a+b+c.md", seq="0055AED6DCD90281E5"),
        s3_record("docs%2Fr%C3%A9sum%C3%A9+2026.pdf", name="ObjectRemoved:Delete"),
        s3_record("docs/100%25+done%2B.txt"),
    )
    parsed = parse_body(message)
    assert parsed.kind == S3_EVENTS and parsed.problem is None
    assert [e.key for e in parsed.events] == [
        "docs/a b c.md",
        "docs/résumé 2026.pdf",
        "docs/100% done+.txt",
    ]
    first = parsed.events[0]
    assert (first.bucket, first.etag, first.size) == ("bkt", "abc", 12)
    assert (first.name, first.sequencer) == ("ObjectCreated:Put", "0055AED6DCD90281E5")


def test_sns_wrapped_and_raw_delivered_notifications_read_the_same() -> None:
    inner = notification(s3_record("docs/x+y.md"))
    direct, wrapped = parse_body(inner), parse_body(sns_envelope(inner))
    assert direct == wrapped and [e.key for e in wrapped.events] == ["docs/x y.md"]
    test_event = json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "bkt"})
    assert parse_body(test_event).kind == TEST_EVENT
    assert parse_body(sns_envelope(test_event)).kind == TEST_EVENT
    confirmation = json.dumps({"Type": "SubscriptionConfirmation", "Message": "confirm"})
    assert parse_body(confirmation).kind == IGNORED


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[1, 2]",
        "null",
        json.dumps({"Records": []}),
        json.dumps({"Records": "x"}),
        json.dumps({"hello": "world"}),
        notification({"s3": {"bucket": {"name": "bkt"}}}),
        notification({"s3": {"bucket": {"name": "bkt"}, "object": {"key": ""}}}),
        sns_envelope("{not json"),
    ],
)
def test_malformed_bodies_are_reported_not_raised(body: str) -> None:
    parsed = parse_body(body)
    assert parsed.kind == MALFORMED and parsed.problem and not parsed.events


def test_a_body_with_one_broken_record_keeps_the_readable_ones() -> None:
    parsed = parse_body(notification(s3_record("docs/ok.md"), {"s3": None}))
    assert parsed.kind == S3_EVENTS and [e.key for e in parsed.events] == ["docs/ok.md"]
    assert parsed.problem and "record 1" in parsed.problem


def test_a_batch_keeps_one_event_per_key_the_highest_sequencer() -> None:
    def ev(key: str, seq: str, name: str = "ObjectCreated:Put", bucket: str = "bkt") -> ObjectEvent:
        return ObjectEvent(bucket, key, name, seq)

    events = [
        ev("docs/a.md", "FF"),
        ev("docs/a.md", "0100", "ObjectRemoved:Delete"),  # longer, and later: 0x100 > 0xFF
        ev("docs/a.md", "0FE"),  # older, delivered last
        ev("docs/b.md", "9"),
        ev("docs/b.md", "10", "ObjectRemoved:Delete"),  # "10" < "9" as text, 0x10 > 0x9
        ev("docs/c.md", ""),
        ev("docs/c.md", "", "ObjectRemoved:Delete"),  # no sequencers: the later delivery
        ev("other/d.md", "1"),  # outside the watched prefix
        ev("docs/e.md", "1", bucket="elsewhere"),  # another bucket
    ]
    batch = reduce_events(events, Scope("bkt", ("docs/",)))
    assert {k: e.name for (_, k), e in batch.latest.items()} == {
        "docs/a.md": "ObjectRemoved:Delete",
        "docs/b.md": "ObjectRemoved:Delete",
        "docs/c.md": "ObjectRemoved:Delete",
    }
    assert (batch.out_of_scope, batch.duplicates) == (2, 4)


def test_the_region_comes_from_an_aws_queue_url() -> None:
    assert region_from_url("https://sqs.eu-west-1.amazonaws.com/123456789012/q") == "eu-west-1"
    assert region_from_url("https://us-east-2.queue.amazonaws.com/123456789012/q") == "us-east-2"
    assert region_from_url("http://127.0.0.1:5000/123456789012/q") is None
