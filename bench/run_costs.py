"""A launched run's cost by kind, old code against new, through the real launcher.

    python -m bench.run_costs --old main --repeats 2 --out bench/results/run-costs.md

For each variant (``--old``: a commit, exported with ``git archive`` into a scratch folder; new:
this checkout) and each repeat, a fresh deployment: moto's S3, a ``DAGSTER_HOME`` with the
project's ``dagster.yaml``, and the real ``dagster-daemon run -w workspace.yaml`` (its sensor
requests the runs, its queue launches them: ``DefaultRunLauncher``, a code server, a new run
worker process per run). Settings come from the environment, as in a deployment. Phases:

* warm-up: ``--docs`` new text documents, the deployment's first run (not reported);
* **new text**: ``--docs`` more new text documents (fetch, extract, chunk, embed, write);
* **nothing to do**: the periodic full reconcile (the registry's ``full_reconcile_at`` counter
  moved back a day) over every shard, with nothing changed;
* **deletes only**: the new-text documents deleted from S3;
* **all cached**: the same texts put again under new keys (every chunk's vector is in the
  embedding cache).

Each phase is triggered by changing S3 (or the counter) and waited out until its runs have
ended and the registry holds no work; the report gives each run's segments from Dagster's
event log (``bench/run_timeline.py``).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .common import REPO, machine_info, s3_client
from .run_timeline import SEGMENTS, CpuSampler, Timeline, timeline

KINDS = ("nothing to do", "all cached", "deletes only", "new text")
JOB = "ingest_documents"
WORDS = [
    "river",
    "stone",
    "lantern",
    "harbor",
    "copper",
    "meadow",
    "violin",
    "orchard",
    "glacier",
    "saddle",
    "thunder",
    "ember",
    "compass",
    "velvet",
    "pepper",
    "falcon",
    "marble",
    "tundra",
    "whistle",
    "canyon",
]


@dataclass
class Sample:
    variant: str
    repeat: int
    kind: str
    runs: list[Timeline] = field(default_factory=list)

    @property
    def total(self) -> float:
        return sum(r.total for r in self.runs)

    @property
    def cpu(self) -> float:
        return sum(r.cpu for r in self.runs)


def _text(seed: int, paragraphs: int = 6) -> bytes:
    """A distinct English-like document (a few chunks) for ``seed``."""
    out = []
    for p in range(paragraphs):
        words = [WORDS[(seed * 7 + p * 3 + i * i) % len(WORDS)] for i in range(60)]
        out.append(f"Note {seed}.{p}: " + " ".join(words) + ".")
    return "\n\n".join(out).encode()


def export_commit(ref: str, folder: Path) -> str:
    """``ref``'s tree in ``folder`` (``git archive``: nothing of the checkout changes);
    returns the commit id."""
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", ref], check=True, capture_output=True, text=True
    ).stdout.strip()
    folder.mkdir(parents=True)
    archive = subprocess.Popen(["git", "-C", str(REPO), "archive", commit], stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(folder)], stdin=archive.stdout, check=True)
    archive.wait()
    return commit


class Deployment:
    """One variant's checkout run as a deployment would: its own bucket, data, DAGSTER_HOME and
    daemon."""

    def __init__(self, code: Path, endpoint: str, work: Path, bucket: str) -> None:
        import dagster as dg

        self.code, self.endpoint, self.bucket = code, endpoint, bucket
        self.data = work / "data"
        self.home = work / "dagster_home"
        self.home.mkdir(parents=True)
        shutil.copy(code / "dagster_home" / "dagster.yaml", self.home / "dagster.yaml")
        self.env = {
            "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin",
            "HOME": str(work),
            "PYTHONPATH": str(code),
            "DAGSTER_HOME": str(self.home),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "RAG_S3_BUCKET": bucket,
            "RAG_S3_ENDPOINT_URL": endpoint,
            "RAG_DATA_DIR": str(self.data),
            "RAG_SHARDS": "16",
            "RAG_SENSOR_INTERVAL_SECONDS": "2",
            "RAG_FULL_RECONCILE_HOURS": "24",
        }
        self.s3 = s3_client(endpoint)
        self.s3.create_bucket(Bucket=bucket)
        self.log = (work / "daemon.log").open("wb")
        self.instance = dg.DagsterInstance.from_config(str(self.home))
        self.daemon: subprocess.Popen[bytes] | None = None
        self.sampler = CpuSampler(str(self.home))

    def start(self) -> None:
        from rag_ingest.testing.daemon import start_daemon

        self.daemon = start_daemon(self.code, self.env, self.log, str(self.code / "workspace.yaml"))

    def stop(self) -> None:
        from rag_ingest.testing.daemon import stop_daemon

        self.sampler.close()
        if self.daemon is not None:
            stop_daemon(self.daemon, self.home)
        self.instance.dispose()
        self.log.close()

    def put(self, items: dict[str, bytes]) -> None:
        with ThreadPoolExecutor(8) as pool:
            list(
                pool.map(
                    lambda kv: self.s3.put_object(Bucket=self.bucket, Key=kv[0], Body=kv[1]),
                    items.items(),
                )
            )

    def delete(self, keys: list[str]) -> None:
        self.s3.delete_objects(
            Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True}
        )

    def ask_full_reconcile(self) -> None:
        from rag_ingest.core.registry import Registry, default_url

        reg = Registry(default_url(self.data))
        try:
            # The counter the sensor compares with RAG_FULL_RECONCILE_HOURS (a day ago, so due).
            reg.set_counter("full_reconcile_at", int(time.time()) - 25 * 3600)
        finally:
            reg.close()

    def _ingest_runs(self) -> list[Any]:
        import dagster as dg

        return list(self.instance.get_runs(dg.RunsFilter(job_name=JOB)))

    def _work_left(self) -> int:
        from rag_ingest.core.registry import Registry, default_url

        if not (self.data / "registry.sqlite").exists():
            return 1
        reg = Registry(default_url(self.data))
        try:
            counts = reg.status_counts()
        finally:
            reg.close()
        return counts.get("pending", 0) + counts.get("deleting", 0)

    def settle(self, before: set[str], timeout: float = 900, quiet: float = 6) -> list[str]:
        """Wait until runs not in ``before`` exist, have all ended, the registry holds no work,
        and no new run came for ``quiet`` seconds; returns their ids, oldest first."""
        deadline = time.monotonic() + timeout
        seen: set[str] = set()
        still_since = time.monotonic()
        while time.monotonic() < deadline:
            runs = [r for r in self._ingest_runs() if r.run_id not in before]
            ids = {r.run_id for r in runs}
            if ids != seen or not all(r.is_finished for r in runs):
                seen, still_since = ids, time.monotonic()
            elif runs and time.monotonic() - still_since >= quiet and self._work_left() == 0:
                return sorted(ids, key=self._created)
            time.sleep(0.5)
        raise TimeoutError(f"runs did not settle in {timeout:.0f} s (see {self.log.name})")

    def _created(self, run_id: str) -> float:
        record = self.instance.get_run_record_by_id(run_id)
        return record.create_timestamp.timestamp() if record else 0.0

    def phase(self, trigger: Any) -> list[Timeline]:
        before = {r.run_id for r in self._ingest_runs()}
        trigger()
        runs = [timeline(self.instance, run_id) for run_id in self.settle(before)]
        for run in runs:
            run.cpu = self.sampler.cpu.get(run.pid or -1, float("nan"))
        return runs


def scenario(
    code: Path, variant: str, repeat: int, endpoint: str, work: Path, docs: int, say: Any
) -> list[Sample]:
    dep = Deployment(code, endpoint, work, f"runcost-{variant}-{repeat}")
    samples: list[Sample] = []
    first = {f"warm/{i:03d}.txt": _text(i) for i in range(docs)}
    texts = {f"new/{i:03d}.txt": _text(1000 + i) for i in range(docs)}
    again = {k.replace("new/", "again/"): v for k, v in texts.items()}
    try:
        dep.put(first)
        dep.start()
        dep.settle(set())
        steps = [
            ("new text", lambda: dep.put(texts)),
            ("nothing to do", dep.ask_full_reconcile),
            ("deletes only", lambda: dep.delete(list(texts))),
            ("all cached", lambda: dep.put(again)),
        ]
        for kind, trigger in steps:
            runs = dep.phase(trigger)
            samples.append(Sample(variant, repeat, kind, runs))
            say(
                f"{variant} #{repeat} {kind}: "
                + ", ".join(f"{r.total:.2f} s ({r.status})" for r in runs)
            )
    finally:
        dep.stop()
    return samples


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def report(
    samples: list[Sample], commits: dict[str, str], args: argparse.Namespace, loads: list[str]
) -> str:
    def of(variant: str, kind: str) -> list[Sample]:
        return [s for s in samples if s.variant == variant and s.kind == kind]

    lines = [
        "# A launched run's fixed cost: old against new, through the real launcher",
        "",
        f"Command: `python -m bench.run_costs --old {args.old} --repeats {args.repeats} "
        f"--docs {args.docs}`. Old: `{commits['old']}`; new: `{commits['new']}` (the working "
        "tree). Variants alternate within each repeat (old first on odd repeats).",
        "",
        "Machine: " + "; ".join(f"{k}: {v}" for k, v in machine_info().items()) + ".",
        "Load averages (1, 5, 15 min) during the invocation: " + " → ".join(loads) + ".",
        "",
        f"Each variant: moto S3, `dagster-daemon run` on the project's workspace.yaml and "
        f"dagster.yaml, 16 shards, local CPU embedder (all-MiniLM-L6-v2), {args.docs} "
        f"documents per phase. {args.repeats} repeat(s) per variant; medians.",
        "",
        "| run kind | old wall (s) | new wall (s) | new / old | old CPU (s) | new CPU (s) "
        "| new / old (CPU) | old samples wall / CPU | new samples wall / CPU |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for kind in KINDS:
        old, new = of("old", kind), of("new", kind)
        o, n = _median([s.total for s in old]), _median([s.total for s in new])
        oc, nc = _median([s.cpu for s in old]), _median([s.cpu for s in new])
        lines.append(
            f"| {kind} | {o:.2f} | {n:.2f} | {n / o:.2f} | {oc:.2f} | {nc:.2f} | {nc / oc:.2f} | "
            + ", ".join(f"{s.total:.2f} / {s.cpu:.2f}" for s in old)
            + " | "
            + ", ".join(f"{s.total:.2f} / {s.cpu:.2f}" for s in new)
            + " |"
        )
    lines += [
        "",
        "Wall: RUN_STARTING (the launcher) → RUN_SUCCESS. CPU: user + system seconds of the run "
        "worker process and the extraction workers it waited for (sampled every 0.2 s, so up "
        "to 0.2 s of its last CPU is missed); the other sessions' load moves it far less "
        "than wall time.",
    ]
    lines += [
        "",
        "Runs per phase (each should be one; more means a sensor tick fell inside "
        "the phase's change): "
        + ", ".join(
            f"{s.variant}#{s.repeat} {s.kind}: {len(s.runs)}" for s in samples if len(s.runs) != 1
        )
        or "all one.",
        "",
    ]
    lines += [
        "## Where the seconds go (medians over repeats, first run of each phase)",
        "",
        "| run kind | variant | " + " | ".join(n for n, _ in SEGMENTS) + " | total |",
        "|---|---|" + "---|" * (len(SEGMENTS) + 1),
    ]
    for kind in KINDS:
        for variant in ("old", "new"):
            runs = [s.runs[0] for s in of(variant, kind) if s.runs]
            cells = [f"{_median([r.segments[n] for r in runs]):.2f}" for n, _ in SEGMENTS]
            lines.append(
                f"| {kind} | {variant} | "
                + " | ".join(cells)
                + f" | {_median([r.total for r in runs]):.2f} |"
            )
    lines += ["", "Segments: " + "; ".join(f"**{n}**: {d}" for n, d in SEGMENTS) + ".", ""]
    lines += ["## Steps (medians, seconds)", ""]
    keys = sorted({k for s in samples for r in s.runs[:1] for k in r.steps})
    lines += ["| run kind | variant | " + " | ".join(keys) + " |", "|---|---|" + "---|" * len(keys)]
    for kind in KINDS:
        for variant in ("old", "new"):
            runs = [s.runs[0] for s in of(variant, kind) if s.runs]
            cells = [f"{_median([r.steps.get(k, float('nan')) for r in runs]):.2f}" for k in keys]
            lines.append(f"| {kind} | {variant} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _load() -> str:
    return " / ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.run_costs")
    p.add_argument("--old", default="main", help="the commit the new code is compared with")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--docs", type=int, default=8, help="text documents per phase")
    p.add_argument("--only", choices=("old", "new"), help="one variant (for profiling)")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder (logs, homes)")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    from rag_ingest.testing.s3 import moto_server

    say = lambda line: print(f"[{time.strftime('%H:%M:%S')}] {line}", flush=True)  # noqa: E731
    loads = [_load()]
    samples: list[Sample] = []
    with ExitStack() as stack:
        scratch = Path(tempfile.mkdtemp(prefix="run-costs-"))
        if not args.keep:
            stack.callback(shutil.rmtree, scratch, ignore_errors=True)
        commits = {"old": export_commit(args.old, scratch / "old"), "new": "working tree"}
        codes = {"old": scratch / "old", "new": REPO}
        endpoint = stack.enter_context(moto_server())
        for repeat in range(1, args.repeats + 1):
            order = ["old", "new"] if repeat % 2 else ["new", "old"]
            for variant in order:
                if args.only and variant != args.only:
                    continue
                work = scratch / f"{variant}-{repeat}"
                samples += scenario(codes[variant], variant, repeat, endpoint, work, args.docs, say)
                loads.append(_load())
    text = report(samples, commits, args, loads)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
