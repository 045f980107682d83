"""The files between a run's steps: one Parquet file per asset and run, one row per document.

``runs/<run id>/<asset>.parquet`` holds every document the run processed, in key order: its
:class:`DocumentInfo` (as JSON), its key hash (so a later run can read just its shards), and its
payload — text blocks, chunks or vectors. Files are written and read as streams of row groups,
so a step's memory is bounded by a window of documents, not by the run. Dagster re-executions
share the root run id, so a retried step finds what the steps before it wrote.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from rag_ingest.core.documents.decode import replace_surrogates
from rag_ingest.core.documents.model import Block
from rag_ingest.core.keys import key_hash
from rag_ingest.core.records import DocumentInfo
from rag_ingest.core.storage.blobstore import BlobStore
from rag_ingest.core.text.chunking import Chunk

RUNS = "runs"
# A row group is closed at this many documents or bytes of payload, whichever comes first.
GROUP_DOCS = 256
GROUP_BYTES = 32 * 1024 * 1024
# Documents decoded at once when reading back (a document can be tens of megabytes of text).
READ_BATCH = 16

T = TypeVar("T")


def run_path(run_id: str, asset: str) -> str:
    return f"{RUNS}/{run_id}/{asset}.parquet"


def _arrow_type(annotation: Any) -> pa.DataType | None:
    """Arrow type of a plain field (int, str, float, bool, or optional of those)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        annotation = args[0]
    return {
        int: pa.int64(),
        str: pa.large_string(),
        float: pa.float64(),
        bool: pa.bool_(),
    }.get(annotation)


@dataclass(frozen=True)
class StructCodec(Generic[T]):
    """A dataclass ↔ Arrow struct mapping; fields of other types travel as JSON text."""

    cls: type[T]
    arrow: pa.StructType
    json_fields: frozenset[str]

    @classmethod
    def of(cls, klass: type[T]) -> StructCodec[T]:
        hints = typing.get_type_hints(klass)
        fields, as_json = [], set()
        for f in dataclasses.fields(klass):  # type: ignore[arg-type]
            arrow = _arrow_type(hints[f.name])
            if arrow is None:
                arrow, _ = pa.large_string(), as_json.add(f.name)
            fields.append(pa.field(f.name, arrow))
        return cls(klass, pa.struct(fields), frozenset(as_json))

    def encode(self, item: T) -> dict[str, Any]:
        row = {f.name: getattr(item, f.name) for f in dataclasses.fields(item)}  # type: ignore[arg-type]
        for name, value in row.items():
            if isinstance(value, str):
                # Arrow strings are UTF-8, which has no lone surrogates (some PDFs' font maps
                # produce them); U+FFFD keeps every length, so offsets stay true.
                row[name] = replace_surrogates(value)
        for name in self.json_fields:
            row[name] = json.dumps(row[name])
        return row

    def decode(self, row: dict[str, Any]) -> T:
        for name in self.json_fields:
            value = json.loads(row[name])
            row[name] = tuple(value) if isinstance(value, list) else value
        return self.cls(**row)


BLOCKS = StructCodec.of(Block)
CHUNKS = StructCodec.of(Chunk)


@dataclass
class DocumentRow:
    """One document of a run file. Exactly one payload is set, depending on the asset."""

    info: DocumentInfo
    blocks: list[Block] = dataclasses.field(default_factory=list)
    chunks: list[Chunk] = dataclasses.field(default_factory=list)
    vectors: np.ndarray | None = None


def _schema(payload: str) -> pa.Schema:
    columns = [
        pa.field("doc_id", pa.string()),
        pa.field("key_hash", pa.int32()),
        pa.field("info", pa.large_string()),
    ]
    if payload == "blocks":
        columns.append(pa.field("blocks", pa.large_list(BLOCKS.arrow)))
    elif payload == "chunks":
        columns.append(pa.field("chunks", pa.large_list(CHUNKS.arrow)))
    else:
        columns += [pa.field("dim", pa.int32()), pa.field("vectors", pa.large_list(pa.float32()))]
    return pa.schema(columns)


class RunFileWriter:
    """Streams document rows into a local Parquet file (``payload``: blocks, chunks, vectors).

    A document whose row cannot be encoded (text Arrow refuses, such as a lone surrogate) is
    stored as ``failed`` with the reason, without its payload: one document never fails a run.
    """

    def __init__(self, local_path: Any, payload: str) -> None:
        self.payload = payload
        self.schema = _schema(payload)
        # Float vectors do not compress; zstd on them only costs time.
        compression: Any = {"doc_id": "zstd", "key_hash": "zstd", "info": "zstd", payload: "zstd"}
        if payload == "vectors":
            compression |= {"dim": "zstd", "vectors": "none"}
        self._writer = pq.ParquetWriter(
            str(local_path),
            self.schema,
            compression=compression,
            use_dictionary=["doc_id"],  # type: ignore[arg-type]  # pyarrow accepts column names
        )
        self._pending: list[DocumentRow] = []
        self._bytes = 0
        self.documents = 0

    def add(self, row: DocumentRow) -> None:
        self._pending.append(row)
        self._bytes += _payload_size(row)
        self.documents += 1
        if len(self._pending) >= GROUP_DOCS or self._bytes >= GROUP_BYTES:
            self._flush()

    def _table(self, rows: list[DocumentRow]) -> pa.Table:
        columns: dict[str, Any] = {
            "doc_id": [r.info.doc_id for r in rows],
            "key_hash": [key_hash(r.info.doc_id) for r in rows],
            "info": [json.dumps(dataclasses.asdict(r.info)) for r in rows],
        }
        if self.payload == "blocks":
            columns["blocks"] = [[BLOCKS.encode(b) for b in r.blocks] for r in rows]
        elif self.payload == "chunks":
            columns["chunks"] = [[CHUNKS.encode(c) for c in r.chunks] for r in rows]
        else:
            matrices = [_matrix(r.vectors) for r in rows]
            columns["dim"] = [int(m.shape[1]) for m in matrices]
            offsets = np.cumsum([0, *(m.size for m in matrices)], dtype=np.int64)
            flat = np.concatenate([m.reshape(-1) for m in matrices])
            columns["vectors"] = pa.LargeListArray.from_arrays(
                pa.array(offsets, pa.int64()), pa.array(flat, pa.float32())
            )
        return pa.table(columns, schema=self.schema)

    def _flush(self) -> None:
        if not self._pending:
            return
        try:
            table = self._table(self._pending)
        except _ENCODING_ERRORS:
            table = pa.concat_tables([self._one(row) for row in self._pending])
        self._writer.write_table(table)
        self._pending, self._bytes = [], 0

    def _one(self, row: DocumentRow) -> pa.Table:
        """The row alone; if it cannot be encoded, the document recorded as failed."""
        try:
            return self._table([row])
        except _ENCODING_ERRORS as exc:
            row.info.status = "failed"
            row.info.reason = (
                f"could not store its intermediate record: {type(exc).__name__}: {exc}"
            )
            row.blocks, row.chunks, row.vectors = [], [], None
            return self._table([row])

    def close(self) -> None:
        self._flush()
        self._writer.close()


_ENCODING_ERRORS = (pa.ArrowException, UnicodeError, ValueError, TypeError)


def _payload_size(row: DocumentRow) -> int:
    if row.vectors is not None:
        return int(row.vectors.nbytes)
    return sum(len(b.text) for b in row.blocks) + sum(len(c.text) for c in row.chunks)


def _matrix(vectors: np.ndarray | None) -> np.ndarray:
    if vectors is None or vectors.size == 0:
        return np.zeros((0, 0), dtype=np.float32)
    return np.ascontiguousarray(vectors, dtype=np.float32)


def write_rows(store: BlobStore, path: str, payload: str, rows: Iterable[DocumentRow]) -> int:
    """Write ``rows`` to ``path`` in ``store`` atomically; returns the number of documents."""
    with store.writing(path) as local:
        writer = RunFileWriter(local, payload)
        try:
            for row in rows:
                writer.add(row)
        finally:
            writer.close()
    return writer.documents


def read_rows(
    store: BlobStore,
    path: str,
    hashes: Iterable[tuple[int, int]] | None = None,
    keep: Callable[[str], bool] | None = None,
) -> Iterator[DocumentRow]:
    """Document rows of a run file in written order; only those in the key-hash ranges (or
    whose doc id ``keep`` accepts) when given."""
    ranges = list(hashes) if hashes is not None else None
    with store.reading(path) as local:
        parquet = pq.ParquetFile(str(local))
        payload = parquet.schema_arrow.names[3]
        for batch in parquet.iter_batches(batch_size=READ_BATCH):
            doc_ids = batch.column("doc_id").to_pylist()
            key_hashes = batch.column("key_hash").to_pylist()
            infos = batch.column("info").to_pylist()
            items = _payloads(batch, payload)
            for i, doc_id in enumerate(doc_ids):
                if ranges is not None and not any(lo <= key_hashes[i] <= hi for lo, hi in ranges):
                    continue
                if keep is not None and not keep(doc_id):
                    continue
                row = DocumentRow(DocumentInfo(**json.loads(infos[i])))
                if payload == "blocks":
                    row.blocks = [BLOCKS.decode(b) for b in items[i]]
                elif payload == "chunks":
                    row.chunks = [CHUNKS.decode(c) for c in items[i]]
                else:
                    row.vectors = items[i]
                yield row


def _payloads(batch: pa.RecordBatch, payload: str) -> list[Any]:
    if payload != "dim":
        return batch.column(payload).to_pylist()
    # Vectors stay in numpy: one flat float32 array per batch, split per document.
    dims = batch.column("dim").to_pylist()
    column = batch.column("vectors")
    lengths = column.value_lengths().to_numpy(zero_copy_only=False)
    flat = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    out: list[np.ndarray] = []
    start = 0
    for dim, length in zip(dims, lengths, strict=True):
        part = flat[start : start + int(length)]
        start += int(length)
        out.append(part.reshape(-1, dim) if dim else np.zeros((0, 0), dtype=np.float32))
    return out
