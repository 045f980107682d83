"""Collection health figures: sync with S3 and the registry, vector sanity, embedding drift.

Drift compares a sample of recently ingested vectors with a stored baseline sample: the cosine
distance between the two centroids (a topic or model change moves it) and the change in
spread, the mean cosine distance of vectors to their own centroid (a collapse or blow-up of the
embedding space changes it). Both are zero for identical distributions and small for two
samples of the same corpus.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

import numpy as np

UNIT_NORM_TOLERANCE = 1e-3


@dataclass(frozen=True)
class VectorSample:
    """Summary of a set of vectors: enough to compare later samples against it."""

    count: int
    dimension: int
    centroid: list[float]
    spread: float
    model: str
    created_at: str

    @classmethod
    def of(cls, vectors: np.ndarray, model: str, created_at: str) -> VectorSample:
        """Summarize ``vectors`` (rows); raises ValueError when there are none."""
        if vectors.ndim != 2 or len(vectors) == 0:
            raise ValueError("a vector sample needs at least one vector")
        unit = _normalize(vectors.astype(np.float64))
        centroid = unit.mean(axis=0)
        return cls(
            count=len(vectors),
            dimension=int(vectors.shape[1]),
            centroid=[float(x) for x in centroid],
            spread=_spread(unit, centroid),
            model=model,
            created_at=created_at,
        )

    def to_json(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_json(cls, data: bytes) -> VectorSample:
        return cls(**json.loads(data))


@dataclass(frozen=True)
class Drift:
    centroid_distance: float
    spread_change: float

    @property
    def score(self) -> float:
        """The figure compared with the threshold: the larger of the two movements."""
        return max(self.centroid_distance, abs(self.spread_change))


def _normalize(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)


def _spread(unit: np.ndarray, centroid: np.ndarray) -> float:
    norm = float(np.linalg.norm(centroid))
    if norm == 0:
        return 1.0
    return float(np.mean(1.0 - unit @ (centroid / norm)))


def drift(baseline: VectorSample, current: VectorSample) -> Drift:
    """How far ``current`` moved from ``baseline``.

    Raises:
        ValueError: the samples have different dimensions (another model).
    """
    if baseline.dimension != current.dimension:
        raise ValueError(
            f"baseline has {baseline.dimension} dims, current vectors {current.dimension}: "
            "the model changed; reset the baseline"
        )
    a, b = np.asarray(baseline.centroid), np.asarray(current.centroid)
    denom = float(np.linalg.norm(a) * np.linalg.norm(b))
    cosine = float(a @ b / denom) if denom else 0.0
    return Drift(
        centroid_distance=round(1.0 - cosine, 6),
        spread_change=round(current.spread - baseline.spread, 6),
    )


def norm_outliers(vectors: np.ndarray, tolerance: float = UNIT_NORM_TOLERANCE) -> int:
    """How many vectors are not unit length (or not finite)."""
    if len(vectors) == 0:
        return 0
    norms = np.linalg.norm(vectors.astype(np.float64), axis=1)
    return int(np.sum(~np.isfinite(norms) | (np.abs(norms - 1.0) > tolerance)))


@dataclass(frozen=True)
class SyncReport:
    """Qdrant's documents against what S3 holds and what the registry recorded."""

    points: int
    documents_in_collection: int
    chunks_recorded: int
    orphan_documents: list[str]
    orphan_points: int
    live_documents_missing: list[str]


def compare_sync(
    points_per_doc: Mapping[str, int],
    live_doc_ids: Iterable[str],
    recorded_chunks: Mapping[str, int],
) -> SyncReport:
    """Compare the collection with the live S3 objects and the registry.

    Args:
        points_per_doc: points in Qdrant per document id.
        live_doc_ids: documents whose S3 object exists now.
        recorded_chunks: chunk count the pipeline recorded per ingested ('ok') document.
    """
    live = set(live_doc_ids)
    orphans = sorted(d for d in points_per_doc if d not in live)
    missing = sorted(d for d in recorded_chunks if d in live and d not in points_per_doc)
    return SyncReport(
        points=sum(points_per_doc.values()),
        documents_in_collection=len(points_per_doc),
        chunks_recorded=sum(recorded_chunks.values()),
        orphan_documents=orphans,
        orphan_points=sum(points_per_doc[d] for d in orphans),
        live_documents_missing=missing,
    )
