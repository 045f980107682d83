"""Streaming helpers: windows of documents, a bounded, order-keeping parallel map, and a
time budget that stops handing out work."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def windows(items: Iterable[T], size: Callable[[T], int], limit: int) -> Iterator[list[T]]:
    """Group items in order so that each group holds about ``limit`` units (e.g. chunks)."""
    window: list[T] = []
    total = 0
    for item in items:
        window.append(item)
        total += size(item)
        if total >= limit:
            yield window
            window, total = [], 0
    if window:
        yield window


def affected(sizes: Sequence[int], spans: Sequence[tuple[int, int]]) -> list[int]:
    """Indexes of the items (each ``sizes[i]`` texts long, laid end to end) that overlap any
    failed (start, end) span of texts."""
    hit, offset = [], 0
    for i, n in enumerate(sizes):
        start, end = offset, offset + n
        offset = end
        if any(a < end and start < b for a, b in spans):
            hit.append(i)
    return hit


def ordered_map(
    fn: Callable[[T], R], items: Iterable[T], workers: int, window: int | None = None
) -> Iterator[R]:
    """``fn`` over ``items`` on ``workers`` threads, results in input order, with at most
    ``window`` items in flight (``ThreadPoolExecutor.map`` would submit every item at once)."""
    window = window or workers * 2
    with ThreadPoolExecutor(max_workers=workers) as pool:
        queue: deque[Future[R]] = deque()
        for item in items:
            queue.append(pool.submit(fn, item))
            if len(queue) >= window:
                yield queue.popleft().result()
        while queue:
            yield queue.popleft().result()


class Budget(Generic[T]):
    """Hands out items until ``seconds`` have passed since it was made, then holds the rest
    back (:attr:`held`): a run stops taking documents in time instead of
    running past its deployment's limit and being killed, retried and requested again.

    At least one costly item is always handed out, so every run makes progress however slow
    its first document. Items ``free`` says cost nothing (deletions) are always handed out.
    Items are taken lazily: a consumer that pulls ahead (``ordered_map``) is checked at each
    pull, so what is in flight when the budget runs out still finishes.
    """

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds, self.clock = seconds, clock
        self.started = clock()
        self.taken = 0
        self.held: list[T] = []

    @property
    def deferred(self) -> int:
        return len(self.held)

    @property
    def spent(self) -> bool:
        return self.clock() - self.started >= self.seconds

    def take(self, items: Iterable[T], free: Callable[[T], bool] = lambda _: False) -> Iterator[T]:
        for item in items:
            if free(item):
                yield item
            elif self.taken and self.spent:
                self.held.append(item)
            else:
                self.taken += 1
                yield item
