"""`dg dev` and `dagster dev` run in the project open the instance `make dev` uses, with
nothing exported: `make dev` writes ``.env`` (``DAGSTER_HOME=${DAGSTER_HOME:-…}``), which
Dagster's CLI reads from the folder it runs in."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster._cli.utils import get_possibly_temporary_instance_for_cli

from rag_ingest.cli.dev import DAGSTER_ENV
from rag_ingest.cli.devstate import ENV_FILE_HEADER, write_env_file
from rag_ingest.testing.browser import server_answers
from rag_ingest.testing.daemon import processes_with
from rag_ingest.testing.ports import free_port
from rag_ingest.testing.project import clean_env, copy_project


def _instance_root(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The instance Dagster's CLI (`dg dev`, `dagster dev`) opens when run in ``folder``."""
    monkeypatch.chdir(folder)
    with get_possibly_temporary_instance_for_cli("dg dev") as instance:
        return Path(instance.root_directory)


def test_dagster_commands_run_in_the_project_open_make_dev_s_instance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "dagster_home"  # in a checkout, with its dagster.yaml
    home.mkdir()
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert _instance_root(tmp_path, monkeypatch).name.startswith(".tmp_dagster_home_")
    assert write_env_file(tmp_path, home)
    assert _instance_root(tmp_path, monkeypatch) == home
    assert "DAGSTER_HOME" not in os.environ  # read for the command only

    # A DAGSTER_HOME that is set wins (tests and deployments set their own).
    other = tmp_path / "other_home"
    other.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(other))
    assert _instance_root(tmp_path, monkeypatch) == other

    # Dagster's switches reach the processes `dg dev` starts (it runs them inside this block),
    # as make dev sets them; a value set in the environment wins.
    monkeypatch.delenv("DAGSTER_HOME")
    assert write_env_file(tmp_path, home, DAGSTER_ENV)
    for name in DAGSTER_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "0")
    monkeypatch.chdir(tmp_path)
    with get_possibly_temporary_instance_for_cli("dg dev") as instance:
        assert Path(instance.root_directory) == home
        seen = {name: os.environ.get(name) for name in DAGSTER_ENV}
    assert seen == {**DAGSTER_ENV, "DAGSTER_EVENT_BATCH_SIZE": "0"}
    assert "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS" not in os.environ

    # make dev rewrites its own file (the project moved) but never a user's .env.
    assert write_env_file(tmp_path, tmp_path / "moved")
    assert "moved" in (tmp_path / ".env").read_text()
    (tmp_path / ".env").write_text("MY_SECRET=1\n")
    assert not write_env_file(tmp_path, home)
    assert (tmp_path / ".env").read_text() == "MY_SECRET=1\n"
    assert not (tmp_path / ".env").read_text().startswith(ENV_FILE_HEADER)


def _graphql(url: str, query: str) -> Any:
    request = urllib.request.Request(
        f"{url}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_dg_dev_shows_the_runs_of_make_dev_s_instance(tmp_path: Path) -> None:
    """A run recorded in the project's instance is in the UI `dg dev` serves, started in the
    project folder with no DAGSTER_HOME (before the .env, dg dev used a temporary instance)."""
    project = copy_project(tmp_path / "project")
    home = project / "dagster_home"

    @dg.asset
    def marker() -> None:
        return None

    instance = dg.DagsterInstance.from_config(str(home))
    try:
        run_id = dg.materialize([marker], instance=instance).run_id
    finally:
        # Not the context manager: its __exit__ leaks the state storage into later tests.
        instance.dispose()
    assert write_env_file(project, home)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "dg-dev.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "dg"), "dev", "-h", "127.0.0.1", "-p", str(port)],
            cwd=project,
            env=clean_env(project),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 300
        while not server_answers(url):
            assert process.poll() is None, log.read_text(errors="replace")[-4000:]
            assert time.monotonic() < deadline, log.read_text(errors="replace")[-4000:]
            time.sleep(1)
        answer = _graphql(url, "{ runsOrError { ... on Runs { results { runId } } } }")
        runs = answer["data"]["runsOrError"]["results"]
        assert [run["runId"] for run in runs] == [run_id], answer
        assert not list(project.glob(".tmp_dagster_home_*")), "dg dev made a temporary instance"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        for pid in processes_with(str(project)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
