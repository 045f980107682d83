"""Shared pieces of the benchmark: environment, an S3 client, timing, machine facts (the local S3
itself is ``rag_ingest.testing.s3``, shared with the tests and `make dev`)."""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# Set before boto3/transformers are imported anywhere: the benchmark never reaches a network.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parent.parent
REGION = "us-east-1"


@contextmanager
def env_vars(**values: str | None) -> Iterator[None]:
    """Set (or, with None, unset) environment variables for the block; restore them after."""
    saved = {k: os.environ.get(k) for k in values}
    try:
        _apply_env(values)
        yield
    finally:
        _apply_env(saved)


def _apply_env(values: dict[str, str | None]) -> None:
    for k, v in values.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def s3_client(endpoint: str) -> Any:
    from rag_ingest.core.storage.s3 import make_client

    return make_client(endpoint, REGION, max_attempts=3)


def notify(client: Any, bucket: str, queue_arn: str | None) -> None:
    """S3 → SQS notifications of every created and removed object to ``queue_arn`` (None: off)."""
    config: dict[str, Any] = {}
    if queue_arn:
        kinds = ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]
        config = {"QueueConfigurations": [{"QueueArn": queue_arn, "Events": kinds}]}
    client.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=config)


class Stopwatch:
    """``with Stopwatch() as sw: ...``; ``sw.seconds`` afterwards (perf_counter wall time)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._start = 0.0

    def __enter__(self) -> Stopwatch:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._start


def proc_status_mb(field: str) -> float:
    """A memory field of /proc/self/status (``VmHWM`` = peak RSS, ``VmRSS`` = now) in MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def machine_info() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = "?"
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        ram = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    info = {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "ram": ram,
        "load average (1/5/15 min) at start": " / ".join(f"{x:.2f}" for x in os.getloadavg()),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }
    for dist in ("torch", "sentence-transformers", "dagster", "qdrant-client", "moto"):
        info[dist] = _version(dist)
    return info


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"
