"""Every documented misuse of `rag-ingest` ends in one line that names what to change, never a
traceback; and a command run beside `make dev` finds its environment through ``dev.json``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rag_ingest.cli.devstate import apply_state, state_file, write_state
from rag_ingest.testing import REPO


def _cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "AWS_", "DAGSTER"))}
    clean.update(PYTHONPATH=str(REPO), RAG_DATA_DIR=str(tmp_path / "data"), **env)
    return subprocess.run(
        [sys.executable, "-m", "rag_ingest.cli", *args],
        cwd=tmp_path,
        env=clean,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        (("cost",), {}, "DAGSTER_HOME is not set"),
        (("status", "x"), {"RAG_SHARDS": "7"}, "RAG_SHARDS must be one of"),
        (("status", "x"), {"RAG_EMBEDDER": "gpu"}, "RAG_EMBEDDER must be 'local' or 'modal'"),
        (
            ("health",),
            {"RAG_S3_BUCKET": "b", "RAG_S3_ENDPOINT_URL": "http://127.0.0.1:9"},
            "cannot reach S3 at http://127.0.0.1:9 (RAG_S3_ENDPOINT_URL)",
        ),
        (("search",), {}, "give a query, or -i"),
    ],
)
def test_a_misuse_is_one_line_naming_the_fix(
    tmp_path: Path, args: tuple[str, ...], env: dict[str, str], says: str
) -> None:
    done = _cli(tmp_path, *args, **env, AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="y")
    assert done.returncode != 0
    assert says in done.stderr, done.stderr
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_index_list_without_a_bucket_says_so(tmp_path: Path) -> None:
    done = _cli(tmp_path, "index", "list")
    assert done.returncode == 0, done.stderr
    assert "RAG_S3_BUCKET is not set" in done.stdout


def test_commands_take_a_running_make_dev_s_environment(tmp_path: Path) -> None:
    data = tmp_path / "data"
    values = {
        "RAG_S3_BUCKET": "rag-ingest-sample",
        "RAG_S3_ENDPOINT_URL": "http://127.0.0.1:9333",
        "DAGSTER_HOME": str(tmp_path / "home"),
        "RAG_DATA_DIR": str(data),
    }
    write_state(data, values)  # as `make dev` writes it: this process plays the running dev
    env: dict[str, str] = {}
    assert apply_state([data], env) and env == values
    # A configured bucket wins over the dev state; a dev that is gone is not used.
    assert not apply_state([data], {"RAG_S3_BUCKET": "mine"})
    state = json.loads(state_file(data).read_text())
    state_file(data).write_text(json.dumps({**state, "pid": 2**22 + 1}))
    assert not apply_state([data], {})
