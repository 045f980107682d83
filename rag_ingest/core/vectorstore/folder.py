"""Folder-level safety for an embedded store: an exclusive lock, files replaced whole, and
names that stay folder names."""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rag_ingest.core.vectorstore.base import StoreLocked

# Letters, digits, '.', '_', '-', not leading with '.': a plain folder name, never a path.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,254}$")


def is_safe_name(name: str) -> bool:
    return bool(_SAFE_NAME.match(name))


def check_name(name: str) -> str:
    """``name`` if it can be a collection folder or alias; ValueError otherwise."""
    if not is_safe_name(name):
        raise ValueError(
            f"invalid collection or alias name {name!r}: use letters, digits, '.', '_', '-'"
        )
    return name


def fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_mapping(path: Path) -> dict[str, str]:
    """A JSON object of strings written by :func:`write_mapping`; empty when there is none."""
    try:
        raw = path.read_text()
    except FileNotFoundError:
        return {}
    return {str(k): str(v) for k, v in json.loads(raw).items()}


def write_mapping(path: Path, mapping: Mapping[str, str]) -> None:
    """Replace ``path`` with ``mapping`` in one rename: a reader without any lock sees the old
    file or the new one, never a partial write."""
    write_json(path, mapping)


def write_json(path: Path, mapping: Mapping[str, Any]) -> None:
    """Replace ``path`` with ``mapping`` as a JSON object, in one rename (see write_mapping)."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    with open(tmp, "w") as f:
        json.dump(dict(sorted(mapping.items())), f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def lock_folder(
    path: Path, what: str, advice: str, wait_seconds: float, poll_seconds: float
) -> int:
    """An exclusive ``flock`` on ``path``; close the returned descriptor to release it.

    flock belongs to the open file, so a second opener in the same process is refused as well,
    and the kernel drops it when the holder dies. The holder's pid is written into the file for
    the error message of whoever waits.

    Raises:
        StoreLocked: still held by someone else after ``wait_seconds``.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if time.monotonic() < deadline:
                time.sleep(poll_seconds)
                continue
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise StoreLocked(
                f"{what} is held by another process (pid {holder}; waited {wait_seconds:g}s). "
                + advice
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        return fd
