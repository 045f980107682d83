"""Where intermediate per-partition files live: a local folder or an S3 prefix.

Paths are built only from asset names and partition keys (``keys.PARTITION_KEY_PATTERN``:
no ``/``, no ``..``), and every path is checked to stay under the base anyway.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from botocore.exceptions import ClientError


class BlobStore(Protocol):
    def write(self, path: str, data: bytes) -> None: ...
    def read(self, path: str) -> bytes: ...
    def delete(self, path: str) -> None: ...
    def uri(self, path: str) -> str: ...


class BlobNotFound(FileNotFoundError):
    pass


def _safe_relpath(path: str) -> PurePosixPath:
    rel = PurePosixPath(path)
    if rel.is_absolute() or any(part in ("", ".", "..") for part in rel.parts) or "\\" in path:
        raise ValueError(f"unsafe storage path {path!r}")
    return rel


class LocalBlobStore:
    """Files under a local base folder, written atomically (temp file + rename)."""

    def __init__(self, base: str | Path) -> None:
        self.base = Path(base).resolve()

    def _path(self, path: str) -> Path:
        full = (self.base / _safe_relpath(path)).resolve()
        if not full.is_relative_to(self.base):
            raise ValueError(f"storage path {path!r} escapes {self.base}")
        return full

    def write(self, path: str, data: bytes) -> None:
        full = self._path(path)
        full.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=full.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, full)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def read(self, path: str) -> bytes:
        try:
            return self._path(path).read_bytes()
        except FileNotFoundError as exc:
            raise BlobNotFound(self.uri(path)) from exc

    def delete(self, path: str) -> None:
        self._path(path).unlink(missing_ok=True)

    def uri(self, path: str) -> str:
        return str(self._path(path))


class S3BlobStore:
    """Objects under ``s3://bucket/prefix`` through a boto3 client."""

    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    def _key(self, path: str) -> str:
        rel = str(_safe_relpath(path))
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def write(self, path: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(path), Body=data)

    def read(self, path: str) -> bytes:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(path))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise BlobNotFound(self.uri(path)) from exc
            raise
        return response["Body"].read()

    def delete(self, path: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(path))

    def uri(self, path: str) -> str:
        return f"s3://{self.bucket}/{self._key(path)}"


def open_blobstore(base: str, s3_client: Any | None = None) -> BlobStore:
    """``s3://bucket/prefix`` → :class:`S3BlobStore` (needs ``s3_client``), else a local folder."""
    if base.startswith("s3://"):
        if s3_client is None:
            raise ValueError("an S3 client is needed for an s3:// storage base")
        bucket, _, prefix = base.removeprefix("s3://").partition("/")
        return S3BlobStore(s3_client, bucket, prefix)
    return LocalBlobStore(base)
