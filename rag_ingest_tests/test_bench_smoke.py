"""Smoke run of the benchmark harness (``python -m bench.run``) on a tiny corpus.

Checks that one invocation runs every scenario and writes the report with each scenario's row
and counts that match the corpus; no timing assertions (the machine is shared).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench.run import main

DOCS = 30
PER_RUN = 10
BURST_KEYS = 300
CPU_DOCS = 4


def _row(report: str, label: str) -> list[str]:
    for line in report.splitlines():
        if line.startswith(f"| {label}"):
            return [cell.strip() for cell in line.strip("|").split("|")]
    raise AssertionError(f"no row starting with {label!r} in the report")


def _number(cell: str) -> float:
    return float(cell.replace(",", "").replace("*", "").split()[0].rstrip("%"))


def _has_browser() -> bool:
    from rag_ingest.testing.browser import CHROMEDRIVER, CHROMIUM

    try:
        import selenium  # noqa: F401
    except ImportError:
        return False
    return CHROMIUM.exists() and CHROMEDRIVER.exists()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_bench_smoke(tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    # 16 shards: a handful of runs (256 would give a run per few documents at this size).
    argv = ["--docs", str(DOCS), "--documents-per-run", str(PER_RUN), "--repeats", "1"]
    argv += ["--shards", "16"]
    argv += ["--burst-keys", str(BURST_KEYS), "--cpu-docs", str(CPU_DOCS)]
    argv += [
        "--launch-sample",
        "1",
        "--floor-shards",
        "1,16",
        "--no-cost-full-run",
        "--out",
        str(out),
    ]
    # The UI scenario needs the system Chromium, its driver and selenium (as the UI test).
    ui = _has_browser()
    argv += ["--ui-loads", "1"] if ui else ["--skip", "ui"]
    assert main(argv) == 0
    report = out.read_text()

    # GPU-speed: every document ingested, as many points as the registry's chunks.
    counts = re.search(
        r"gpu-speed counts: (\d+) documents, (\d+) ok, (\d+) chunks, (\d+) points", report
    )
    assert counts, report
    assert int(counts[1]) == int(counts[2]) == DOCS
    assert int(counts[3]) == int(counts[4]) > 0
    assert "work left 0" in report
    assert "the tick that found nothing left to do took" in report  # timed, outside the wall
    end_to_end = _row(report, f"gpu-speed end to end ({DOCS} documents)")
    assert _number(end_to_end[1]) == DOCS and _number(end_to_end[3]) > 0
    assert _number(_row(report, "bare GET loop")[1]) == DOCS
    for stage in (
        "listing tick(s)",
        "S3 GET + extract",
        "chunk",
        "embed",
        "vector store write",
        "Dagster bookkeeping",
    ):
        assert _number(_row(report, stage)[1]) >= 0
    assert "EXTRAPOLATED" in report and "ASSUMPTION" in report

    # Run creation and floors, with and without the planned-events env.
    for env in ("unset", "true"):
        created = _row(report, f"run creation, sqlite, subset env={env}")
        assert _number(created[1]) >= 1 and _number(created[2]) > 0
        floor = _row(report, f"floor, sqlite, subset env={env}")
        assert _number(floor[2]) > 0

    # Burst: every key listed, registered and in a requested run, in one tick.
    burst = _row(report, "burst tick (file listing)")
    assert _number(burst[1]) == _number(burst[2]) == BURST_KEYS
    assert _row(report, "burst keys with runs requested in the first tick")[1] == f"{BURST_KEYS:,}"

    cpu = _row(report, f"cpu cold pipeline, {CPU_DOCS} documents")
    floor_texts = _row(report, "embedding-only, same texts")
    assert _number(cpu[1]) == _number(floor_texts[1]) > 0

    if ui:
        for page in ("UI asset graph", "UI qdrant_collection partitions"):
            row = _row(report, page)
            assert row[1].endswith(" / 16") and _number(row[3]) > 0, row
        assert re.search(r"\| UI: asset graph .* \| \*\*(met|missed)\*\* \|", report)
    else:
        assert "Skipped in this invocation." in report

    for target in (
        "documents/s end to end",
        "Dagster share of wall",
        "burst tick's own work",
        "CPU: cold wall / embedding-only",
    ):
        assert re.search(rf"\| {re.escape(target)}.* \| \*\*(met|missed)\*\* \|", report), target
