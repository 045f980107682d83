"""moto's S3 (and SQS) server in this process, and putting a folder of documents into a bucket:
the local S3 of the tests, the benchmark and `make dev`."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rag_ingest.testing import SAMPLE_CORPUS
from rag_ingest.testing.ports import free_port


@contextmanager
def moto_server(port: int | None = None) -> Iterator[str]:
    """moto's server on 127.0.0.1 (``port``, or a free one) for the block; yields its endpoint
    URL and stops the server on exit."""
    from moto.server import ThreadedMotoServer

    # werkzeug logs one access line per request: noise that buries the caller's own output.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = port or free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def upload_corpus(
    client: Any, bucket: str, root: Path = SAMPLE_CORPUS, prefix: str = ""
) -> list[str]:
    """Put every file under ``root`` into ``bucket`` (key: ``prefix`` + its relative path);
    returns the keys in sorted order."""
    keys = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        key = prefix + path.relative_to(root).as_posix()
        client.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
        keys.append(key)
    return keys
