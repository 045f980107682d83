"""One run's writes into one index version, free of Dagster: outcomes, supersedes, deletions,
then each shard verified against the registry.

Writers are serialized (the Dagster layer runs them in pool ``qdrant``), so the version check
before each write and the write itself never interleave with another run's: a document is
written only while the registry still holds the version this run processed. Outcomes are
recorded for the current target; each shard is then compared with the registry, orphan points
removed and documents whose points are missing re-queued.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from rag_ingest.core.index.fingerprint import Fingerprint
from rag_ingest.core.keys import is_document_id, point_id
from rag_ingest.core.pipeline.retries import settle_documents
from rag_ingest.core.pipeline.runfiles import DocumentRow
from rag_ingest.core.pipeline.scope import ShardTally
from rag_ingest.core.pipeline.windows import windows
from rag_ingest.core.planning.shards import Shards
from rag_ingest.core.registry import GONE_STATUSES, DocumentRecord, Registry, Target
from rag_ingest.core.text.sparse import Bm25Encoder
from rag_ingest.core.vectorstore.base import DocumentPoints, VectorStore, holds_version

WINDOW_POINTS = 8192
SUPERSEDED = "a newer version (or the deletion) of this object was registered meanwhile"
# Adjacent shards verified by one registry read and one scroll: bounds the rows held at once.
VERIFY_SHARDS_PER_QUERY = 32
REQUEUED = "its points in the collection did not match its chunks at its version; re-queued"


class RunFilesMismatch(ValueError):
    """The embeddings file of a run does not line up with its chunks file."""


def aligned(
    chunk_rows: Iterable[DocumentRow], vector_rows: Iterable[DocumentRow]
) -> Iterator[tuple[DocumentRow, np.ndarray]]:
    """Chunks and vectors of each document, read side by side from the two run files.

    Raises:
        RunFilesMismatch: a document's vectors are not those of its chunks.
    """
    for chunk_row, vector_row in zip(chunk_rows, vector_rows, strict=True):
        info = chunk_row.info
        vectors = vector_row.vectors if vector_row.vectors is not None else np.zeros((0, 0))
        if vector_row.info.doc_id != info.doc_id or len(vectors) != len(chunk_row.chunks):
            raise RunFilesMismatch(
                f"{info.source}: embeddings do not match chunks ({len(vectors)} vectors for "
                f"{len(chunk_row.chunks)} chunks); re-materialize embeddings for these shards"
            )
        yield chunk_row, vectors


def shard_groups(layout: Shards, shards: Sequence[str], size: int) -> Iterator[list[str]]:
    """``shards`` in groups of at most ``size`` adjacent ones (a gap starts a new group)."""
    if size < 1:
        raise ValueError("size must be at least 1")
    group: list[str] = []
    for shard in shards:
        if group and (len(group) == size or layout.index(shard) != layout.index(group[-1]) + 1):
            yield group
            group = []
        group.append(shard)
    if group:
        yield group


def _superseded(info_etag: str, current: DocumentRecord | None) -> bool:
    return current is None or current.status in GONE_STATUSES or current.etag != info_etag


class ShardWriter:
    """One run's writes into one target, with what the checks and metadata need."""

    def __init__(
        self, store: VectorStore, reg: Registry, target: Target, report: ShardTally
    ) -> None:
        self.store, self.reg, self.target, self.report = store, reg, target, report
        self.scope = report.scope
        self.point_ids: list[str] = []
        self.expected: dict[str, int] = {}
        self.actual: Counter[str] = Counter()
        self.written = self.stale = 0
        # The version's own fingerprint says whether its points carry BM25 (not the settings:
        # a version keeps the layout it was created with). One encoder for the run: its stem
        # cache is most of its speed.
        sparse = Fingerprint.from_json(target.spec).sparse_vector if target.spec else ""
        self.bm25 = Bm25Encoder() if sparse else None

    def write(self, rows: Iterable[tuple[DocumentRow, np.ndarray]], batch_size: int) -> None:
        """Write every document of ``rows``, a window of about :data:`WINDOW_POINTS` at once."""
        for window in windows(rows, lambda item: max(1, len(item[0].chunks)), WINDOW_POINTS):
            self.window(window, batch_size)

    def window(self, items: list[tuple[DocumentRow, np.ndarray]], batch_size: int) -> None:
        current = self.reg.lookup(row.info.doc_id for row, _ in items)
        fresh: list[DocumentPoints] = []
        deleted: list[DocumentRow] = []
        for row, vectors in items:
            info = row.info
            self.report.count(info.doc_id, processed=1)
            record = current.get(info.doc_id)
            if info.status == "deleting":
                if record is not None and record.status == "deleting":
                    deleted.append(row)
                else:  # re-created since the run was planned: its own run ingests it
                    self.report.count(info.doc_id, superseded=1)
            elif _superseded(info.etag, record):
                self.report.count(info.doc_id, superseded=1)
                self.report.add(info.doc_id, "skipped", info.source, info.status, SUPERSEDED)
            else:
                texts = [chunk.text for chunk in row.chunks]
                sparse = self.bm25.embed_documents(texts) if self.bm25 else None
                fresh.append(DocumentPoints(info, row.chunks, vectors, sparse))
        # Transient failures leave points alone and wait for a retry (core.pipeline.retries).
        to_write, outcomes = settle_documents(fresh, current, self.target.id)
        stats = self.store.replace_documents(self.target.collection, to_write, batch_size)
        self.written += stats.points_written
        self.stale += stats.stale_points_removed
        self._remove(deleted)
        applied = self.reg.record(outcomes, self.target.id, self.scope.run_id)
        ok_ids = [d.info.doc_id for d in fresh if d.info.status == "ok"]
        self.actual.update(self.store.points_per_document(self.target.collection, ok_ids))
        for doc in fresh:
            info, n = doc.info, len(doc.chunks)
            if info.doc_id not in applied:
                self.report.count(info.doc_id, superseded=1)
                continue
            if info.status == "ok":
                self.expected[info.doc_id] = n
                self.point_ids += [point_id(info.doc_id, info.etag, c.index) for c in doc.chunks]
                was = current[info.doc_id]
                action = "updated" if was.ingested_etag else "added"
                self.report.count(info.doc_id, ingested=1, points=n)
                self.report.add(info.doc_id, action, info.source, "ok", f"{n} chunks")
            else:
                self.report.count(info.doc_id, failed=1)
                self.report.add(info.doc_id, "failed", info.source, info.status, info.reason or "")

    def _remove(self, deleted: list[DocumentRow]) -> None:
        if not deleted:
            return
        ids = [row.info.doc_id for row in deleted]
        # Every version at this location drops them: a re-index in progress must not keep
        # serving a deleted document from the version readers still use.
        for target in self.reg.targets(self.store.location, self.target.alias):
            if target.state != "dropped" and self.store.collection_exists(target.collection):
                self.store.delete_documents(target.collection, ids)
        removed = self.reg.mark_removed(ids, self.scope.run_id)
        for row in deleted:
            if row.info.doc_id in removed:
                self.report.count(row.info.doc_id, removed=1)
                self.report.add(row.info.doc_id, "removed", row.info.source, "removed", "")

    def verify_shards(
        self, shards_per_query: int = VERIFY_SHARDS_PER_QUERY
    ) -> tuple[list[str], int, int]:
        """Compare each shard with the registry; remove orphans, re-queue wrong documents.

        A document is right when its points are exactly its recorded chunks at the version the
        registry holds as ingested: points of another version with the same count (written by
        an interleaved writer, or left by a restore) are wrong too, so the doc ids and ETags of
        the run's points are read (two payload fields, no vectors). Up to ``shards_per_query``
        adjacent shards share one registry read and one scroll: a run bridging hundreds of idle
        shards pays for their points, not for two round trips each.
        """
        mismatched: list[str] = []
        requeued = orphans = 0
        layout, watched, collection = self.scope.layout, self.scope.watched, self.target.collection
        for group in shard_groups(layout, self.scope.shards, shards_per_query):
            hashes = layout.hash_range(group[0], group[-1])
            expected = self.reg.ingested_versions(self.target.id, hashes, watched)
            per_doc = self.store.versions_per_document(collection, key_hashes=hashes)
            stray = [d for d in per_doc if d not in expected]
            if stray:
                live = self.reg.live_doc_ids(watched, hashes)
                stray = [d for d in stray if d not in live]
            wrong = [d for d, (e, n) in expected.items() if not holds_version(per_doc.get(d), e, n)]
            if stray:
                orphans += self.store.delete_documents(collection, stray)
            if wrong:
                requeued += len(self.reg.mark_pending(wrong, REQUEUED, self.scope.run_id))
            wrong_in = Counter(layout.of(d) for d in wrong)
            # A point's doc id can be anything a foreign writer put there: its shard is then
            # the group's first, where its key_hash put it in this scroll.
            stray_in = Counter(layout.of(d) if is_document_id(d) else group[0] for d in stray)
            for shard in sorted(wrong_in.keys() | stray_in.keys()):
                mismatched.append(
                    f"{shard}: {wrong_in[shard]} wrong, {stray_in[shard]} orphan documents"
                )
        return mismatched, requeued, orphans

    def count_unchanged(self) -> None:
        """Documents of each shard this run left alone (already ingested at their version)."""
        layout = self.scope.layout
        live = self.reg.count_by_hash_bucket(self.scope.watched, self.scope.hashes, layout.width)
        for shard, counts in self.report.counts.items():
            touched = counts["processed"] - counts["removed"]
            counts["documents"] = live.get(layout.index(shard), 0)
            counts["unchanged"] = max(0, counts["documents"] - touched)
