"""What `make dev` started, discoverable from the project folder, and the local documents
folder it serves.

`make dev` writes ``dev.json`` in its data folder (``data/`` in the project): the local S3's
endpoint, bucket and dev-only credentials, the instance folder and its own pid. Every other
`rag-ingest` command run in the project reads it for whatever the environment does not set, so
`rag-ingest health` or `status` work in a second terminal with nothing exported. The dev S3
keeps one port across restarts (``DEFAULT_S3_PORT``, or the next free one, recorded there).

The local S3 lives in memory, so what it serves comes from a folder on disk
(``documents/``, seeded once with the sample corpus): every file there is put into the dev
bucket at start, and a watcher puts added or changed files and deletes removed ones while dev
runs. Objects keep their ETag (an MD5 of the content) across restarts, so a restart re-ingests
nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

DEFAULT_S3_PORT = 9333
# Dev-only credentials for the local S3 (moto accepts any): not secrets.
DEV_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "dev",
    "AWS_SECRET_ACCESS_KEY": "dev",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def state_file(data_dir: Path) -> Path:
    return data_dir / "dev.json"


def documents_folder(project: Path) -> Path:
    return Path(os.environ.get("RAG_DEV_DOCUMENTS") or project / "documents")


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick_s3_port(requested: str | None) -> int:
    """``RAG_DEV_S3_PORT`` if set; else the stable default, or the next free port after it."""
    if requested:
        return int(requested)
    for port in range(DEFAULT_S3_PORT, DEFAULT_S3_PORT + 50):
        if port_is_free(port):
            return port
    raise RuntimeError(f"no free port in {DEFAULT_S3_PORT}..{DEFAULT_S3_PORT + 49}")


def write_state(data_dir: Path, values: dict[str, str]) -> None:
    path = state_file(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**values, "pid": os.getpid()}, indent=2) + "\n")


def _alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except (OSError, ValueError, TypeError):
        return False
    return True


def read_state(data_dir: Path) -> dict[str, str] | None:
    """The environment `make dev` recorded, if it is still running; None otherwise."""
    try:
        state = json.loads(state_file(data_dir).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict) or not _alive(state.get("pid")):
        return None
    return {str(k): str(v) for k, v in state.items() if k != "pid"}


def apply_state(folders: list[Path], environ: Any = os.environ) -> bool:
    """Fill the variables the environment does not set from the state of a `make dev` running
    with one of these data folders (``RAG_DATA_DIR``, else ``data/`` here or in the project).
    A configured bucket wins: then nothing is taken (its endpoint and credentials belong to
    it). Returns whether the dev environment was used."""
    if environ.get("RAG_S3_BUCKET"):
        return False
    if environ.get("RAG_DATA_DIR"):
        folders = [Path(environ["RAG_DATA_DIR"])]
    for folder in folders:
        state = read_state(folder)
        if state is not None:
            for name, value in state.items():
                environ.setdefault(name, value)
            return True
    return False


ENV_FILE_HEADER = "# Written by `make dev`: Dagster commands run here (`dg dev`, `dagster dev`) use"


def write_env_file(
    project: Path, dagster_home: Path, switches: Mapping[str, str] | None = None
) -> bool:
    """Point Dagster commands run in ``project`` at ``dagster_home`` when DAGSTER_HOME is not
    set, so `dg dev` and `dagster dev` open `make dev`'s instance with nothing exported, and
    give their processes Dagster's ``switches`` (``cli.dev.DAGSTER_ENV``) as `make dev` does.

    Dagster reads ``.env`` from the folder it runs in (`dg dev` runs in the project's root) and
    its values win over the environment's, so each line keeps a value that is set
    (python-dotenv's ``${VAR:-default}``). A ``.env`` that `make dev` did not write is the
    user's and is left alone. Returns whether it wrote the file.
    """
    path = project / ".env"
    if path.exists() and not path.read_text(errors="replace").startswith(ENV_FILE_HEADER):
        return False
    lines = [
        ENV_FILE_HEADER,
        "# its instance and Dagster's settings; a value set in the environment wins.",
        f"DAGSTER_HOME=${{DAGSTER_HOME:-{dagster_home}}}",
        *(f"{name}=${{{name}:-{value}}}" for name, value in (switches or {}).items()),
    ]
    path.write_text("\n".join(lines) + "\n")
    return True


def seed_documents(folder: Path, sample: Path) -> bool:
    """Create the documents folder from the sample corpus the first time; True if it did."""
    if folder.exists():
        return False
    shutil.copytree(sample, folder)
    return True


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` by key (its relative path), with (mtime ns, size)."""
    files = {}
    for path in folder.rglob("*"):
        if path.is_file() and not path.name.startswith("."):
            stat = path.stat()
            files[path.relative_to(folder).as_posix()] = (stat.st_mtime_ns, stat.st_size)
    return files


class FolderMirror:
    """Keeps a bucket equal to a folder: ``sync()`` puts new and changed files and deletes
    objects whose file is gone; ``watch()`` repeats it every ``interval`` seconds."""

    def __init__(self, client: Any, bucket: str, folder: Path) -> None:
        self.client, self.bucket, self.folder = client, bucket, folder
        self._seen: dict[str, tuple[int, int]] = {}

    def sync(self) -> tuple[int, int]:
        """One pass; returns (objects put, objects deleted)."""
        now = _snapshot(self.folder)
        put = [key for key, stamp in now.items() if self._seen.get(key) != stamp]
        gone = [key for key in self._seen if key not in now]
        for key in put:
            self.client.put_object(
                Bucket=self.bucket, Key=key, Body=(self.folder / key).read_bytes()
            )
        for key in gone:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        self._seen = now
        return len(put), len(gone)

    def watch(self, stop: threading.Event, interval: float = 2.0) -> None:
        while not stop.wait(interval):
            try:
                put, gone = self.sync()
            except OSError as exc:  # a file removed mid-read: the next pass sees it gone
                print(f"[dev] documents folder: {exc}", flush=True)
                continue
            if put or gone:
                print(
                    f"[dev] documents folder: {put} put, {gone} deleted in s3://{self.bucket}/",
                    flush=True,
                )
