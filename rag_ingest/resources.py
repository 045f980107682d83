"""Dagster resources: the S3 source, the registry, intermediate storage and Qdrant."""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg
from pydantic import PrivateAttr
from qdrant_client import QdrantClient

from rag_ingest.core import s3
from rag_ingest.core.blobstore import BlobStore, open_blobstore
from rag_ingest.core.registry import Registry


class S3Source(dg.ConfigurableResource):
    """The bucket the sensors watch and the assets read.

    Credentials come from the standard AWS chain (environment, profile, instance role).
    """

    bucket: str
    endpoint_url: str | None = None
    region_name: str | None = None
    max_object_bytes: int = 64 * 1024 * 1024
    max_attempts: int = 5
    fetch_threads: int = 8

    _client: Any = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._client = s3.make_client(self.endpoint_url, self.region_name, self.max_attempts)

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = s3.make_client(self.endpoint_url, self.region_name, self.max_attempts)
        return self._client


class DocumentRegistry(dg.ConfigurableResource):
    """SQL registry of documents (see ``rag_ingest.core.registry``)."""

    url: str

    _registry: Registry | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._registry = Registry(self.url)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._registry is not None:
            self._registry.close()
            self._registry = None

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = Registry(self.url)
        return self._registry


class IntermediateStore(dg.ConfigurableResource):
    """Per-partition Parquet files: a local folder or ``s3://bucket/prefix``."""

    base: str
    endpoint_url: str | None = None
    region_name: str | None = None

    _store: BlobStore | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        client = None
        if self.base.startswith("s3://"):
            client = s3.make_client(self.endpoint_url, self.region_name)
        self._store = open_blobstore(self.base, client)

    @property
    def store(self) -> BlobStore:
        if self._store is None:
            self.setup_for_execution(dg.build_init_resource_context())
        assert self._store is not None
        return self._store


class QdrantResource(dg.ConfigurableResource):
    """A Qdrant server (``url`` + ``api_key``) or the embedded local mode (``path``).

    The embedded mode allows one process at a time; :meth:`get_client` waits for the lock
    (up to ``lock_wait_seconds``) instead of failing, and writers are also serialized by the
    ``qdrant`` pool in the instance config.
    """

    url: str | None = None
    api_key: str | None = None
    path: str = "data/qdrant"
    collection: str = "documents"
    upsert_batch_size: int = 256
    timeout_seconds: int = 60
    lock_wait_seconds: float = 600.0

    @property
    def is_local(self) -> bool:
        return not self.url

    @contextmanager
    def get_client(self) -> Iterator[QdrantClient]:
        client = self._open()
        try:
            yield client
        finally:
            client.close()

    def _open(self) -> QdrantClient:
        if self.url:
            return QdrantClient(url=self.url, api_key=self.api_key, timeout=self.timeout_seconds)
        deadline = time.monotonic() + self.lock_wait_seconds
        while True:
            try:
                return QdrantClient(path=self.path)
            except RuntimeError as exc:
                if "already accessed" not in str(exc) or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"embedded Qdrant at {self.path} is held by another process; stop it or "
                        "use a Qdrant server (RAG_QDRANT_URL)"
                    ) from exc
                time.sleep(1.0)
