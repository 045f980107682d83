"""The Qdrant deployment as a resource: a server, qdrant-client's local mode, or Qdrant Edge."""

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from rag_ingest.core.vectorstore import VectorStore, open_vector_store
from rag_ingest.core.vectorstore.location import store_location


class VectorStoreResource(dg.ConfigurableResource):
    """Where the points live. Which collection the pipeline writes is not this resource's to
    say: the alias readers query (``Settings.collection``) and the physical collection behind it
    (one per pipeline fingerprint) both come from the settings.

    The embedded engines allow one process at a time: :meth:`open` waits for the folder lock
    (up to ``lock_wait_seconds``), and writers are also serialized by the ``qdrant`` pool.
    """

    engine: str = "edge"
    url: str | None = None
    api_key: str | None = None
    path: str = "data/qdrant-edge"
    upsert_batch_size: int = 256
    timeout_seconds: int = 60
    lock_wait_seconds: float = 600.0

    @property
    def location(self) -> str:
        """Where points live, as the registry names targets: the opened store's ``location``
        (one function makes both); never contains the API key or URL user info."""
        return store_location(self.engine, url=self.url, path=self.path)

    @property
    def is_embedded(self) -> bool:
        return self.engine != "server"

    @contextmanager
    def open(self, lock_wait_seconds: float | None = None) -> Iterator[VectorStore]:
        """The store; ``lock_wait_seconds`` overrides how long to wait for an embedded store's
        folder lock (a sensor waits a moment, not as long as a run)."""
        wait = self.lock_wait_seconds if lock_wait_seconds is None else lock_wait_seconds
        store = open_vector_store(
            self.engine,
            url=self.url,
            api_key=self.api_key,
            path=self.path,
            timeout=self.timeout_seconds,
            lock_wait_seconds=wait,
        )
        try:
            yield store
        finally:
            store.close()
