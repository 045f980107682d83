"""The watched bucket, as a resource: one boto3 client per process, bounded retries."""

from typing import Any

from rag_ingest.core.storage import s3
from rag_ingest.resources.aws import AwsClientResource


class S3Source(AwsClientResource):
    """The bucket the sensors watch and the assets read.

    Credentials come from the standard AWS chain (environment, profile, instance role).
    """

    bucket: str
    endpoint_url: str | None = None
    region_name: str | None = None
    max_attempts: int = 5
    fetch_threads: int = 8

    def _make_client(self) -> Any:
        return s3.make_client(self.endpoint_url, self.region_name, self.max_attempts)
