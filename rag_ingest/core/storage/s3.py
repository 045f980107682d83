"""Plain boto3 access to the watched bucket: the same code for AWS S3, MinIO, R2 and moto."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from botocore.utils import parse_timestamp


@dataclass(frozen=True)
class S3Object:
    """One listed object. ``etag`` is stored without its surrounding quotes."""

    bucket: str
    key: str
    etag: str
    size: int
    last_modified: datetime


@dataclass(frozen=True)
class FetchedObject:
    obj: S3Object
    body: bytes
    content_type: str | None
    content_encoding: str | None


class ObjectMissing(Exception):
    """The object was deleted between listing and fetching."""


class ObjectTooLarge(Exception):
    """The object exceeds the configured maximum size; it is not downloaded."""


class ObjectUnreadable(Exception):
    """GET failed for this object after the client's own retries.

    ``transient``: throttling, 5xx, connection errors and timeouts, which a later attempt may
    not meet. Otherwise a property of the object (its storage class, ACL, KMS key, SSE-C
    encryption...), which only a change to the object ends.
    """

    def __init__(self, code: str, message: str, transient: bool) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code, self.message, self.transient = code, message, transient


_MISSING_CODES = ("NoSuchKey", "404", "NotFound")
# 4xx answers that say nothing about the object.
_TRANSIENT_CODES = frozenset(
    {
        "RequestTimeout",
        "RequestTimeoutException",
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "TooManyRequests",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ProvisionedThroughputExceededException",
        "RequestTimeTooSkewed",
        "ExpiredToken",
        "InternalError",
        "ServiceUnavailable",
        "KMS.ThrottlingException",
    }
)


def unreadable(exc: ClientError | BotoCoreError) -> ObjectUnreadable:
    """Classify a GET failure that is not a missing object."""
    if isinstance(exc, BotoCoreError):  # connection errors, timeouts, a broken body stream
        return ObjectUnreadable(type(exc).__name__, str(exc), transient=True)
    error = exc.response.get("Error", {})
    code = str(error.get("Code") or "")
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    message = str(error.get("Message") or "")
    transient = code in _TRANSIENT_CODES or status >= 500 or status in (408, 429) or not status
    return ObjectUnreadable(code or str(status), message, transient)


# One boto3 session per process, for every client make_client builds.
_session: boto3.Session | None = None
_session_lock = threading.Lock()


def make_client(
    endpoint_url: str | None = None,
    region_name: str | None = None,
    max_attempts: int = 5,
    read_timeout: float = 60.0,
) -> Any:
    """A boto3 S3 client with bounded, backing-off retries (5xx, throttling, timeouts), and
    S3's timestamps parsed by :func:`parse_s3_timestamp`. Thread-safe; clients share one
    session, so the service model is loaded once per process, not once per client."""
    config = Config(
        retries={"max_attempts": max_attempts, "mode": "standard"},
        connect_timeout=10,
        read_timeout=read_timeout,
        max_pool_connections=32,
    )
    global _session
    with _session_lock:  # boto3 sessions are not thread-safe
        if _session is None:
            core = botocore.session.get_session()
            parsers = core.get_component("response_parser_factory")
            parsers.set_parser_defaults(timestamp_parser=parse_s3_timestamp)
            _session = boto3.Session(botocore_session=core)
        return _session.client(
            "s3", endpoint_url=endpoint_url or None, region_name=region_name or None, config=config
        )


def parse_s3_timestamp(value: str) -> datetime:
    """S3's two timestamp forms, ISO 8601 (listings) and RFC 7231 (headers), parsed by the
    standard library; anything else by botocore's parser. botocore's default goes through
    dateutil for every timestamp, which is most of a listing's client-side time."""
    try:
        if value[:1].isdigit():
            parsed = datetime.fromisoformat(value)
        else:
            parsed = parsedate_to_datetime(value)
        if parsed.tzinfo is not None:
            return parsed
    except (TypeError, ValueError):
        pass
    return parse_timestamp(value)


def _etag(raw: str) -> str:
    return raw.strip('"')


def list_objects(client: Any, bucket: str, prefix: str) -> Iterator[S3Object]:
    """Every object under ``prefix`` across all pages; folder markers (``key/``) are skipped."""
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(
        Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": 1000}
    ):
        for item in page.get("Contents", ()):
            key = item["Key"]
            if key.endswith("/") and item.get("Size", 0) == 0:
                continue
            yield _listed(bucket, item)


@dataclass(frozen=True)
class ListingPage:
    """Part of a prefix's listing, in S3's key order (UTF-8 binary).

    ``objects``: the objects listed (folder markers skipped); ``last_key``: the last key S3
    returned (a skipped marker included; None when it returned none): the next page starts
    after it; ``complete``: S3 has nothing after ``last_key`` under the prefix.
    """

    objects: list[S3Object]
    last_key: str | None
    complete: bool
    requests: int


def list_page(
    client: Any,
    bucket: str,
    prefix: str,
    after: str | None,
    max_keys: int,
    max_seconds: float,
) -> ListingPage:
    """List ``prefix`` from the first key after ``after`` (None: from the start) until at least
    ``max_keys`` keys are listed, ``max_seconds`` have passed (checked between S3 requests)
    or the listing is complete. Never asks S3 for more than ``max_keys`` keys in all."""
    started = time.monotonic()
    objects: list[S3Object] = []
    last, seen, requests = after, 0, 0
    while True:
        params: dict[str, Any] = {
            "Bucket": bucket,
            "Prefix": prefix,
            "MaxKeys": max(1, min(1000, max_keys - seen)),
        }
        if last is not None:
            params["StartAfter"] = last
        response = client.list_objects_v2(**params)
        requests += 1
        contents = response.get("Contents", ())
        for item in contents:
            last = item["Key"]
            seen += 1
            if last.endswith("/") and item.get("Size", 0) == 0:
                continue
            objects.append(_listed(bucket, item))
        complete = not response.get("IsTruncated") or not contents
        if complete or seen >= max_keys or time.monotonic() - started >= max_seconds:
            return ListingPage(objects, last, complete, requests)


def _listed(bucket: str, item: Mapping[str, Any]) -> S3Object:
    return S3Object(
        bucket=bucket,
        key=item["Key"],
        etag=_etag(item["ETag"]),
        size=int(item.get("Size", 0)),
        last_modified=item["LastModified"],
    )


def fetch(client: Any, bucket: str, key: str, max_bytes: int) -> FetchedObject:
    """Download one object, never reading more than ``max_bytes`` into memory.

    Raises:
        ObjectMissing: the key no longer exists.
        ObjectTooLarge: the object is larger than ``max_bytes``.
        ObjectUnreadable: any other failure, after the client's retries, classified
            transient or not (:func:`unreadable`).
    """
    try:
        response = client.get_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in _MISSING_CODES:
            raise ObjectMissing(key) from exc
        raise unreadable(exc) from exc
    except BotoCoreError as exc:
        raise unreadable(exc) from exc
    body = response["Body"]
    size = int(response.get("ContentLength", 0))
    try:
        if size > max_bytes:
            raise ObjectTooLarge(f"object is {size:,} bytes; the limit is {max_bytes:,}")
        data = body.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise ObjectTooLarge(f"object exceeds the {max_bytes:,}-byte limit")
    except (BotoCoreError, OSError) as exc:  # the body stream broke (reset, read timeout)
        if isinstance(exc, BotoCoreError):
            raise unreadable(exc) from exc
        raise ObjectUnreadable(type(exc).__name__, str(exc), transient=True) from exc
    finally:
        body.close()
    obj = S3Object(
        bucket=bucket,
        key=key,
        etag=_etag(response.get("ETag", "")),
        size=size,
        last_modified=response["LastModified"],
    )
    return FetchedObject(
        obj=obj,
        body=data,
        content_type=response.get("ContentType"),
        content_encoding=response.get("ContentEncoding"),
    )


# Parallel HEAD requests of one batch: they are latency-bound, not bandwidth-bound.
HEAD_THREADS = 16


def head_object(client: Any, bucket: str, key: str) -> S3Object | None:
    """The object's current version, or None when the key does not exist (404)."""
    try:
        response = client.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if str(exc.response.get("Error", {}).get("Code")) in _MISSING_CODES:
            return None
        raise
    return S3Object(
        bucket=bucket,
        key=key,
        etag=_etag(str(response.get("ETag", ""))),
        size=int(response.get("ContentLength", 0)),
        last_modified=response["LastModified"],
    )


def head_all(
    client: Any, bucket: str, keys: Iterable[str]
) -> tuple[dict[str, S3Object | None], dict[str, str]]:
    """HEAD every key (in parallel).

    Returns:
        The keys with a definite answer, each with its object (None: absent, or a folder
        marker, as in a listing), and the keys whose HEAD failed, each with its error.
    """

    def one(key: str) -> tuple[str, S3Object | None, str | None]:
        try:
            return key, head_object(client, bucket, key), None
        except (BotoCoreError, ClientError) as exc:
            return key, None, f"{type(exc).__name__}: {exc}"

    keys = list(keys)
    answered: dict[str, S3Object | None] = {}
    failed: dict[str, str] = {}
    if not keys:
        return answered, failed
    with ThreadPoolExecutor(max_workers=min(HEAD_THREADS, len(keys))) as pool:
        for key, obj, error in pool.map(one, keys):
            if error is not None:
                failed[key] = error
            elif obj is not None and key.endswith("/") and obj.size == 0:
                answered[key] = None
            else:
                answered[key] = obj
    return answered, failed
