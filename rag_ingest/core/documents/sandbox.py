"""What an extraction worker may inherit, and how it dies with the process that started it.

Workers parse hostile bytes, so (review L3, L4):

* they start with an allow-listed environment (:func:`worker_environment`): what Python, the
  locale and temporary files need, nothing else. Credentials (AWS keys, the Qdrant API key, the
  Modal token, a registry URL with a password) never reach them, whatever they are called;
* they end when their parent process ends (:func:`die_with_parent`), even in the middle of a
  document: a SIGKILLed run cannot leave a parser running;
* each document gets a CPU-time limit a little above the per-document timeout
  (:func:`limit_cpu_for_document`), so a parser that never returns ends by itself even if
  nothing is left to time it out.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import math
import os
import resource
import signal
import sys
import threading
from collections.abc import Mapping

# Names copied from the parent's environment. An allow-list: a new secret is never inherited.
ALLOWED_NAMES = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TMPDIR",
        "TEMP",
        "TMP",
        "LD_LIBRARY_PATH",
        "PYTHONHOME",
        "PYTHONPATH",
        "PYTHONHASHSEED",
        "PYTHONIOENCODING",
        "PYTHONUTF8",
        "PYTHONDONTWRITEBYTECODE",
        "PYTHONNOUSERSITE",
        "PYTHONWARNINGS",
        "PYTHONFAULTHANDLER",
        "VIRTUAL_ENV",
        "HF_HUB_OFFLINE",
        "TRANSFORMERS_OFFLINE",
    }
)
ALLOWED_PREFIXES = ("LC_",)  # locale categories
# The parent's pid, for the worker to notice it is gone.
PARENT_PID_VAR = "RAG_INGEST_WORKER_PARENT_PID"
# CPU seconds a document may use beyond its wall-clock timeout before the kernel ends the worker.
CPU_MARGIN_SECONDS = 10.0
_PR_SET_PDEATHSIG = 1
_WATCH_SECONDS = 1.0


def worker_environment(parent: Mapping[str, str], package_root: str) -> dict[str, str]:
    """The environment of a worker started by this process (``parent``: its environment)."""
    env = {
        name: value
        for name, value in parent.items()
        if name in ALLOWED_NAMES or name.startswith(ALLOWED_PREFIXES)
    }
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    env[PARENT_PID_VAR] = str(os.getpid())
    return env


def _gone() -> None:
    os._exit(1)  # no clean-up: the parent that would read our reply is gone


def die_with_parent() -> None:
    """End this process when its parent does, parsing or idle.

    Linux sends the parent-death signal when the *thread* that started us ends, too; the
    handler then finds the parent still there and carries on. A watcher thread checks the
    parent pid as well (other systems, or a parent that died before this ran).
    """
    expected = os.environ.get(PARENT_PID_VAR)
    parent = int(expected) if expected and expected.isdigit() else os.getppid()

    def check(*_: object) -> None:
        if os.getppid() != parent:
            _gone()

    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError, TypeError):
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            signal.signal(signal.SIGUSR2, check)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGUSR2), 0, 0, 0)
    check()  # the parent may have died before the signal was armed

    def watch() -> None:
        while True:
            threading.Event().wait(_WATCH_SECONDS)
            check()

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def no_core_files() -> None:
    """A worker ended by its CPU limit (SIGXCPU) or a crash writes no core file."""
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def limit_cpu_for_document(timeout_seconds: float) -> None:
    """Let the next document use at most its timeout (+ a margin) of CPU time; past that the
    kernel ends this process (SIGXCPU), parent or not. Call before each document."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = usage.ru_utime + usage.ru_stime
    _soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = math.ceil(used + timeout_seconds + CPU_MARGIN_SECONDS)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
