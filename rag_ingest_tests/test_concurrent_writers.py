"""Two writers of the same document really running at once: the older version's writer checks
the registry, then a newer version is registered and its writer runs while the older one is
between its check and its write. The writers' lock (``core.registry.lock.exclusive``, taken
around the write section as ``qdrant_collection`` does) must keep the newer points.

Without the lock the same interleaving leaves the older version's points in the collection
(the second parameter shows the window is real, so the first one can fail)."""

from __future__ import annotations

import contextlib
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rag_ingest.core.config import Settings
from rag_ingest.core.pipeline.runfiles import DocumentRow
from rag_ingest.core.pipeline.scope import RunScope, ShardTally
from rag_ingest.core.pipeline.write import ShardWriter
from rag_ingest.core.records import DocumentInfo
from rag_ingest.core.registry import Registry, Scope
from rag_ingest.core.registry.lock import exclusive
from rag_ingest.core.storage.s3 import S3Object
from rag_ingest.core.text.chunking import Chunk
from rag_ingest.core.vectorstore import open_vector_store

NOW = datetime(2026, 12, 4, tzinfo=UTC)
DIM = 8


def _rows(info: DocumentInfo, n: int) -> list[tuple[DocumentRow, np.ndarray]]:
    chunks = [Chunk(i, f"{info.etag} chunk {i}", 0, 10, 3) for i in range(n)]
    vectors = np.eye(DIM, dtype=np.float32)[:n]
    return [(DocumentRow(info, chunks=chunks, vectors=vectors), vectors)]


class _PausedLookups:
    """The registry, but the first ``lookup`` of the older writer's thread (its version check)
    tells the test and waits a while before the writer goes on to write."""

    def __init__(self, reg: Registry, checked: threading.Event, newer_done: threading.Event):
        self._reg, self._checked, self._newer_done = reg, checked, newer_done
        self._paused = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reg, name)

    def lookup(self, doc_ids: Any) -> Any:
        found = self._reg.lookup(doc_ids)
        if not self._paused:
            self._paused = True
            self._checked.set()
            # The check-then-write window: give the newer writer every chance to finish.
            self._newer_done.wait(timeout=3.0)
        return found


@pytest.mark.parametrize("locked", [True, False])
def test_an_older_writer_paused_between_check_and_write_never_wins(
    tmp_path: Path, locked: bool
) -> None:
    reg = Registry(f"sqlite:///{tmp_path / 'registry.sqlite'}")
    settings = Settings(bucket="bkt", data_dir=tmp_path, shards=16)
    layout = settings.shard_layout
    (doc,) = reg.register([S3Object("bkt", "v.md", '"e1"', 10, NOW)])
    store = open_vector_store("edge", path=tmp_path / "edge")
    store.ensure_collection("c", DIM)
    # The target's spec says what its points hold: here dense vectors only, as "c" was made.
    spec = settings.replace(sparse=False).fingerprint.as_json()
    target = reg.new_target(store.location, "c", "documents", "fp", spec)
    shard = layout.of(doc)

    def writer(registry: Any, run: str) -> ShardWriter:
        scope = RunScope(layout, Scope("bkt"), [shard], run, run)
        return ShardWriter(store, registry, target, ShardTally(scope))

    def section() -> contextlib.AbstractContextManager[Any]:
        return exclusive(reg, "qdrant", 30) if locked else contextlib.nullcontext()

    older_info = DocumentInfo.from_record(reg.lookup([doc])[doc])  # planned at e1
    checked, newer_done = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def run(body: Any) -> None:
        try:
            body()
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)

    def older() -> None:
        with section():
            writer(_PausedLookups(reg, checked, newer_done), "older").write(
                _rows(older_info, 3), 64
            )

    def newer() -> None:
        try:
            with section():
                info = DocumentInfo.from_record(reg.lookup([doc])[doc])
                assert info.etag == '"e2"'
                writer(reg, "newer").write(_rows(info, 3), 64)
        finally:
            newer_done.set()

    first = threading.Thread(target=run, args=(older,))
    first.start()
    assert checked.wait(10), errors  # the older writer has checked: the registry still said e1
    reg.requeue([S3Object("bkt", "v.md", '"e2"', 10, NOW)])  # the sensor sees version 2
    second = threading.Thread(target=run, args=(newer,))
    second.start()
    for t in (first, second):
        t.join(30)
    assert not errors, errors
    etags = {p.payload["metadata"]["etag"] for p in store.scroll("c", doc_ids=[doc])}
    record = reg.lookup([doc])[doc]
    store.close()
    if locked:
        assert etags == {'"e2"'}
        assert (record.status, record.ingested_etag) == ("ok", '"e2"')
    else:
        # The window is real: unserialized, the older version's points replace the newer's.
        assert etags == {'"e1"'}
