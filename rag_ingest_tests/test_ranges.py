import pytest

from rag_ingest.core.ranges import contiguous_ranges

ORDER = [f"k{i}" for i in range(10)]


def test_ranges_break_at_gaps_and_at_the_cap() -> None:
    wanted = ["k0", "k1", "k2", "k3", "k5", "k6", "k9"]
    assert contiguous_ranges(ORDER, wanted, 3) == [
        ("k0", "k2", 3),
        ("k3", "k3", 1),
        ("k5", "k6", 2),
        ("k9", "k9", 1),
    ]


def test_every_wanted_key_is_covered_once_and_nothing_else() -> None:
    wanted = set(ORDER[2:9]) - {"k4"}
    covered: list[str] = []
    for first, last, count in contiguous_ranges(ORDER, wanted, 2):
        span = ORDER[ORDER.index(first) : ORDER.index(last) + 1]
        assert len(span) == count <= 2
        covered += span
    assert sorted(covered) == sorted(wanted)


def test_unknown_keys_are_ignored_and_cap_must_be_positive() -> None:
    assert contiguous_ranges(ORDER, ["zz"], 5) == []
    assert contiguous_ranges(ORDER, ORDER, 100) == [("k0", "k9", 10)]
    with pytest.raises(ValueError):
        contiguous_ranges(ORDER, ORDER, 0)
