"""Smoke run of the benchmark harness (``python -m bench.run``) on a tiny corpus.

Checks that one invocation runs every scenario and writes the report with each scenario's row
and counts that match the corpus; no timing assertions (the machine is shared).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench import llamaindex_peer
from bench.run import main

DOCS = 6
SENSOR_KEYS = 500


def _row(report: str, label: str) -> list[str]:
    for line in report.splitlines():
        if line.startswith(f"| {label}"):
            return [cell.strip() for cell in line.strip("|").split("|")]
    raise AssertionError(f"no row starting with {label!r} in the report")


def _number(cell: str) -> float:
    return float(cell.replace(",", "").rstrip("%"))


@pytest.mark.timeout(600)
def test_bench_smoke(tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    # Without the peer installed the harness skips only its scenario, and says so.
    peer_missing = not llamaindex_peer.available()
    argv = ["--docs", str(DOCS), "--repeats", "1", "--seed-subset", "2"]
    argv += ["--sensor-keys", str(SENSOR_KEYS), "--sensor-submit-runs", "1", "--out", str(out)]
    argv += ["--partitions-per-run", "4", "--metadata-registered", "50"]
    assert main(argv) == 0
    report = out.read_text()

    for label in (
        "rag-ingest cold",
        "embedding-only floor",
        "re-ingest, nothing changed",
        "re-ingest, 1 object(s) changed",
        "seed approach, EXTRAPOLATED from 2 docs",
    ):
        wall = _number(_row(report, label)[1])
        assert wall >= 0 and wall == wall, (label, wall)
    if peer_missing:
        assert "LlamaIndex: not installed" in report
        assert "| LlamaIndex IngestionPipeline" not in report
    else:
        for variant in ("defaults", "fitted chunks"):
            label = f"LlamaIndex IngestionPipeline ({variant})"
            assert _number(_row(report, label)[1]) > 0
            assert re.search(rf"{re.escape(label)}: \d+ LlamaIndex documents", report)

    assert f"- {DOCS} documents (corpus seed" in report
    counts = re.search(r"(\d+) documents, (\d+) ok, (\d+) chunks", report)
    assert counts and int(counts[1]) == DOCS and int(counts[2]) == DOCS and int(counts[3]) > 0
    assert f"Embedding-only floor over {counts[3]} texts" in report
    assert "1% changed: 1 run(s), 1 document(s)" in report
    # 6 documents at 4 per run: the sensor asks for two runs, and so does the Dagster floor.
    assert "Cold ingest (last repeat): 2 run(s)" in report
    floor = _row(report, f"4 no-op assets, {DOCS} partitions in 2 range run(s)")
    assert _number(floor[1]) > 0 and _number(floor[2]) > 0
    subset = _row(report, "… the same with DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS=true")
    assert _number(subset[1]) > 0
    public = _row(report, "per-partition metadata, 1 asset, 4 partitions, 50 registered")
    collector = _row(report, "… the same with rag_ingest.partition_metadata")
    assert _number(public[1]) > 0 and _number(collector[1]) > 0
    assert "Re-ingest unchanged: 0 run(s)" in report

    assert f"first tick: registers all {SENSOR_KEYS:,}" in report
    # One sampled submission each way (--sensor-submit-runs 1), the rest extrapolated.
    assert _number(_row(report, "create + submit (queue) 1 run(s)")[1]) > 0
    assert _number(_row(report, "create + submit 1 further run(s), one planned event")[1]) > 0
    assert f"sensor tick, {SENSOR_KEYS:,} keys (steady): peak RSS MB" in report
    for target in ("cold wall / embedding-only", "re-ingest unchanged / cold"):
        assert re.search(
            rf"\| {re.escape(target)} \| [\d.,%]+ \| .+ \| \*\*(met|missed)\*\* \|", report
        )
