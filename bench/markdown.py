"""Markdown helpers of the benchmark reports."""

from __future__ import annotations


def f(x: float, digits: int = 2) -> str:
    return "n/a" if x != x else f"{x:,.{digits}f}"


def pct(part: float, whole: float) -> str:
    return f(100 * part / whole, 1) + "%" if whole else "n/a"


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return out + ["| " + " | ".join(r) + " |" for r in rows] + [""]
