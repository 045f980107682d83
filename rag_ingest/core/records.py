"""The per-partition files between assets, as Parquet: inspectable with any Parquet reader.

Each file holds one document: rows are its blocks, chunks or vectors; the document's own fields
(:class:`DocumentInfo`) ride in the file's key-value metadata under ``rag_ingest``.
"""

from __future__ import annotations

import dataclasses
import io
import json
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from rag_ingest.core.chunking import Chunk
from rag_ingest.core.decode import replace_surrogates
from rag_ingest.core.extract import Block

_META_KEY = b"rag_ingest"


@dataclass
class DocumentInfo:
    """One document version and what happened to it so far."""

    doc_id: str
    bucket: str
    key: str
    etag: str
    size: int
    last_modified: str
    status: str = "ok"
    reason: str | None = None
    content_type: str | None = None
    format: str | None = None
    title: str | None = None
    pages: int | None = None
    compressed: bool = False

    @property
    def source(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


_BLOCKS = pa.schema(
    [
        ("text", pa.large_string()),
        ("start", pa.int64()),
        ("page", pa.int32()),
        ("heading", pa.string()),
    ]
)
_CHUNKS = pa.schema(
    [
        ("chunk_index", pa.int32()),
        ("text", pa.large_string()),
        ("char_start", pa.int64()),
        ("char_end", pa.int64()),
        ("token_count", pa.int32()),
        ("page", pa.int32()),
        ("heading", pa.string()),
    ]
)


def _dump(table: pa.Table, info: DocumentInfo) -> bytes:
    meta = dict(table.schema.metadata or {})
    meta[_META_KEY] = json.dumps(dataclasses.asdict(info)).encode()
    sink = io.BytesIO()
    pq.write_table(table.replace_schema_metadata(meta), sink, compression="zstd")
    return sink.getvalue()


def _load(data: bytes) -> tuple[pa.Table, DocumentInfo]:
    table = pq.read_table(io.BytesIO(data))
    raw = (table.schema.metadata or {}).get(_META_KEY)
    if raw is None:
        raise ValueError("not a rag_ingest file: no document metadata")
    return table, DocumentInfo(**json.loads(raw))


def _clean(text: str | None) -> str | None:
    # Arrow strings are UTF-8, which has no lone surrogates (some PDFs' font maps produce
    # them); U+FFFD keeps every length, so offsets stay valid. Extraction already does this.
    return None if text is None else replace_surrogates(text)


def dump_blocks(info: DocumentInfo, blocks: list[Block]) -> bytes:
    rows = [
        {"text": _clean(b.text), "start": b.start, "page": b.page, "heading": _clean(b.heading)}
        for b in blocks
    ]
    return _dump(pa.Table.from_pylist(rows, schema=_BLOCKS), info)


def load_blocks(data: bytes) -> tuple[DocumentInfo, list[Block]]:
    table, info = _load(data)
    return info, [Block(**row) for row in table.to_pylist()]


def dump_chunks(info: DocumentInfo, chunks: list[Chunk]) -> bytes:
    rows = [
        {
            "chunk_index": c.index,
            "text": _clean(c.text),
            "char_start": c.char_start,
            "char_end": c.char_end,
            "token_count": c.token_count,
            "page": c.page,
            "heading": _clean(c.heading),
        }
        for c in chunks
    ]
    return _dump(pa.Table.from_pylist(rows, schema=_CHUNKS), info)


def load_chunks(data: bytes) -> tuple[DocumentInfo, list[Chunk]]:
    table, info = _load(data)
    chunks = [
        Chunk(
            index=row["chunk_index"],
            text=row["text"],
            char_start=row["char_start"],
            char_end=row["char_end"],
            token_count=row["token_count"],
            page=row["page"],
            heading=row["heading"],
        )
        for row in table.to_pylist()
    ]
    return info, chunks


def dump_vectors(info: DocumentInfo, vectors: np.ndarray) -> bytes:
    """``vectors`` is ``(n_chunks, dim)`` float32, row i for chunk i."""
    dim = int(vectors.shape[1]) if vectors.ndim == 2 else 0
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1), pa.float32())
    column = (
        pa.FixedSizeListArray.from_arrays(flat, dim)
        if dim
        else pa.array([], pa.list_(pa.float32(), 1))
    )
    table = pa.table({"chunk_index": pa.array(range(len(vectors)), pa.int32()), "vector": column})
    return _dump(table, info)


def load_vectors(data: bytes) -> tuple[DocumentInfo, np.ndarray]:
    table, info = _load(data)
    column = table.column("vector").combine_chunks()
    if len(column) == 0:
        return info, np.zeros((0, 0), dtype=np.float32)
    dim = column.type.list_size
    flat = column.flatten().to_numpy(zero_copy_only=False)
    return info, flat.astype(np.float32, copy=False).reshape(len(column), dim)
