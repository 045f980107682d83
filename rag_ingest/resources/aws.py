"""What the AWS-backed resources share: one boto3 client per resource instance, built on
first use (sensors, runs and the CLI all reach it the same way) and kept (boto3 clients are
thread-safe and cheap to keep, and every fetch thread asks for it at the start)."""

from __future__ import annotations

import threading
from typing import Any

import dagster as dg
from pydantic import PrivateAttr

_client_lock = threading.Lock()


class AwsClientResource(dg.ConfigurableResource):
    """A resource holding one boto3 client; subclasses say how it is made."""

    _client: Any = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._client = None

    @property
    def client(self) -> Any:
        if self._client is None:
            with _client_lock:
                if self._client is None:
                    self._client = self._make_client()
        return self._client

    def _make_client(self) -> Any:
        raise NotImplementedError
