"""Qdrant Edge's index side for :class:`~rag_ingest.core.vectorstore.edge.EdgeStore`: the
settings a collection is created and built with, the search parameters that go with them, and
the index status recorded beside the store for maintenance to read without its lock.

Writers never build an index; :class:`EdgeIndexing` (mixed into the store) is the only place
one is built, by ``optimize`` from the maintenance step (``defs.maintenance.index``): after each
write, the store's close records the collection's points and indexed vectors in
``index_status.json`` (read without the lock, like the aliases), and the index is wanted once
the *unindexed backlog* (points minus indexed vectors) reaches ``indexing_threshold_points``.
Collections carry Edge's indexing threshold at that size and a segment cap of
``max_segment_points``, so one optimize indexes the backlog into segments of at most that size
instead of merging every point into one segment and rebuilding its graph. New collections also
keep int8 codes of their vectors: a search walks each segment's graph on the codes and rescores
the best ``oversampling`` × k candidates on the original vectors. Defaults and their
measurements: ``bench/results/edge-search-knobs.md``, ``bench/results/edge-index-backlog-*.md``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import qdrant_edge as qe

from rag_ingest.core.vectorstore.base import CollectionMismatch
from rag_ingest.core.vectorstore.folder import write_json

INDEX_STATUS_FILE = "index_status.json"
# Edge's own per-shard config file; read for settings since the shard API has no getter.
SHARD_CONFIG = "edge_config.json"
# Unindexed points a search may scan exhaustively before the index is wanted, and Edge's
# indexing threshold for new collections.
DEFAULT_INDEXING_THRESHOLD_POINTS = 10_000
# Largest segment Edge's optimizer builds or merges into: bounds one build, at the price of
# more segments per search (every segment's graph is searched for every query).
DEFAULT_MAX_SEGMENT_POINTS = 100_000
# Whether new collections keep int8 codes of their vectors to walk the graph with.
DEFAULT_QUANTIZE = True
# Candidates taken from the int8 codes per result, then rescored on the original vectors: the
# codes make each graph step cheaper, the rescore keeps the ranking of full precision.
DEFAULT_OVERSAMPLING: float | None = 2.0


@dataclass(frozen=True)
class IndexStatus:
    """How much of a collection a search still scans exhaustively, as of its last write or
    build."""

    points: int
    indexed: int
    segments: int

    @property
    def backlog(self) -> int:
        return max(0, self.points - self.indexed)


def read_index_status(path: str | os.PathLike[str]) -> dict[str, IndexStatus]:
    """Collection → :class:`IndexStatus` recorded by the writers and builders of the store at
    ``path``, read without its lock (the file is only ever replaced whole)."""
    try:
        raw = json.loads((Path(path) / INDEX_STATUS_FILE).read_text())
    except FileNotFoundError:
        return {}
    return {str(name): IndexStatus(**fields) for name, fields in raw.items()}


def record_status(root: Path, name: str, status: IndexStatus | None) -> None:
    """Replace ``name``'s entry (None: forget it) in the store's index status file."""
    recorded = {k: asdict(v) for k, v in read_index_status(root).items()}
    if status is None:
        recorded.pop(name, None)
    else:
        recorded[name] = asdict(status)
    write_json(root / INDEX_STATUS_FILE, recorded)


def shard_status(shard: qe.EdgeShard) -> IndexStatus:
    info = shard.info()
    return IndexStatus(info.points_count, info.indexed_vectors_count, info.segments_count)


def _kb(points: int, dimension: int) -> int:
    """Edge sizes its optimizer thresholds in KB of vectors."""
    return max(1, points * dimension * 4 // 1024)


def optimizers_config(
    threshold: int | None, max_segment: int | None, dimension: int
) -> qe.EdgeOptimizersConfig | None:
    """Edge's optimizer settings for an indexing threshold and segment cap in points (None
    where both are Edge's defaults)."""
    if threshold is None and max_segment is None:
        return None
    return qe.EdgeOptimizersConfig(
        indexing_threshold=None if threshold is None else _kb(threshold, dimension),
        max_segment_size=None if max_segment is None else _kb(max_segment, dimension),
    )


def quantization_config(quantize: bool) -> qe.ScalarQuantizationConfig | None:
    """int8 codes of every dense vector, kept in RAM beside the originals (None: none)."""
    return (
        qe.ScalarQuantizationConfig(type=qe.ScalarType.Int8, always_ram=True) if quantize else None
    )


def new_collection_config(
    dimension: int,
    sparse_vector: str,
    threshold: int | None,
    max_segment: int | None,
    quantize: bool,
) -> qe.EdgeConfig:
    """A new collection's config: one unnamed cosine vector, the named BM25 sparse vector
    (Qdrant supplies IDF) when ``sparse_vector`` names one, int8 codes when ``quantize``."""
    params = qe.EdgeVectorParams(size=dimension, distance=qe.Distance.Cosine)
    sparse = {sparse_vector: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)}
    return qe.EdgeConfig(
        vectors={"": params},
        sparse_vectors=sparse if sparse_vector else None,
        quantization_config=quantization_config(quantize),
        optimizers=optimizers_config(threshold, max_segment, dimension),
    )


def dense_size(name: str, config: dict[str, Any]) -> int:
    """The dense vector size in a collection's persisted config; CollectionMismatch where the
    collection is not one rag-ingest writes (named vectors, another distance)."""
    vectors = config.get("vectors", {})
    if set(vectors) != {""}:
        raise CollectionMismatch(
            f"collection {name!r} uses named vectors; rag-ingest writes one unnamed vector"
        )
    if vectors[""].get("distance") != "Cosine":
        raise CollectionMismatch(
            f"collection {name!r} uses {vectors[''].get('distance')} distance; rag-ingest "
            "writes cosine vectors. Use another collection name."
        )
    return int(vectors[""]["size"])


def search_params(hnsw_ef: int | None, oversampling: float | None) -> qe.SearchParams | None:
    """Dense search parameters: the beam width (None: Edge's default) and, for quantized
    collections, how many int8 candidates per result are rescored (None: Edge's default, no
    oversampling). Collections without quantization ignore the latter."""
    if hnsw_ef is None and oversampling is None:
        return None
    quantization = (
        None
        if oversampling is None
        else qe.QuantizationSearchParams(rescore=True, oversampling=oversampling)
    )
    return qe.SearchParams(hnsw_ef=hnsw_ef, quantization=quantization)


class EdgeIndexing:
    """Index builds and index status for the Edge store this is mixed into."""

    _root: Path
    _threshold: int | None
    _max_segment: int | None
    _shards: dict[str, qe.EdgeShard]

    if TYPE_CHECKING:  # supplied by the store

        def resolve(self, name: str) -> str | None: ...
        def dimension(self, name: str) -> int | None: ...
        def _dir(self, collection: str) -> Path: ...
        def _open(self, name: str, required: bool = False) -> qe.EdgeShard | None: ...
        def _close_shard(self, name: str, record: bool = True) -> None: ...
        def _forget_changes(self, name: str) -> None: ...

    def optimize(self, collection: str) -> bool:
        """Index the collection's backlog (blocking), into segments of at most
        ``max_segment_points``; the only place this store builds an index."""
        name = self.resolve(collection)
        if name is None:
            return False
        self._apply_optimizers(name)
        shard = self._open(name, required=True)
        assert shard is not None
        built = shard.optimize()
        shard.flush()
        record_status(self._root, name, shard_status(shard))
        self._forget_changes(name)
        return built

    def needs_index(self, collection: str) -> bool:
        """Whether the collection's unindexed backlog has reached ``indexing_threshold_points``
        (never, when that is None)."""
        if self._threshold is None:
            return False
        points, indexed, _ = self.index_status(collection)
        return points - indexed >= self._threshold

    def index_status(self, collection: str) -> tuple[int, int, int]:
        """(points, indexed vectors, segments) of a collection: how much a search still scans."""
        shard = self._open(collection)
        if shard is None:
            return 0, 0, 0
        info = shard.info()
        return info.points_count, info.indexed_vectors_count, info.segments_count

    def _apply_optimizers(self, name: str) -> None:
        """Give a collection this store's optimizer settings before a build (collections made
        before the segment cap have none); reopens its shard only when they differ. Nothing
        else of the collection's config changes (an unspecified setting keeps the shard's)."""
        dimension = self.dimension(name)
        wanted = optimizers_config(self._threshold, self._max_segment, dimension or 0)
        if dimension is None or wanted is None:
            return
        persisted = json.loads((self._dir(name) / SHARD_CONFIG).read_text())
        have: dict[str, Any] = persisted.get("optimizers") or {}
        want = {
            "indexing_threshold": wanted.indexing_threshold,
            "max_segment_size": wanted.max_segment_size,
        }
        if all(have.get(k) == v for k, v in want.items() if v is not None):
            return
        if name in self._shards:
            self._close_shard(name)
        params = qe.EdgeVectorParams(size=dimension, distance=qe.Distance.Cosine)
        config = qe.EdgeConfig(vectors={"": params}, optimizers=wanted)
        self._shards[name] = qe.EdgeShard.load(str(self._dir(name)), config)
