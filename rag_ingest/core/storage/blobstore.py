"""Where intermediate files live: a local folder or an S3 prefix.

Paths are built only from fixed names and Dagster run ids, and every path is checked to stay
under the base anyway. Large files move as files (streamed to and from disk), never as one
bytes object.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from botocore.exceptions import ClientError

from rag_ingest.core.keys import source_uri


class BlobStore(Protocol):
    def write(self, path: str, data: bytes) -> None: ...
    def read(self, path: str) -> bytes: ...
    def delete(self, path: str) -> None: ...
    def uri(self, path: str) -> str: ...
    def exists(self, path: str) -> bool: ...

    def writing(self, path: str) -> Any:
        """Context manager yielding a local file path to write; published atomically at exit
        (nothing is published if the block raises)."""
        ...

    def reading(self, path: str) -> Any:
        """Context manager yielding a local path holding the file's content.

        Raises:
            BlobNotFound: no such file.
        """
        ...

    def list_dirs(self, prefix: str) -> list[str]:
        """Names of the immediate sub-folders of ``prefix``."""
        ...

    def delete_tree(self, prefix: str) -> None: ...


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

    def exists(self, path: str) -> bool:
        return self._path(path).is_file()

    @contextmanager
    def writing(self, path: str) -> Iterator[Path]:
        full = self._path(path)
        full.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=full.parent, prefix=".tmp-")
        os.close(fd)
        try:
            yield Path(tmp)
            os.replace(tmp, full)
        finally:
            Path(tmp).unlink(missing_ok=True)

    @contextmanager
    def reading(self, path: str) -> Iterator[Path]:
        full = self._path(path)
        if not full.is_file():
            raise BlobNotFound(self.uri(path))
        yield full

    def list_dirs(self, prefix: str) -> list[str]:
        folder = self._path(prefix)
        return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []

    def delete_tree(self, prefix: str) -> None:
        shutil.rmtree(self._path(prefix), ignore_errors=True)


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
        return source_uri(self.bucket, self._key(path))

    def exists(self, path: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(path))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return False
            raise
        return True

    @contextmanager
    def writing(self, path: str) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(prefix="rag-ingest-") as tmp:
            local = Path(tmp) / "blob"
            yield local
            # upload_file switches to multipart above its threshold: no size limit in memory.
            self.client.upload_file(str(local), self.bucket, self._key(path))

    @contextmanager
    def reading(self, path: str) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(prefix="rag-ingest-") as tmp:
            local = Path(tmp) / "blob"
            try:
                self.client.download_file(self.bucket, self._key(path), str(local))
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                    raise BlobNotFound(self.uri(path)) from exc
                raise
            yield local

    def list_dirs(self, prefix: str) -> list[str]:
        base = self._key(prefix).rstrip("/") + "/"
        names: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=base, Delimiter="/"):
            for common in page.get("CommonPrefixes", ()):
                names.append(common["Prefix"][len(base) :].rstrip("/"))
        return sorted(names)

    def delete_tree(self, prefix: str) -> None:
        base = self._key(prefix).rstrip("/") + "/"
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=base):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", ())]
            if keys:
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys})


def open_blobstore(base: str, s3_client: Any | None = None) -> BlobStore:
    """``s3://bucket/prefix`` → :class:`S3BlobStore` (needs ``s3_client``), else a local folder."""
    if base.startswith("s3://"):
        if s3_client is None:
            raise ValueError("an S3 client is needed for an s3:// storage base")
        bucket, _, prefix = base.removeprefix("s3://").partition("/")
        return S3BlobStore(s3_client, bucket, prefix)
    return LocalBlobStore(base)
