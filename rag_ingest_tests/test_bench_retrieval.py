"""The retrieval benchmark (``python -m bench.retrieval``) end to end on a few documents.

Checks that one invocation builds the corpus and both query sets, ingests through the project's
own path, queries every mode and fusion variant, and writes the report whose counts agree with
each other; no timing assertions (the machine is shared).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.retrieval import VARIANTS, main
from bench.retrieval_corpus import derive_queries, installed_docs

DOCS = 5


def _rows(report: str, first: str) -> dict[str, list[str]]:
    """The rows of the table whose header starts with ``first``, by their first cell."""
    lines = report.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first} |"))
    rows: dict[str, list[str]] = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_bench_retrieval_writes_its_report(tmp_path: Path) -> None:
    docs = installed_docs(DOCS)
    nl, keyword = derive_queries(docs)
    assert len(docs) == DOCS and nl and keyword
    # Every keyword occurs in its own document and in no other one.
    for query in keyword:
        holders = [d.key for d in docs if query.text.lower() in d.body.lower()]
        assert holders == [query.key], query

    out = tmp_path / "retrieval.md"
    assert main(["--docs", str(DOCS), "--repeats", "2", "--out", str(out)]) == 0
    report = out.read_text()
    assert f"{DOCS} documents" in report
    assert "identical ranks in every pass" in report

    quality = _rows(report, "query set")
    assert int(quality["natural language"][0]) == len(nl)
    assert int(quality["keyword"][0]) == len(keyword)
    assert int(quality["mixed"][0]) == len(nl) + len(keyword)
    for cells in quality.values():
        scores = [float(c.strip("*")) for c in cells[1:]]
        assert all(0.0 <= s <= 1.0 for s in scores), cells
    # An identifier found in one document only: BM25 ranks a chunk of it in the top 10.
    assert float(quality["keyword"][2]) >= 0.8

    assert set(_rows(report, "fusion")) == {v.label for v in VARIANTS}
    assert len(_rows(report, "bar (recall@10)")) == 3
    cost = _rows(report, "ingest cost")
    assert float(cost["encode, ms per document"][1]) > 0
    assert cost["vector bytes per point (dense f32; sparse u32 index + f32 weight)"][0] == "1,536"
