"""The document registry as a resource (see ``rag_ingest.core.registry``)."""

import dagster as dg
from pydantic import PrivateAttr

from rag_ingest.core.registry import Registry


class DocumentRegistry(dg.ConfigurableResource):
    """SQL registry of documents and targets; any SQLAlchemy URL."""

    url: str

    _registry: Registry | None = PrivateAttr(default=None)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._registry is not None:
            self._registry.close()
            self._registry = None

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = Registry(self.url)
        return self._registry
