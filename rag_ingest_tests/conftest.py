"""Fixtures: real local services for the tests (a moto S3 server, a bucket per test)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any, NoReturn

import pytest

from rag_ingest.core.registry import Registry
from rag_ingest.testing.ports import free_port
from rag_ingest.testing.postgres import URL_ENV, PgServer, PostgresUnavailable, local_cluster
from rag_ingest.testing.postgres import scratch_database as scratch_db
from rag_ingest.testing.s3 import moto_server

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _no_leftover_defs_state_storage() -> Iterator[None]:
    """dagster 1.13.27's ``DagsterInstance.__exit__`` (``instance_for_test``) disposes the
    instance but leaves its state storage in a context variable; once the instance is garbage
    collected, definitions loaded by a later test fail with "undefined DagsterInstance weakref"
    (the outcome depends on the test order and on when the collector runs). Each test starts
    with none and leaves none."""
    from dagster._core.storage.defs_state.base import set_defs_state_storage

    with set_defs_state_storage(None):
        yield


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture()
def s3_client(s3_endpoint: str) -> Any:
    from rag_ingest.core.storage.s3 import make_client

    return make_client(s3_endpoint, "us-east-1", max_attempts=2)


@pytest.fixture()
def bucket(s3_client: Any) -> str:
    name = f"test-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    return name


def _unavailable(exc: Exception) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"CI must test on PostgreSQL: {exc}")
    pytest.skip(str(exc))


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A real PostgreSQL server (given, or started here)."""
    url = os.environ.get(URL_ENV, "").strip()
    with ExitStack() as stack:
        if url:
            server = PgServer.from_url(url)
        else:
            try:
                server = stack.enter_context(local_cluster(free_port()))
            except PostgresUnavailable as exc:
                _unavailable(exc)
        yield server


@pytest.fixture(scope="session")
def postgres(pg_server: PgServer) -> Iterator[PgServer]:
    """A scratch database for Dagster's storage."""
    with scratch_db(pg_server) as db:
        yield db


@pytest.fixture()
def registry_db(pg_server: PgServer) -> Iterator[PgServer]:
    """An empty database of its own for the document registry."""
    with ExitStack() as stack:
        try:
            db = stack.enter_context(scratch_db(pg_server, own=True))
        except PostgresUnavailable as exc:
            _unavailable(exc)
        yield db


@pytest.fixture()
def pg_registry(registry_db: PgServer) -> Iterator[Registry]:
    registry = Registry(registry_db.url)
    try:
        yield registry
    finally:
        registry.close()
