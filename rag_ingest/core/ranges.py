"""Grouping partition keys into contiguous ranges, the unit a Dagster run can cover."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def contiguous_ranges(
    ordered_keys: Sequence[str], wanted: Iterable[str], max_per_range: int
) -> list[tuple[str, str, int]]:
    """Split ``wanted`` into runs of consecutive keys of ``ordered_keys``.

    A Dagster run covers a partition *range*; a range that spanned a key we did not want would
    re-process it, so ranges break at every gap and after ``max_per_range`` keys.

    Returns:
        (first_key, last_key, count) per range, in partition order. Wanted keys that are not in
        ``ordered_keys`` are ignored.
    """
    if max_per_range < 1:
        raise ValueError("max_per_range must be at least 1")
    wanted_set = set(wanted)
    ranges: list[tuple[str, str, int]] = []
    first: str | None = None
    last = ""
    count = 0
    for key in ordered_keys:
        if key in wanted_set and count < max_per_range:
            if first is None:
                first = key
            last = key
            count += 1
            continue
        if first is not None:
            ranges.append((first, last, count))
            first, count = None, 0
        if key in wanted_set:
            first, last, count = key, key, 1
    if first is not None:
        ranges.append((first, last, count))
    return ranges
