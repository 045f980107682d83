"""The pipeline fingerprint: everything that decides which vectors a document gets.

Two vectors are comparable only if the same model weights, runtime and precision embedded the
same chunks. A document counts as ingested only for the target (Qdrant location + physical
collection) and fingerprint it was written under; a new fingerprint gets a collection of its own,
so vector spaces never mix.

The model is its name and pinned revision (hub commit, package version, or a folder's weights
hash) with its prompts; the sparse vector is its name and the BM25 encoder's identity. Fields
added since the first version (the prompts, the sparse vector) leave the digest of a fingerprint
that does not use them unchanged, so an upgrade keeps existing collections; turning the sparse
vector on makes a new version.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from rag_ingest.core.text.model import ModelSpec
from rag_ingest.core.text.sparse import encoder_id

DIGEST_HEX = 12
# Fields whose default is left out of the digest (see the module docstring).
_OPTIONAL = ("query_prompt", "document_prompt", "sparse_vector", "sparse_encoder")


@dataclass(frozen=True)
class Fingerprint:
    model: str
    """The model and its pinned weights (``ModelSpec.label``)."""
    vector_space: str
    """Runtime and precision, e.g. ``torch-fp32`` or ``onnx-fp32``."""
    dimension: int
    max_tokens: int
    overlap_tokens: int
    chunker_version: int
    query_prompt: str = ""
    document_prompt: str = ""
    sparse_vector: str = ""
    """The BM25 sparse vector's name ("": none)."""
    sparse_encoder: str = ""
    """What decides its tokens and weights (``core.text.sparse.encoder_id``)."""

    def _fields(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k not in _OPTIONAL or v}

    @property
    def digest(self) -> str:
        raw = json.dumps(self._fields(), sort_keys=True).encode()
        return hashlib.sha256(raw).hexdigest()[:DIGEST_HEX]

    def describe(self) -> str:
        prompts = "".join(
            f", {name} prompt {value!r}"
            for name, value in (("query", self.query_prompt), ("document", self.document_prompt))
            if value
        )
        if self.sparse_vector:
            prompts += f", BM25 sparse vector {self.sparse_vector!r}"
        return (
            f"{self.model} {self.vector_space} {self.dimension}-d, chunks ≤ {self.max_tokens} "
            f"tokens / {self.overlap_tokens} overlap, chunker v{self.chunker_version}{prompts}"
        )

    def as_json(self) -> str:
        return json.dumps(self._fields(), sort_keys=True)

    @classmethod
    def from_json(cls, raw: str) -> Fingerprint:
        return cls(**json.loads(raw))


def pipeline_fingerprint(
    spec: ModelSpec,
    vector_space: str,
    max_tokens: int,
    overlap_tokens: int,
    chunker_version: int,
    sparse_vector: str = "",
) -> Fingerprint:
    """The fingerprint of ``spec``'s vectors in ``vector_space`` over these chunks, with a BM25
    sparse vector named ``sparse_vector`` unless it is empty."""
    return Fingerprint(
        model=spec.label,
        vector_space=vector_space,
        dimension=spec.dimension,
        max_tokens=max_tokens,
        overlap_tokens=overlap_tokens,
        chunker_version=chunker_version,
        query_prompt=spec.query_prompt,
        document_prompt=spec.document_prompt,
        sparse_vector=sparse_vector,
        sparse_encoder=encoder_id() if sparse_vector else "",
    )


def embedding_identity(fingerprint: Fingerprint) -> str:
    """What decides a chunk's vector given its text: model and weights, runtime and precision,
    dimension and document prompt (the query prompt and chunking do not change a chunk's
    vector). Equal identities embed equal texts to the same vectors: a cache of chunk vectors
    keys on it."""
    identity = {
        "model": fingerprint.model,
        "vector_space": fingerprint.vector_space,
        "dimension": fingerprint.dimension,
        "document_prompt": fingerprint.document_prompt,
    }
    return json.dumps(identity, sort_keys=True)


def physical_collection(alias: str, fingerprint: Fingerprint) -> str:
    """The collection a fingerprint's points live in; readers use ``alias``."""
    return f"{alias}__{fingerprint.digest}"
