"""S3 event notification bodies as S3 and SNS deliver them, built for tests."""

from __future__ import annotations

import json
from typing import Any


def s3_record(
    key: str, bucket: str = "bkt", name: str = "ObjectCreated:Put", seq: str = "", etag: str = "abc"
) -> dict[str, Any]:
    """One record as S3 writes it (the key is given already URL-encoded)."""
    obj: dict[str, Any] = {"key": key, "size": 12, "eTag": etag.strip('"')}
    if seq:
        obj["sequencer"] = seq
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventTime": "2026-01-02T03:04:05.678Z",
        "eventName": name,
        "s3": {"bucket": {"name": bucket}, "object": obj},
    }


def notification(*records: dict[str, Any]) -> str:
    return json.dumps({"Records": list(records)})


def sns_envelope(message: str) -> str:
    return json.dumps(
        {
            "Type": "Notification",
            "MessageId": "m-1",
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:uploads",
            "Subject": "Amazon S3 Notification",
            "Message": message,
        }
    )
