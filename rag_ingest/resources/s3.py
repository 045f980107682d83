"""The watched bucket, as a resource: one boto3 client per process, bounded retries."""

import threading
from typing import Any

import dagster as dg
from pydantic import PrivateAttr

from rag_ingest.core.storage import s3


class S3Source(dg.ConfigurableResource):
    """The bucket the sensors watch and the assets read.

    Credentials come from the standard AWS chain (environment, profile, instance role).
    """

    bucket: str
    endpoint_url: str | None = None
    region_name: str | None = None
    max_attempts: int = 5
    fetch_threads: int = 8

    _client: Any = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._client = None

    @property
    def client(self) -> Any:
        # One path for sensors, runs and the CLI: built on first use (boto3 clients are
        # thread-safe and cheap to keep), once, though every fetch thread asks at the start.
        if self._client is None:
            with _client_lock:
                if self._client is None:
                    self._client = s3.make_client(
                        self.endpoint_url, self.region_name, self.max_attempts
                    )
        return self._client


_client_lock = threading.Lock()
