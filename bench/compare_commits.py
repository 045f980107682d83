"""The gpu-speed scenario on several commits (or settings) at once, side by side.

    python -m bench.compare_commits OLD NEW [--docs 20000] [--out bench/results/compare.md]
    python -m bench.compare_commits 'c171c76:RAG_SPARSE=false' c171c76 --docs 20000

Each variant is ``COMMIT`` or ``COMMIT:KEY=VALUE,KEY=VALUE`` (environment set for that variant
only, e.g. a ``RAG_*`` setting). Each is checked out in a detached worktree under a temporary
folder and runs ``python -m bench.run --skip cost,ui,burst,cpu`` with its own code
(``PYTHONPATH`` = that worktree) and this checkout's virtualenv. All start together, so all see
the same machine load; the report puts their walls and documents/s side by side, with each
variant's ratio to the one before it.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .common import REPO

# The first cell after the label of the documents/s row in bench.run's "Targets" table.
RATE = re.compile(r"^\| documents/s end to end \(gpu-speed\) \| ([0-9.]+) \|", re.M)


@dataclass(frozen=True)
class Variant:
    label: str
    commit: str
    env: dict[str, str]

    @classmethod
    def parse(cls, spec: str) -> Variant:
        commit, _, assignments = spec.partition(":")
        env = {}
        for item in filter(None, assignments.split(",")):
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise SystemExit(f"variant {spec!r}: expected COMMIT:KEY=VALUE,...")
            env[key] = value
        return cls(spec, commit, env)


def _worktree(path: Path, commit: str) -> Path:
    subprocess.run(
        ["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(path), commit],
        check=True,
    )
    return path


def _start(tree: Path, v: Variant, docs: int, out: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, **v.env, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, "-m", "bench.run", "--docs", str(docs)]
    cmd += ["--skip", "cost,ui,burst,cpu", "--out", str(out)]
    return subprocess.Popen(cmd, cwd=tree, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.compare_commits")
    p.add_argument("variants", nargs="+", help="COMMIT or COMMIT:KEY=VALUE,... (two or more)")
    p.add_argument("--docs", type=int, default=20_000)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "compare.md")
    args = p.parse_args(argv)
    variants = [Variant.parse(s) for s in args.variants]
    if len(variants) < 2:
        p.error("give at least two variants")
    with tempfile.TemporaryDirectory(prefix="rag-compare-") as tmp:
        root = Path(tmp)
        trees = [_worktree(root / f"v{i}", v.commit) for i, v in enumerate(variants)]
        try:
            started = time.perf_counter()
            procs = [
                _start(t, v, args.docs, root / f"v{i}.md", root / f"v{i}.log")
                for i, (t, v) in enumerate(zip(trees, variants, strict=True))
            ]
            codes = [proc.wait() for proc in procs]
            elapsed = time.perf_counter() - started
            reports = [
                (root / f"v{i}.md").read_text() if code == 0 else "" for i, code in enumerate(codes)
            ]
            logs = [
                (root / f"v{i}.log").read_text(errors="replace")[-3000:] for i in range(len(trees))
            ]
        finally:
            for tree in trees:
                subprocess.run(
                    ["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)],
                    check=False,
                )
    names = ", ".join(f"`{v.label}`" for v in variants)
    lines = [
        f"# gpu-speed, {args.docs:,} documents: {names} side by side",
        "",
        f"All {len(variants)} variants ran at the same time on this machine (one repeat each), so",
        f"they shared its load; together they took {elapsed:.0f} s. Each variant's own report",
        "follows the table.",
        "",
        "| variant | exit | documents/s | ratio to the row above |",
        "|---|---:|---:|---:|",
    ]
    rates = [float(m.group(1)) if (m := RATE.search(r)) else None for r in reports]
    for i, (v, code, rate) in enumerate(zip(variants, codes, rates, strict=True)):
        before = rates[i - 1] if i else None
        ratio = f"{rate / before:.3f}" if rate and before else "–"
        lines.append(f"| `{v.label}` | {code} | {rate if rate is not None else '–'} | {ratio} |")
    lines.append("")
    for v, code, report, log in zip(variants, codes, reports, logs, strict=True):
        lines += [f"## `{v.label}` (exit {code})", ""]
        lines += [report or "```\n" + log + "\n```", ""]
    args.out.write_text("\n".join(lines))
    print(args.out)
    return 0 if all(code == 0 for code in codes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
