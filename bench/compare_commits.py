"""The gpu-speed scenario on two commits at once, side by side, on the same machine and load.

    python -m bench.compare_commits OLD NEW [--docs 20000] [--out bench/results/compare.md]

Each commit is checked out in a detached worktree under a temporary folder and runs
``python -m bench.run --skip cost,ui,burst,cpu`` with its own code (``PYTHONPATH`` = that
worktree) and this checkout's virtualenv. Both start together, so both see the same machine
load; the report puts their walls and documents/s side by side with the ratio NEW/OLD.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .common import REPO

# The first cell after the label of the documents/s row in bench.run's "Targets" table.
RATE = re.compile(r"^\| documents/s end to end \(gpu-speed\) \| ([0-9.]+) \|", re.M)


def _worktree(root: Path, commit: str) -> Path:
    path = root / commit
    subprocess.run(
        ["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(path), commit],
        check=True,
    )
    return path


def _start(tree: Path, docs: int, out: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, "-m", "bench.run", "--docs", str(docs)]
    cmd += ["--skip", "cost,ui,burst,cpu", "--out", str(out)]
    return subprocess.Popen(cmd, cwd=tree, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.compare_commits")
    p.add_argument("old")
    p.add_argument("new")
    p.add_argument("--docs", type=int, default=20_000)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "compare.md")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="rag-compare-") as tmp:
        root = Path(tmp)
        trees = {c: _worktree(root, c) for c in (args.old, args.new)}
        try:
            started = time.perf_counter()
            procs = {
                c: _start(t, args.docs, root / f"{c}.md", root / f"{c}.log")
                for c, t in trees.items()
            }
            codes = {c: proc.wait() for c, proc in procs.items()}
            elapsed = time.perf_counter() - started
            reports = {c: (root / f"{c}.md").read_text() if codes[c] == 0 else "" for c in trees}
            logs = {c: (root / f"{c}.log").read_text(errors="replace")[-3000:] for c in trees}
        finally:
            for tree in trees.values():
                subprocess.run(
                    ["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)],
                    check=False,
                )
    lines = [
        f"# gpu-speed, {args.docs:,} documents: {args.old} and {args.new} side by side",
        "",
        "Both commits ran at the same time on this machine (one repeat each), so they shared its",
        f"load; the pair took {elapsed:.0f} s. Each commit's own report follows.",
        "",
    ]
    rates = {c: float(m.group(1)) for c in trees if (m := RATE.search(reports[c]))}
    if len(rates) == 2:
        ratio = rates[args.new] / rates[args.old]
        lines += [
            f"documents/s: {args.old} {rates[args.old]:.1f}, {args.new} {rates[args.new]:.1f}; "
            f"{args.new}/{args.old} = **{ratio:.3f}**",
            "",
        ]
    for commit in trees:
        lines += [f"## {commit} (exit {codes[commit]})", ""]
        lines += [reports[commit] or "```\n" + logs[commit] + "\n```", ""]
    args.out.write_text("\n".join(lines))
    print(args.out)
    return 0 if all(code == 0 for code in codes.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
