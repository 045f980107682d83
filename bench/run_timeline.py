"""Where a launched run's seconds go, read from Dagster's event log: the launcher's start
(RUN_STARTING), the run worker's process being up (the "Started process for run" engine event),
RUN_START (code location loaded, plan built), each step, RUN_SUCCESS."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Segments of a run, in order (name, what the seconds hold).
SEGMENTS = (
    ("process", "launcher → worker process up (interpreter, Dagster, instance)"),
    ("code", "process up → RUN_START (project imports, definitions, plan)"),
    ("to_step", "RUN_START → first STEP_START (resources, step setup)"),
    ("steps", "first STEP_START → last step's end (the asset bodies and between them)"),
    ("finish", "last step's end → RUN_SUCCESS"),
)


@dataclass
class Timeline:
    run_id: str
    status: str
    queued: float  # RUN_ENQUEUED → RUN_STARTING (the queue daemon's pickup, not the run's)
    total: float  # RUN_STARTING → RUN_SUCCESS / RUN_FAILURE
    segments: dict[str, float] = field(default_factory=dict)
    steps: dict[str, float] = field(default_factory=dict)  # step key → its own seconds
    pid: int | None = None  # the run worker's process id
    cpu: float = float("nan")  # its CPU seconds (and its waited children's), sampled


class CpuSampler:
    """CPU seconds (user + system, with waited children: the extraction workers) of every run
    worker of one DAGSTER_HOME, sampled while it lives: a measure the machine's load moves far
    less than wall time. The last sample comes up to ``interval`` before the process exits."""

    def __init__(self, marker: str, interval: float = 0.2) -> None:
        import os
        import threading

        self.marker, self.interval = marker.encode(), interval
        self.cpu: dict[int, float] = {}
        self._tick = os.sysconf("SC_CLK_TCK")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        from pathlib import Path

        while not self._stop.wait(self.interval):
            for entry in Path("/proc").iterdir():
                if not entry.name.isdigit():
                    continue
                try:
                    # Dagster's code server starts each run with multiprocessing's spawn.
                    if b"spawn_main" not in (entry / "cmdline").read_bytes():
                        continue
                    if self.marker not in (entry / "environ").read_bytes():
                        continue
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                ticks = sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
                self.cpu[int(entry.name)] = ticks / self._tick

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def _message(entry: Any) -> str:
    event = entry.dagster_event
    return (event.message if event is not None else None) or entry.user_message or ""


def _first(entries: list[Any], kind: Any) -> float | None:
    for entry in entries:
        if entry.dagster_event is not None and entry.dagster_event.event_type == kind:
            return entry.timestamp
    return None


def timeline(instance: Any, run_id: str) -> Timeline:
    """The run's segments from its event log (NaN where an event is missing)."""
    from dagster import DagsterEventType as T

    entries = sorted(instance.all_logs(run_id), key=lambda e: e.timestamp)
    nan = float("nan")
    enqueued = _first(entries, T.RUN_ENQUEUED)
    starting = _first(entries, T.RUN_STARTING)
    start = _first(entries, T.RUN_START)
    end = _first(entries, T.RUN_SUCCESS) or _first(entries, T.RUN_FAILURE)
    started = [e for e in entries if _message(e).startswith("Started process")]
    process = started[0].timestamp if started else None
    pid = int(_message(started[0]).split("pid: ")[1].rstrip(").")) if started else None
    step_start: dict[str, float] = {}
    steps: dict[str, float] = {}
    last_step_end = None
    for entry in entries:
        event = entry.dagster_event
        if event is None or not entry.step_key:
            continue
        if event.event_type == T.STEP_START:
            step_start[entry.step_key] = entry.timestamp
        elif event.event_type in (T.STEP_SUCCESS, T.STEP_FAILURE, T.STEP_SKIPPED):
            began = step_start.get(entry.step_key, entry.timestamp)
            steps[entry.step_key] = entry.timestamp - began
            last_step_end = entry.timestamp
    first_step = min(step_start.values(), default=None)

    def span(a: float | None, b: float | None) -> float:
        return b - a if a is not None and b is not None else nan

    run = instance.get_run_by_id(run_id)
    return Timeline(
        run_id=run_id,
        status=run.status.value if run else "?",
        queued=span(enqueued, starting),
        total=span(starting, end),
        segments={
            "process": span(starting, process),
            "code": span(process, start),
            "to_step": span(start, first_step),
            "steps": span(first_step, last_step_end),
            "finish": span(last_step_end, end),
        },
        steps=steps,
        pid=pid,
    )
