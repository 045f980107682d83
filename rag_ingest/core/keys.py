"""Identifiers: S3 object → document id, chunk → Qdrant point id.

The document id scheme (see docs/architecture.md):

    <slug>~<hash16>

* ``hash16`` is the first 16 hex digits of SHA-256 over ``bucket + "\\0" + key``: it alone makes
  the key unique (64 bits; ~3e-10 collision odds at 100k documents) and deterministic.
* ``slug`` is a readable tail of the S3 key, reduced to ``[A-Za-z0-9._-]``, with runs of dots
  collapsed (no ``..``) and cut so the whole id stays short: ids appear in every point's
  payload, in per-shard metadata tables and in run logs.

The id never contains ``/``, spaces, commas or brackets, so it is safe in the Dagster UI, in
URLs and as a file name. The real bucket and key are kept in the registry and in metadata.
(Documents were once Dagster partitions, hence the function's name; partitions are key-space
shards now, see :mod:`rag_ingest.core.planning.shards`.)
"""

from __future__ import annotations

import hashlib
import re
import uuid

MAX_DOCUMENT_ID_LENGTH = 64
_HASH_HEX = 16
_SLUG_MAX = MAX_DOCUMENT_ID_LENGTH - _HASH_HEX - 1
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_DOTS = re.compile(r"\.{2,}")
_DASHES = re.compile(r"-{2,}")
DOCUMENT_ID_PATTERN = re.compile(r"^(?:[A-Za-z0-9_-][A-Za-z0-9._-]{0,46}~)?[0-9a-f]{16}$")

# A fixed namespace so point ids are the same on every machine and every run.
POINT_NAMESPACE = uuid.UUID("6f1d3c52-8a0e-5b7d-9c41-2e5f7a9b0c13")


def source_uri(bucket: str, key: str) -> str:
    """The document's canonical source, as stored in ``metadata.source``."""
    return f"s3://{bucket}/{key}"


def _slug(key: str) -> str:
    slug = _UNSAFE.sub("-", key.replace("/", "-"))
    slug = _DASHES.sub("-", _DOTS.sub(".", slug))
    # Keep the tail: the file name is the most telling part of a long key.
    slug = slug[-_SLUG_MAX:]
    return slug.strip(".-")


def document_id(bucket: str, key: str) -> str:
    """The document id for an S3 object.

    Args:
        bucket: S3 bucket name.
        key: S3 object key, exactly as listed (any bytes S3 allows).

    Returns:
        A key matching :data:`DOCUMENT_ID_PATTERN`, at most 64 characters.
    """
    digest = hashlib.sha256(f"{bucket}\0{key}".encode()).hexdigest()[:_HASH_HEX]
    slug = _slug(key)
    return f"{slug}~{digest}" if slug else digest


NUL_KEY_REASON = "key contains NUL, which PostgreSQL cannot store"


def storable_key(key: str) -> str:
    """The key as the registry stores it: S3 allows NUL in keys, PostgreSQL text does not, so
    each NUL is written as the four characters ``\\x00`` (on every database, so SQLite and
    PostgreSQL agree). The document id is still :func:`document_id` of the real key, which
    is how such a row is recognized (:func:`key_is_stored_as_is`)."""
    return key.replace("\0", "\\x00") if "\0" in key else key


def key_is_stored_as_is(bucket: str, key: str, doc_id: str) -> bool:
    """Whether a registry row's ``key`` is the object's real key (not an escaped one)."""
    return "\\x00" not in key or document_id(bucket, key) == doc_id


def doc_hash(doc_id: str) -> str:
    """The 16 hex digits of a document id's key hash (its last 16 characters)."""
    return doc_id[-_HASH_HEX:]


def key_hash(doc_id: str) -> int:
    """The first 16 bits of a document's key hash, 0..65535: where it sits in the key space.

    Shards are contiguous ranges of this number, and the vector store indexes it, so one shard's
    points can be counted and scanned without knowing its documents.
    """
    return int(doc_hash(doc_id)[:4], 16)


def is_document_id(value: str) -> bool:
    """Whether ``value`` has the shape of a key made by :func:`document_id`."""
    return bool(DOCUMENT_ID_PATTERN.match(value))


def point_id(doc_id: str, etag: str, chunk_index: int) -> str:
    """Deterministic Qdrant point id for one chunk of one version of a document.

    The ETag is part of the id, so a new version's points never overwrite the old version's in
    place: the new set is written first and the old set is then removed, which keeps a document
    whole for readers during a re-ingest.
    """
    return str(uuid.uuid5(POINT_NAMESPACE, f"{doc_id}\0{etag}\0{chunk_index}"))
