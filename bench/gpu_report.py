"""The report of ``bench.gpu_device``: OUT.md for people, OUT.json with the same figures."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .gpu_sweep import PEAKS, SweepResult, peak_for
from .markdown import table as _md_table


def table(header: list[str], rows: list[list[Any]]) -> list[str]:
    return _md_table(header, [[str(c) for c in row] for row in rows])


def _peak(sweep: SweepResult) -> tuple[str, dict[str, Any]] | None:
    return peak_for(sweep.device_name) if sweep.device.startswith("cuda") else None


def sweep_rows(sweep: SweepResult) -> list[dict[str, Any]]:
    """Each measured configuration with its derived rates and shares."""
    found = _peak(sweep)
    rows = []
    for r in sweep.rows:
        peak = found[1][r.precision] if found else None
        measured = sweep.matmul_tflops.get(r.precision)
        rows.append(
            {
                "precision": r.precision,
                "batch_size": r.batch_size,
                "order": r.order,
                "seconds": r.seconds,
                "median_seconds": r.median,
                "chunks_per_second": r.chunks_per_second,
                "tokens_per_second": r.tokens_per_second,
                "padded_tokens_per_second": r.padded_tokens_per_second,
                "padding_overhead": r.padded_tokens / r.tokens - 1 if r.tokens else None,
                "tflops": r.tflops,
                "share_of_datasheet_peak": r.tflops / peak if peak else None,
                "share_of_measured_matmul": r.tflops / measured if measured else None,
            }
        )
    return rows


def pipeline_dict(p: Any) -> dict[str, Any]:
    g = p.pipeline
    return {
        "documents": g.documents,
        "documents_ok": sum(r.documents_ok for r in g.runs),
        "chunks": sum(r.chunks for r in g.runs),
        "runs_requested": p.runs_requested,
        "runs_done": len(g.runs),
        "runs_failed": sum(not r.success for r in g.runs),
        "runs_skipped": p.runs_skipped,
        "terminated": p.terminated,
        "stopped_by_budget": p.stopped_by_budget,
        "concurrency": p.concurrency,
        "extract_workers_per_run": p.extract_workers,
        "device": p.device,
        "embed_batch_size": p.batch_size,
        "worker_start_seconds": p.worker_start_seconds,
        "wall_seconds": g.wall,
        "documents_per_second": g.docs_per_second,
        "run_seconds_summed": sum(r.wall for r in g.runs),
        "stage_seconds_summed": {
            name: g.stage(name)
            for name in ("raw_documents", "chunks", "embeddings", "qdrant_collection")
        },
        "embed_call_seconds_summed": g.embed_calls,
        "dagster_seconds_summed": g.dagster,
        "listing_seconds": g.listing,
        "points": g.points,
        "work_left": g.work_left,
        "statuses": g.statuses,
        "load_before": [round(x, 2) for x in g.load_before],
        "load_after": [round(x, 2) for x in g.load_after],
        "notes": p.notes,
    }


def as_dict(out: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "command": out.command,
        "machine": out.machine,
        "args": out.args,
        "budget_s": out.budget_s,
        "seconds": out.seconds,
        "weights": out.weights,
        "not_run": out.not_run,
        "installs": out.installs,
        "errors": out.errors,
        "peaks_tflops": {k: {**v, "match": list(v["match"])} for k, v in PEAKS.items()},
        "sweep": None,
        "pipeline": pipeline_dict(out.pipeline) if out.pipeline else None,
    }
    if (s := out.sweep) is not None:
        found = _peak(s)
        data["sweep"] = {
            "device": s.device,
            "device_name": s.device_name,
            "peak_row": found[0] if found else None,
            "texts": s.texts,
            "documents": s.documents,
            "tokens": s.tokens,
            "parameters": s.parameters,
            "repeats": s.repeats,
            "rows": sweep_rows(s),
            "skipped": s.skipped,
            "stopped_by_budget": s.stopped_by_budget,
            "load_seconds": s.load_seconds,
            "peak_memory_mb": s.peak_memory_mb,
            "matmul_tflops": s.matmul_tflops,
            "fp16_cosine_to_fp32": s.fp16_cosine,
            "seconds": s.seconds,
        }
    return data


def _f(value: Any, digits: int = 0, pct: bool = False) -> str:
    if value is None:
        return "—"
    return f"{value * 100:.{max(digits, 1)}f}%" if pct else f"{value:,.{digits}f}"


def render(data: dict[str, Any]) -> str:
    lines = ["# GPU device benchmark (`bench.gpu_device`)", ""]
    measured = data["sweep"] is not None or data["pipeline"] is not None
    if not measured:
        lines += ["**Not measured** in this invocation.", ""]
    lines += [f"Command: `{data['command']}`", ""]
    lines += [f"Budget: {data['budget_s']:.0f} s; the command took {data['seconds']:.1f} s.", ""]
    lines += [*table(["machine", "value"], [[k, v] for k, v in data["machine"].items()]), ""]
    if data["weights"]:
        lines += [f"Model weights: {data['weights']}.", ""]
    for part, why in data["not_run"].items():
        lines.append(f"- `{part}` not run: {why}")
    for part, error in data["errors"].items():
        lines += [f"- `{part}` FAILED:", "", "```", error.strip(), "```"]
    for line in data["installs"]:
        lines.append(f"- pip: `{line}`")
    lines.append("")
    if s := data["sweep"]:
        lines += _sweep_md(s, data["peaks_tflops"])
    if p := data["pipeline"]:
        lines += _pipeline_md(p)
    return "\n".join(lines).rstrip() + "\n"


def _sweep_md(s: dict[str, Any], peaks: dict[str, Any]) -> list[str]:
    lines = [
        "## Encoder sweep (`Encoder.encode`, the Modal app's code path)",
        "",
        f"{s['device']} ({s['device_name']}); {s['texts']:,} chunk texts from {s['documents']:,} "
        f"documents, {s['tokens']:,} real tokens; {s['parameters']:,} parameters, so "
        f"{2 * s['parameters'] / 1e6:.1f} MFLOP per token (2 × parameters, the embedding "
        "lookups counted as if multiplied: an upper estimate of the work, attention's "
        f"length-squared terms left out); median of {s['repeats']} passes per row.",
        "",
    ]
    head = ["precision", "batch", "order", "median s", "chunks/s", "tokens/s", "padding",
            "TFLOP/s", "of datasheet peak", "of measured matmul"]  # fmt: skip
    rows = [
        [r["precision"], r["batch_size"], r["order"], _f(r["median_seconds"], 3),
         _f(r["chunks_per_second"]), _f(r["tokens_per_second"]),
         _f(r["padding_overhead"], 1, pct=True), _f(r["tflops"], 2),
         _f(r["share_of_datasheet_peak"], 2, pct=True),
         _f(r["share_of_measured_matmul"], 2, pct=True)]
        for r in s["rows"]
    ]  # fmt: skip
    lines += [*table(head, rows), ""]
    if row := s["peak_row"]:
        peak = peaks[row]
        lines.append(
            f"Datasheet peak ({row}, dense): fp32 {peak['fp32']} TFLOP/s (CUDA cores; TF32 is "
            f"off for PyTorch matrix products by default), fp16 {peak['fp16']} TFLOP/s (tensor "
            f"cores). Source: {peak['source']}."
        )
    else:
        lines.append("No datasheet peak for this device (not in the table): shares not given.")
    if s["matmul_tflops"]:
        lines.append(
            "Measured matrix-product ceiling on this card (median of five n×n×n products): "
            + ", ".join(f"{k} {v:,.1f} TFLOP/s" for k, v in s["matmul_tflops"].items())
            + "."
        )
    if s["fp16_cosine_to_fp32"]:
        c = s["fp16_cosine_to_fp32"]
        lines.append(f"fp16 against fp32 vectors: cosine min {c['min']:.5f}, mean {c['mean']:.5f}.")
    if s["load_seconds"]:
        lines.append(
            "Model load + warm-up: "
            + ", ".join(f"{k} {v:.1f} s" for k, v in s["load_seconds"].items())
            + (
                "; peak GPU memory allocated, both precisions loaded: "
                + ", ".join(f"{v:,.0f} MiB" for v in s["peak_memory_mb"].values())
                if s["peak_memory_mb"]
                else ""
            )
            + "."
        )
    if s["stopped_by_budget"]:
        lines.append(f"**Stopped by the budget**; not measured: {', '.join(s['skipped'])}.")
    return [*lines, ""]


def _pipeline_md(p: dict[str, Any]) -> list[str]:
    stages = p["stage_seconds_summed"]
    lines = [
        "## gpu-speed scenario, real model on the device, concurrent runs",
        "",
        f"{p['documents']:,} documents; {p['runs_done']} of {p['runs_requested']} runs done "
        f"({p['runs_failed']} failed, {p['runs_skipped']} not started), {p['concurrency']} at "
        f"a time, {p['extract_workers_per_run']} fetch threads each; embedder `LocalEmbedder` "
        f"on {p['device']}, batch {p['embed_batch_size']}. Workers started (definitions and "
        f"model loaded) in {p['worker_start_seconds']:.1f} s, before the wall.",
        "",
    ]
    rows = [
        ["wall (first tick → last run's end)", _f(p["wall_seconds"], 2)],
        ["documents/s", _f(p["documents_per_second"], 1)],
        ["documents ok / chunks / points", f"{p['documents_ok']:,} / {p['chunks']:,} / "
         f"{p['points']:,}"],
        ["work left after the runs", p["work_left"]],
        ["listing (ticks)", _f(p["listing_seconds"], 2)],
        *[[f"{k} (summed over runs)", _f(v, 2)] for k, v in stages.items()],
        ["… of which embed calls", _f(p["embed_call_seconds_summed"], 2)],
        ["Dagster bookkeeping (summed over runs)", _f(p["dagster_seconds_summed"], 2)],
        ["run walls summed (over the wall: the overlap)", _f(p["run_seconds_summed"], 2)],
        ["load average before / after", f"{p['load_before']} / {p['load_after']}"],
    ]  # fmt: skip
    lines += [*table(["measure", "value"], rows), ""]
    if p["stopped_by_budget"]:
        lines.append(
            f"**Stopped by the budget**: {p['runs_skipped']} run(s) not started"
            + (", a run in flight ended with its worker" if p["terminated"] else "")
            + "."
        )
    lines += [f"- {n}" for n in p["notes"]]
    return [*lines, ""]


def write_report(out: Any, path: Path) -> dict[str, Any]:
    """Write ``path`` (markdown) and its ``.json`` sibling; returns the JSON's data."""
    data = as_dict(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(data))
    json_path = path.with_suffix(".json")
    tmp = json_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    os.replace(tmp, json_path)
    return data
