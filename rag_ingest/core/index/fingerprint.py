"""The pipeline fingerprint: everything that decides which vectors a document gets.

Two vectors are comparable only if the same model weights, runtime and precision embedded the
same chunks. A document counts as ingested only for the target (Qdrant location + physical
collection) and fingerprint it was written under; a new fingerprint gets a collection of its own,
so vector spaces never mix.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

DIGEST_HEX = 12


@dataclass(frozen=True)
class Fingerprint:
    model: str
    """The model package and version (the pinned weights)."""
    vector_space: str
    """Runtime and precision, e.g. ``torch-fp32`` or ``onnx-fp32``."""
    dimension: int
    max_tokens: int
    overlap_tokens: int
    chunker_version: int

    @property
    def digest(self) -> str:
        raw = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(raw).hexdigest()[:DIGEST_HEX]

    def describe(self) -> str:
        return (
            f"{self.model} {self.vector_space} {self.dimension}-d, chunks ≤ {self.max_tokens} "
            f"tokens / {self.overlap_tokens} overlap, chunker v{self.chunker_version}"
        )

    def as_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, raw: str) -> Fingerprint:
        return cls(**json.loads(raw))


def physical_collection(alias: str, fingerprint: Fingerprint) -> str:
    """The collection a fingerprint's points live in; readers use ``alias``."""
    return f"{alias}__{fingerprint.digest}"
