"""Grouping a run's partitions into windows that are embedded and written together."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")


def windows(
    keys: Sequence[str], read: Callable[[str], T], size: Callable[[T], int], limit: int
) -> Iterator[list[tuple[str, T]]]:
    """Load partitions in order, grouped so that each group holds about ``limit`` chunks."""
    window: list[tuple[str, T]] = []
    total = 0
    for key in keys:
        item = read(key)
        window.append((key, item))
        total += size(item)
        if total >= limit:
            yield window
            window, total = [], 0
    if window:
        yield window


def affected_keys(
    window: Sequence[tuple[str, tuple[object, Sequence[object]]]],
    spans: Sequence[tuple[int, int]],
) -> list[str]:
    """Partition keys whose chunks fall in any failed (start, end) span of the window's texts."""
    affected, offset = [], 0
    for key, (_, doc_chunks) in window:
        start, end = offset, offset + len(doc_chunks)
        offset = end
        if any(a < end and start < b for a, b in spans):
            affected.append(key)
    return affected
