"""The GPU device benchmark (``python -m bench.gpu_device``), run on the CPU at a tiny size.

What a device run depends on is checked here: the report's structure and counts, the hard
budget stopping each part and saying so, the one-line refusal without CUDA, and the fp16 model
carry's round trip. No assertion reads a duration.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bench.gpu_device import prepare, upcast
from bench.gpu_pipeline import Request, _execute
from bench.gpu_sweep import padded_tokens, peak_for, run_sweep
from rag_ingest.core.text.model import model_dir, resolve_model
from rag_ingest.testing import REPO

DOCS = 12
PER_RUN = 4


def _run(tmp_path: Path, *argv: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path / "gpu-device.md"
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "bench.gpu_device", "--out", str(out), *argv]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=850)
    return done, out


@pytest.mark.timeout(900)
def test_tiny_cpu_run_writes_both_parts(tmp_path: Path) -> None:
    done, out = _run(
        tmp_path, "--device", "cpu", "--sweep-chunks", "12", "--batch-sizes", "4",
        "--precisions", "fp32", "--repeats", "1", "--matmul-n", "0",
        "--pipeline-docs", str(DOCS), "--documents-per-run", str(PER_RUN), "--shards", "16",
        "--concurrency", "2", "--budget-s", "800",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    data = json.loads(out.with_suffix(".json").read_text())
    assert data["not_run"] == {} and data["errors"] == {}
    sweep = data["sweep"]
    assert sweep["texts"] == 12 and sweep["parameters"] > 20_000_000
    assert [(r["precision"], r["batch_size"], r["order"]) for r in sweep["rows"]] == [
        ("fp32", 4, "sorted"),
        ("fp32", 4, "arrival"),
    ]
    for row in sweep["rows"]:
        assert row["chunks_per_second"] > 0 and row["padding_overhead"] >= 0
        assert row["share_of_datasheet_peak"] is None  # no peak for a CPU
    assert not sweep["stopped_by_budget"] and sweep["skipped"] == []
    pipe = data["pipeline"]
    assert pipe["runs_requested"] >= 2 and pipe["runs_done"] == pipe["runs_requested"]
    assert pipe["runs_failed"] == 0 and pipe["runs_skipped"] == 0
    assert pipe["documents_ok"] == DOCS and pipe["work_left"] == 0
    assert pipe["points"] == pipe["chunks"] > 0
    assert pipe["concurrency"] == 2 and not pipe["stopped_by_budget"]
    report = out.read_text()
    assert "## Encoder sweep" in report and "## gpu-speed scenario" in report
    assert "Not measured" not in report and "Stopped by the budget" not in report


def test_spent_budget_runs_nothing_and_says_so(tmp_path: Path) -> None:
    done, out = _run(tmp_path, "--device", "cpu", "--budget-s", "0")
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads(out.with_suffix(".json").read_text())
    assert data["sweep"] is None and data["pipeline"] is None
    assert set(data["not_run"]) == {"sweep", "pipeline"}
    assert all("budget" in why for why in data["not_run"].values())
    assert "**Not measured**" in out.read_text()


def test_sweep_stops_at_its_deadline_and_lists_the_rest() -> None:
    spec = resolve_model()
    texts = ["a short chunk", "a somewhat longer chunk of text", "tiny", "words " * 30]
    # The loading check and the first configuration see time 0, every later check time 10.
    clock = itertools.chain([0.0, 0.0], itertools.repeat(10.0)).__next__
    result = run_sweep(
        texts, spec, "cpu", [2, 4], ["fp32"], ["sorted", "arrival"], 1, 5.0, clock,
        say=lambda _: None,
    )  # fmt: skip
    assert [(r.batch_size, r.order) for r in result.rows] == [(2, "sorted")]
    assert result.stopped_by_budget
    assert result.skipped == ["fp32 batch 2 arrival", "fp32 batch 4 sorted", "fp32 batch 4 arrival"]


def test_a_run_due_after_the_deadline_is_not_started() -> None:
    # Not started means the worker's pipeline is never touched (this process has none).
    request = Request({"rag_ingest/range_start": "x"}, None)
    assert _execute(request, time.time() - 1) == (None, 0.0, 0)


@pytest.mark.skipif(
    __import__("torch").cuda.is_available(), reason="checks the refusal where CUDA is absent"
)
def test_no_cuda_is_one_line_and_an_unmeasured_report(tmp_path: Path) -> None:
    done, out = _run(tmp_path, "--device", "cuda")
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "no CUDA device" in done.stderr
    assert "**Not measured**" in out.read_text()


def test_fp16_carry_round_trip(tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    carried = prepare(tmp_path / "model")
    original = model_dir() / "model.safetensors"
    assert (carried / "model.safetensors").stat().st_size < 0.55 * original.stat().st_size
    folder = upcast(carried)
    before, after = load_file(str(original)), load_file(str(folder / "model.safetensors"))
    assert before.keys() == after.keys()
    for name, value in before.items():
        assert after[name].dtype == value.dtype
        # fp16 keeps 11 significant bits; below its normal range the step is 2**-24.
        assert np.allclose(after[name], value, rtol=2**-11, atol=2**-24), name
    spec = resolve_model(str(folder))
    assert spec.dimension == 384 and not spec.is_default


def test_peak_table_and_padding() -> None:
    assert peak_for("NVIDIA H100 80GB HBM3")[0] == "H100 SXM"  # type: ignore[index]
    assert peak_for("NVIDIA H100 PCIe")[0] == "H100 PCIe"  # type: ignore[index]
    assert peak_for("NVIDIA H200")[0] == "H200"  # type: ignore[index]
    assert peak_for("NVIDIA A10G")[0] == "A10G"  # type: ignore[index]
    assert peak_for("Tesla T4") is None
    texts = ["aaaa", "a", "aaa", "aa"]  # characters order the sorted batches
    lengths = [9, 3, 7, 5]
    assert padded_tokens(texts, lengths, 2, "arrival") == 2 * 9 + 2 * 7
    assert padded_tokens(texts, lengths, 2, "sorted") == 2 * 9 + 2 * 5
