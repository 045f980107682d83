"""Intermediate run files as a resource: a local folder or ``s3://bucket/prefix``."""

import dagster as dg
from pydantic import PrivateAttr

from rag_ingest.core.storage import s3
from rag_ingest.core.storage.blobstore import BlobStore, open_blobstore


class IntermediateStore(dg.ConfigurableResource):
    base: str
    endpoint_url: str | None = None
    region_name: str | None = None

    _store: BlobStore | None = PrivateAttr(default=None)

    @property
    def store(self) -> BlobStore:
        if self._store is None:
            client = None
            if self.base.startswith("s3://"):
                client = s3.make_client(self.endpoint_url, self.region_name)
            self._store = open_blobstore(self.base, client)
        return self._store
