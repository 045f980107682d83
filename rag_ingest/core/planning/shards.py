"""Key-space shards: the fixed partitions of the document set.

A document's place in the key space is its key hash (``keys.key_hash``: the first 16 bits of
sha256(bucket, key)). ``count`` shards (16, 256 or 4096) split that space into equal contiguous
ranges named by their leading hex digits (``"00"`` … ``"ff"`` for 256). The set never changes
with the corpus, so Dagster's partition status stays valid, UI backfills are plain partition
ranges, and a run over a contiguous range of shards covers a contiguous range of key hashes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass

from rag_ingest.core.keys import key_hash

KEY_HASH_BITS = 16
ALLOWED_COUNTS = (16, 256, 4096)
DEFAULT_SHARDS = 256


@dataclass(frozen=True)
class Shards:
    count: int = DEFAULT_SHARDS

    def __post_init__(self) -> None:
        if self.count not in ALLOWED_COUNTS:
            allowed = ", ".join(str(n) for n in ALLOWED_COUNTS)
            raise ValueError(f"shard count must be one of {allowed}, got {self.count}")

    @property
    def digits(self) -> int:
        return {16: 1, 256: 2, 4096: 3}[self.count]

    @property
    def width(self) -> int:
        """How many key-hash values one shard spans."""
        return (1 << KEY_HASH_BITS) // self.count

    def keys(self) -> list[str]:
        return [self.key(i) for i in range(self.count)]

    def key(self, index: int) -> str:
        return f"{index:0{self.digits}x}"

    def index(self, shard_key: str) -> int:
        value = int(shard_key, 16)
        if len(shard_key) != self.digits or not 0 <= value < self.count:
            raise ValueError(f"{shard_key!r} is not one of the {self.count} shard keys")
        return value

    def of(self, doc_id: str) -> str:
        """The shard holding a document id."""
        return self.key(key_hash(doc_id) // self.width)

    def index_of_hash(self, value: int) -> int:
        return value // self.width

    def hash_range(self, first: str, last: str | None = None) -> tuple[int, int]:
        """Inclusive key-hash range of the shards ``first`` … ``last``."""
        lo, hi = self.index(first), self.index(last if last is not None else first)
        if hi < lo:
            raise ValueError(f"shard range {first}..{last} is reversed")
        return lo * self.width, (hi + 1) * self.width - 1

    def span(self, first: str, last: str) -> list[str]:
        return [self.key(i) for i in range(self.index(first), self.index(last) + 1)]


@dataclass(frozen=True)
class RunRange:
    first: str
    last: str
    documents: int
    bytes: int = 0


def plan_ranges(
    shards: Shards,
    work: Mapping[int, int],
    max_documents: int,
    max_gap: int = 8,
    skip: Sequence[int] = (),
    sizes: Mapping[int, int] | None = None,
    max_bytes: int | None = None,
    edges: bool | Set[int] = False,
) -> list[RunRange]:
    """Group shards that have work into contiguous runs.

    A run is sized by its documents and by their bytes (the work extraction, chunking and
    embedding do grows with the bytes: one 64 MiB text is ~150,000 chunks), so a range of a
    few huge objects is not planned like a range of as many notes.

    Args:
        shards: the shard layout.
        work: documents to process per shard index (shards with 0 may be listed or not).
        max_documents: a run stops growing once it holds this many documents (a single shard
            with more is still one run: a shard is never split).
        max_gap: idle shards a run may bridge to reach the next shard with work. Each run has
            a fixed cost (process start, model load), each idle shard only a few
            bookkeeping events, so short gaps are cheaper to cross than to split at.
        skip: shard indexes a run must not cover (e.g. held by a run still in flight).
        sizes: bytes to process per shard index (missing: 0).
        max_bytes: a run stops growing once it holds this many bytes; a shard over it (one
            huge document, say) is a run of its own. ``None``: documents alone decide.
        edges: also cover the idle shards before the first range and after the last when
            those gaps are bridgeable too (at most ``max_gap``, none skipped), so a run over a
            sparsely filled key space materializes every shard, empty ones as empty. A set:
            only when one of those idle shards is in it (shards never materialized: once each
            is, a change costs only its own shard's run again).

    Returns:
        Ranges in key order, each starting and ending at a shard with work (or at an edge of
        the key space, with ``edges``).
    """
    if max_documents < 1:
        raise ValueError("max_documents must be at least 1")
    if max_bytes is not None and max_bytes < 1:
        raise ValueError("max_bytes must be at least 1")
    sizes = sizes or {}
    byte_cap = max_bytes if max_bytes is not None else float("inf")
    blocked = set(skip)
    ranges: list[RunRange] = []
    first = last = -1
    docs = size = gap = 0

    def close() -> None:
        nonlocal first, docs, size
        if first >= 0:
            ranges.append(RunRange(shards.key(first), shards.key(last), docs, size))
        first, docs, size = -1, 0, 0

    for i in range(shards.count):
        n = work.get(i, 0)
        b = max(0, sizes.get(i, 0))
        if i in blocked:
            close()
            continue
        if n <= 0:
            gap += 1
            if first >= 0 and gap > max_gap:
                close()
            continue
        if first >= 0 and (docs + n > max_documents or size + b > byte_cap):
            close()
        if first < 0:
            first = i
        last, docs, size, gap = i, docs + n, size + b, 0
    close()
    if edges is not False and ranges:
        wanted = None if edges is True else edges
        ranges[0] = _to_edge(shards, ranges[0], 0, max_gap, blocked, wanted)
        ranges[-1] = _to_edge(shards, ranges[-1], shards.count - 1, max_gap, blocked, wanted)
    return ranges


def _to_edge(
    shards: Shards,
    run: RunRange,
    edge: int,
    max_gap: int,
    blocked: set[int],
    wanted: Set[int] | None,
) -> RunRange:
    lo, hi = shards.index(run.first), shards.index(run.last)
    idle = range(edge, lo) if edge < lo else range(hi + 1, edge + 1)
    if not idle or len(idle) > max_gap or blocked.intersection(idle):
        return run
    if wanted is not None and wanted.isdisjoint(idle):
        return run
    lo, hi = min(lo, edge), max(hi, edge)
    return RunRange(shards.key(lo), shards.key(hi), run.documents, run.bytes)
