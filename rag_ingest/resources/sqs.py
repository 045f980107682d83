"""The SQS queue S3 event notifications arrive on, as a resource: receive, delete, release."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from rag_ingest.resources.aws import AwsClientResource

_SQS_BATCH = 10  # SQS's maximum per receive, delete and visibility call
# sqs.<region>.amazonaws.com and the legacy <region>.queue.amazonaws.com
_REGION_IN_URL = re.compile(r"^https?://(?:sqs\.([a-z0-9-]+)|([a-z0-9-]+)\.queue)\.amazonaws\.com")


@dataclass(frozen=True)
class QueueMessage:
    message_id: str
    receipt_handle: str
    body: str
    receive_count: int = 1


def region_from_url(queue_url: str) -> str | None:
    """The region an AWS queue URL names (None for other endpoints: moto, LocalStack)."""
    found = _REGION_IN_URL.match(queue_url)
    return (found.group(1) or found.group(2)) if found else None


class S3EventsQueue(AwsClientResource):
    """An SQS queue receiving the watched bucket's event notifications (directly or via SNS).

    Credentials come from the standard AWS chain. The region defaults to the one in the queue
    URL. Received messages stay invisible for ``visibility_timeout_seconds``: a sensor tick
    that dies without deleting them sees them again after that.
    """

    queue_url: str
    endpoint_url: str | None = None
    region_name: str | None = None
    max_messages_per_tick: int = 1000
    wait_seconds: int = 1
    visibility_timeout_seconds: int = 120
    # Receiving stops after this long even below the message cap, so that a tick (HEADs and
    # registry writes follow) stays well inside Dagster's sensor evaluation timeout.
    receive_budget_seconds: float = 15.0
    max_attempts: int = 5

    def _make_client(self) -> Any:
        config = Config(
            retries={"max_attempts": self.max_attempts, "mode": "standard"},
            connect_timeout=10,
            # A long poll holds the connection for wait_seconds before answering.
            read_timeout=self.wait_seconds + 30,
        )
        return boto3.client(
            "sqs",
            endpoint_url=self.endpoint_url or None,
            region_name=self.region_name or region_from_url(self.queue_url),
            config=config,
        )

    def receive(self) -> list[QueueMessage]:
        """Up to ``max_messages_per_tick`` messages, in batches of 10, until a receive comes
        back empty or the budget is spent; only an empty queue costs a ``wait_seconds`` poll."""
        received: list[QueueMessage] = []
        started = time.monotonic()
        while len(received) < self.max_messages_per_tick:
            if received and time.monotonic() - started > self.receive_budget_seconds:
                break
            response = self.client.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=min(_SQS_BATCH, self.max_messages_per_tick - len(received)),
                # Only the first call waits: once messages came, an empty answer ends the tick
                # at once (anything SQS did not sample this time comes with the next tick).
                WaitTimeSeconds=0 if received else self.wait_seconds,
                VisibilityTimeout=self.visibility_timeout_seconds,
                MessageSystemAttributeNames=["ApproximateReceiveCount"],
            )
            batch = response.get("Messages", [])
            if not batch:
                break
            received += [
                QueueMessage(
                    message_id=m["MessageId"],
                    receipt_handle=m["ReceiptHandle"],
                    body=m.get("Body", ""),
                    receive_count=int(m.get("Attributes", {}).get("ApproximateReceiveCount", 1)),
                )
                for m in batch
            ]
        return received

    def delete(self, messages: list[QueueMessage]) -> list[str]:
        """Delete handled messages; returns the ids SQS refused (they come back: harmless)."""
        refused: list[str] = []
        for start in range(0, len(messages), _SQS_BATCH):
            chunk = messages[start : start + _SQS_BATCH]
            response = self.client.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m.receipt_handle} for i, m in enumerate(chunk)
                ],
            )
            refused += [chunk[int(f["Id"])].message_id for f in response.get("Failed", [])]
        return refused

    def release(self, messages: list[QueueMessage]) -> bool:
        """Make messages visible again now (the next tick retries them). Best effort: if this
        fails too, they return after the visibility timeout anyway."""
        try:
            for start in range(0, len(messages), _SQS_BATCH):
                chunk = messages[start : start + _SQS_BATCH]
                self.client.change_message_visibility_batch(
                    QueueUrl=self.queue_url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m.receipt_handle, "VisibilityTimeout": 0}
                        for i, m in enumerate(chunk)
                    ],
                )
        except (BotoCoreError, ClientError):
            return False
        return True
