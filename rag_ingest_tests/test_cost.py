"""Pricing recorded embedding work (no Dagster, no services)."""

import json
from pathlib import Path

import pytest

from rag_ingest.core.cost import PriceTable, Workload, price_workload, render_markdown


def _workload(gpu_seconds: float = 0.0, tokens: int = 3_000_000) -> Workload:
    return Workload(
        window_hours=720.0,
        runs=12,
        texts=12_000,
        tokens=tokens,
        embed_seconds=900.0,
        gpu_seconds=gpu_seconds,
        backends=("modal",),
    )


def test_measured_gpu_seconds_are_priced_per_second_and_always_on_per_hour() -> None:
    report = price_workload(_workload(gpu_seconds=3600.0), "A10G")
    by_option = {line.option: line.usd for line in report.lines}
    assert by_option["Modal A10G, per second"] == pytest.approx(3600 * 0.000306)
    assert by_option["Seed article's A10G rate"] == pytest.approx(0.54)
    assert by_option["AWS EC2 g5.xlarge (A10G), on-demand, always on"] == pytest.approx(720 * 1.006)
    assert report.gpu_seconds_source == "measured on Modal"
    assert report.utilisation == pytest.approx(1 / 720)
    # Always-on g5.xlarge pays off only when the GPU is busy ~91% of the time.
    aws = report.break_even_utilisation["AWS EC2 g5.xlarge (A10G), on-demand"]
    assert aws == pytest.approx(1.006 / (0.000306 * 3600))
    assert 0.9 < aws < 0.92


def test_without_modal_runs_gpu_time_is_estimated_only_when_a_throughput_is_given() -> None:
    unpriced = price_workload(_workload(), "A10G")
    assert unpriced.gpu_seconds == 0.0
    assert "none recorded" in unpriced.gpu_seconds_source
    estimated = price_workload(_workload(), "A10G", assumed_tokens_per_gpu_second=100_000)
    assert estimated.gpu_seconds == pytest.approx(30.0)
    assert estimated.gpu_seconds_source.startswith("estimated")
    with pytest.raises(KeyError, match="no Modal price"):
        price_workload(_workload(), "B300")


def test_price_table_file_overrides_defaults_and_rejects_nonsense(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(
        json.dumps({"modal_per_second": {"A10G": 0.0002}, "always_on_per_hour": {"Mine": 0.5}})
    )
    table = PriceTable.load(path)
    assert table.modal_per_second["A10G"] == 0.0002
    assert table.always_on_per_hour["Mine"] == 0.5
    assert "AWS EC2 g5.xlarge (A10G), on-demand" in table.always_on_per_hour
    path.write_text(json.dumps({"modal_per_second": {"A10G": -1}}))
    with pytest.raises(ValueError, match="non-negative"):
        PriceTable.load(path)
    path.write_text(json.dumps({"gpu": {}}))
    with pytest.raises(ValueError, match="unknown"):
        PriceTable.load(path)


def test_markdown_report_has_the_table_and_the_seed_rate_note() -> None:
    text = render_markdown(price_workload(_workload(gpu_seconds=120.0)))
    assert "| Modal A10G, per second |" in text
    assert "break-even utilisation" in text
    assert "$0.54/h" in text and "$1.10/h" in text
