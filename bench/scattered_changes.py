"""Scattered changes to a small-corpus bucket, and whether the vector store shows them.

A batch of ``n`` changes is modified, deleted and added objects in turn, each aimed at its own
evenly spaced place in the key space (shard ``(j + ½)·count/n``), so a batch covers the whole
key space as sparsely as it can: the case where grouping runs by contiguous shard ranges has
the most idle shards to bridge.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .corpus import CONTENT_TYPES, SMALL_PREFIX, CorpusDoc, make_small_document, small_key

Kind = Literal["modify", "delete", "add"]
KINDS: tuple[Kind, ...] = ("modify", "delete", "add")
# Bodies of modified and added objects come from a corpus of another seed: new prose.
_BODY_SEED_OFFSET = 1_000


@dataclass(frozen=True)
class Change:
    kind: Kind
    key: str
    doc_id: str
    shard: str
    etag: str = ""  # of the object written (modify, add); empty for a delete


class ChangeMaker:
    """Plans and applies scattered changes to the bucket of the small corpus ``seed``/``docs``;
    remembers which objects it already touched, so no two batches change the same one."""

    def __init__(
        self,
        client: Any,
        bucket: str,
        seed: int,
        docs: int,
        layout: Any,
        exclude: Iterable[str] = (),
    ) -> None:
        """``exclude``: keys of the corpus never to change (changed by an earlier maker)."""
        from rag_ingest.core.keys import document_id

        self.client, self.bucket, self.seed, self.layout = client, bucket, seed, layout
        self._doc_id = lambda key: document_id(bucket, key)
        self.by_shard: dict[int, list[int]] = {}
        for i in range(docs):
            shard = layout.index(layout.of(self._doc_id(small_key(seed, i))))
            self.by_shard.setdefault(shard, []).append(i)
        skip = set(exclude)
        self.touched: set[int] = {i for i in range(docs) if small_key(seed, i) in skip}
        self.batches = 0
        self._bodies = self._fresh_bodies()

    def _fresh_bodies(self) -> Iterator[CorpusDoc]:
        j = 0
        while True:
            yield make_small_document(self.seed + _BODY_SEED_OFFSET, j)
            j += 1

    def _body(self, fmt: str | None = None) -> CorpusDoc:
        for doc in self._bodies:
            if fmt is None or doc.fmt == fmt:
                return doc
        raise AssertionError("unreachable: the body generator never ends")

    def targets(self, n: int) -> list[int]:
        count = self.layout.count
        return [min(count - 1, int((j + 0.5) * count / n)) for j in range(n)]

    def _existing(self, shard: int) -> int:
        """An untouched corpus object in ``shard``, else in the nearest shard that has one."""
        count = self.layout.count
        for distance in range(count):
            for candidate in (shard + distance, shard - distance):
                free = [
                    i for i in self.by_shard.get(candidate % count, []) if i not in self.touched
                ]
                if free:
                    self.touched.add(free[0])
                    return free[0]
        raise ValueError("every object of the corpus was already changed")

    def _new_key(self, shard: int, fmt: str) -> str:
        """A key not in the corpus whose document lands in ``shard``."""
        for attempt in range(1_000_000):
            key = f"{SMALL_PREFIX}added/{self.batches:03d}-{shard:04x}-{attempt}.{fmt}"
            if self.layout.index(self.layout.of(self._doc_id(key))) == shard:
                return key
        raise AssertionError(f"no key found for shard {shard}")

    def apply(self, n: int) -> list[Change]:
        """Make ``n`` changes (modify, delete, add in turn) over the key space, through S3."""
        changes: list[Change] = []
        for j, shard in enumerate(self.targets(n)):
            kind = KINDS[j % len(KINDS)]
            if kind == "add":
                body = self._body()
                key = self._new_key(shard, body.fmt)
                changes.append(self._put(kind, key, body))
                continue
            index = self._existing(shard)
            key = small_key(self.seed, index)
            if kind == "delete":
                self.client.delete_object(Bucket=self.bucket, Key=key)
                changes.append(
                    Change(kind, key, self._doc_id(key), self.layout.of(self._doc_id(key)))
                )
            else:
                changes.append(self._put(kind, key, self._body(key.rsplit(".", 1)[1])))
        self.batches += 1
        return changes

    def _put(self, kind: Kind, key: str, body: CorpusDoc) -> Change:
        response = self.client.put_object(
            Bucket=self.bucket, Key=key, Body=body.body, ContentType=CONTENT_TYPES[body.fmt]
        )
        doc_id = self._doc_id(key)
        etag = str(response["ETag"]).strip('"')
        return Change(kind, key, doc_id, self.layout.of(doc_id), etag)


def pending(store: Any, collection: str, changes: Sequence[Change]) -> list[Change]:
    """The changes the collection does not show yet (a point lookup by document id): a
    modified or added object must be there at exactly its new version, a deleted one absent."""
    found = store.versions_per_document(collection, [c.doc_id for c in changes])
    missing = []
    for change in changes:
        versions = found.get(change.doc_id, {})
        if change.kind == "delete":
            if versions:
                missing.append(change)
        elif set(versions) != {change.etag}:
            missing.append(change)
    return missing
