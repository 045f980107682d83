"""The real ``dagster-daemon`` for tests and benchmarks where concurrency matters: started in a
process group of its own (so it can be stopped as a whole), and stopped with every run worker
it launched for its instance."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO


def processes_with(marker: str) -> list[int]:
    """PIDs (not this one) whose environment mentions ``marker`` (e.g. a DAGSTER_HOME)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if marker.encode() in (entry / "environ").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def start_daemon(
    folder: Path, env: dict[str, str], log: IO[bytes] | IO[str], workspace: str = "workspace.yaml"
) -> subprocess.Popen[bytes]:
    """``dagster-daemon run -w workspace`` in ``folder`` with ``env`` (which names its
    ``DAGSTER_HOME``), writing to ``log``, in a process group of its own."""
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", workspace],
        env=env,
        cwd=folder,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop_daemon(daemon: subprocess.Popen[bytes], home: str | Path) -> None:
    """SIGTERM to the daemon's group, SIGKILL after 60 s, then SIGKILL to any run worker still
    holding ``home`` (a worker outlives a daemon that was killed)."""
    os.killpg(daemon.pid, signal.SIGTERM)
    try:
        daemon.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(daemon.pid, signal.SIGKILL)
    for pid in processes_with(str(home)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
