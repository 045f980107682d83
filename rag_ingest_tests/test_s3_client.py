"""The project's S3 client: timestamps parsed without dateutil, equal to botocore's own."""

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.utils import parse_timestamp

from rag_ingest.core.storage import s3


@pytest.mark.parametrize(
    "value",
    [
        "2026-11-30T18:40:23.000Z",
        "2026-11-30T18:40:23Z",
        "2026-11-30T18:40:23.123456+02:00",
        "Mon, 30 Nov 2026 18:40:23 GMT",
        "Sun, 06 Nov 1994 08:49:37 +0100",
        "2026-11-30T18:40:23",  # no zone: botocore's parser (UTC)
        "1764528023",  # epoch seconds: botocore's parser
        "Mon, 30 Nov 2026 18:40:23 -0000",  # RFC 2822 "unknown zone": botocore's parser
    ],
)
def test_timestamps_parse_as_botocore_does(value: str) -> None:
    parsed, expected = s3.parse_s3_timestamp(value), parse_timestamp(value)
    assert (parsed, parsed.utcoffset()) == (expected, expected.utcoffset())


def test_garbage_is_botocore_s_error() -> None:
    with pytest.raises(ValueError):
        s3.parse_s3_timestamp("not a date")


def test_listing_and_fetch_match_a_plain_boto3_client(
    s3_endpoint: str, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    stdlib = s3.parsedate_to_datetime

    def counted(value: str) -> datetime:
        calls.append(value)
        return stdlib(value)

    # The header form goes through the standard library's parser: count it.
    monkeypatch.setattr(s3, "parsedate_to_datetime", counted)
    plain: Any = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    for i in range(3):
        plain.put_object(Bucket=bucket, Key=f"t/{i}.txt", Body=b"x" * (i + 1))
    client = s3.make_client(s3_endpoint, "us-east-1")
    listed = {o.key: o for o in s3.list_objects(client, bucket, "t/")}
    expected = {
        o["Key"]: o["LastModified"]
        for o in plain.list_objects_v2(Bucket=bucket, Prefix="t/")["Contents"]
    }
    assert {k: o.last_modified for k, o in listed.items()} == expected
    now = datetime.now(UTC)
    for key, obj in listed.items():
        assert obj.last_modified.utcoffset() == timedelta(0)
        assert abs(obj.last_modified - now) < timedelta(minutes=5)
        fetched = s3.fetch(client, bucket, key, 1024)
        head = plain.head_object(Bucket=bucket, Key=key)["LastModified"]
        assert fetched.obj.last_modified == head
        assert fetched.obj.last_modified.tzinfo is not None
    assert len(calls) >= 3  # each fetch's Last-Modified: the client uses the fast parser


def test_fetch_threads_share_one_client(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    from rag_ingest.resources.s3 import S3Source

    made: list[object] = []
    original = s3.make_client

    def counted(*args: Any, **kwargs: Any) -> Any:
        made.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(s3, "make_client", counted)
    source = S3Source(bucket="b", endpoint_url=s3_endpoint, region_name="us-east-1")
    start = Barrier(16)

    def client(_: int) -> int:
        start.wait()  # every thread asks at once, as the fetch threads do when a step starts
        return id(source.client)

    with ThreadPoolExecutor(16) as pool:
        ids = set(pool.map(client, range(16)))
    assert len(ids) == 1 and len(made) == 1
