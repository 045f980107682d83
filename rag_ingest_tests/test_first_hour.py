"""The README's first hour, walked as it is written, with the UI in headless Chromium.

The project (its package, sample corpus, workspace.yaml, dagster_home/dagster.yaml and README)
is copied into a temporary folder and what `make dev` runs (``python -m rag_ingest.cli dev``)
starts there with nothing exported but the UI's port (another test may hold :3000), so
``documents/``, ``data/`` and ``dagster_home/`` are the copy's own at their default places and
the checkout's are never touched. Then, in the README's order: wait for the terminal's
"ingested" line; open the asset graph and a shard's materialization metadata in Chromium; run the
README's Python snippet (``rag_ingest.query.Index``) verbatim in a new Python process in the
project folder while `make dev` runs (the embedded engine's one-process rule: ``Index`` opens the
store per query); drop a document into ``documents/`` and wait until it is ingested; stop with
Ctrl-C, start again, twice, and the document is still found by the same snippet, with nothing
deleted. Screenshots land in ``tmp_path``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
import pytest

from rag_ingest.cli.dev import SAMPLE_BUCKET
from rag_ingest.core.config import Settings
from rag_ingest.core.keys import document_id
from rag_ingest.defs.ingestion.sensors import INGEST_JOB, sensor_names
from rag_ingest.testing import REPO, SAMPLE_CORPUS
from rag_ingest.testing.browser import (
    LATEST_MATERIALIZATION_RUN,
    assert_screenshot,
    change_row,
    chromium,
    displayed,
    filled_node,
    graph_node,
    require_chromium,
    wait_for,
)
from rag_ingest.testing.daemon import processes_with
from rag_ingest.testing.ports import free_port
from rag_ingest.testing.project import clean_env, copy_project

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

ASSETS = ("raw_documents", "chunks", "embeddings", "qdrant_collection")
# workspace.yaml names the code location `rag_ingest`, as the README says.
GROUP_URL = "/locations/__repository__@rag_ingest/asset-groups/ingestion"
README_QUERY = '"how do I knead dough"'
DROPPED = "zebra-migration.md"
DROPPED_TEXT = "# Zebra migration\n\nThe quokka-zebra protocol ZX-7741 governs herd migrations.\n"
INGEST_TIMEOUT = 600.0
UI_TIMEOUT = 180.0


@dataclass
class Terminal:
    """A running `make dev` and what it printed."""

    process: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def expect(
        self, pattern: str, timeout: float = INGEST_TIMEOUT, after: int = 0
    ) -> re.Match[str]:
        """Wait for ``pattern`` in the terminal past character ``after``; fail with the
        terminal's tail if `make dev` exits or ``timeout`` passes first."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.text()
            found = re.compile(pattern).search(text, after)
            if found:
                return found
            if self.process.poll() is not None:
                pytest.fail(f"`make dev` exited before {pattern!r}:\n{text[-4000:]}", pytrace=False)
            if time.monotonic() > deadline:
                pytest.fail(f"no {pattern!r} within {timeout:.0f}s:\n{text[-4000:]}", pytrace=False)
            time.sleep(1)

    def ctrl_c(self, project: Path) -> None:
        """SIGINT to the terminal's foreground group, as Ctrl-C sends; everything stops."""
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            code = self.process.wait(timeout=180)
        except subprocess.TimeoutExpired:
            pytest.fail(f"Ctrl-C did not stop `make dev`:\n{self.text()[-4000:]}", pytrace=False)
        assert code == 0, self.text()[-4000:]
        time.sleep(1)
        assert processes_with(str(project)) == [], self.text()[-4000:]


@contextmanager
def make_dev(project: Path, port: int, log: Path) -> Iterator[Terminal]:
    """What `make dev` runs, in ``project``, in a session of its own (a terminal's job); killed
    with everything it started if the test fails first."""
    env = clean_env(project) | {"RAG_WEBSERVER_PORT": str(port)}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "rag_ingest.cli", "dev"],
            cwd=project,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield Terminal(process, log)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        for pid in processes_with(str(project)):  # dagster dev's group, run workers: ours
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _readme_snippet() -> str:
    """The README's "From Python" block, as a user would paste it."""
    readme = (REPO / "README.md").read_text()
    found = re.search(r"\*\*From Python\*\*.*?```python\n(.*?)```", readme, re.DOTALL)
    assert found, "the README has no Python snippet under **From Python**"
    snippet = found.group(1)
    assert snippet.count(README_QUERY) == 1, snippet
    return snippet


def _search(project: Path, query: str) -> list[tuple[float, str]]:
    """The README's snippet, with ``query`` for its example query, in a new Python process in
    the project folder; (score, source) of each hit printed."""
    code = _readme_snippet().replace(README_QUERY, json.dumps(query))
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=project,
        env=clean_env(project),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    # A hit's line starts "score source"; the chunk's text after them may span lines.
    hits = [
        (float(score), source)
        for score, source in re.findall(r"^(-?\d+\.\d{3}) (s3://\S+)", done.stdout, re.MULTILINE)
    ]
    assert hits, f"no hits for {query!r}:\n{done.stdout}{done.stderr[-2000:]}"
    return hits


def _listing_ticked_since(home: Path, sensor: str, since: float) -> bool:
    """Whether the listing ``sensor`` of the instance at ``home`` finished a tick after
    ``since``: a tick that found nothing changed logs nothing at INFO, so the terminal cannot
    tell."""
    from dagster._core.definitions.run_request import InstigatorType
    from dagster._core.scheduler.instigation import TickStatus

    instance = dg.DagsterInstance.from_config(str(home))
    try:
        for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):
            if state.instigator_name != sensor:
                continue
            ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=5)
            if any(
                t.timestamp > since and t.status in (TickStatus.SUCCESS, TickStatus.SKIPPED)
                for t in ticks
            ):
                return True
        return False
    finally:
        # Not the context manager: its __exit__ leaks the state storage into later tests.
        instance.dispose()


def _ingest_runs(home: Path) -> int:
    """How many ingestion runs the instance at ``home`` holds."""
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        return instance.get_runs_count(dg.RunsFilter(job_name=INGEST_JOB))
    finally:
        instance.dispose()


def _skip_welcome(driver: WebDriver, evidence: Path, within: float = 15.0) -> None:
    """Skip the "Join the Dagster community" dialog if a fresh instance shows it, as a new user
    would (it covers the page; make dev's dagster.yaml turns it off with ``nux``)."""
    skip = "//button[normalize-space()='Skip']"
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        buttons = displayed(driver, skip)
        if buttons:
            buttons[0].click()
            wait_for(driver, lambda d: not displayed(d, skip), "the dialog closed", evidence, 30)
            return
        time.sleep(0.5)


def _shard_detail(driver: WebDriver, url: str, shard: str, source: str, evidence: Path) -> None:
    """Open ``shard``'s partition of qdrant_collection: its latest materialization, by a linked
    run, lists ``source`` as added and ingested."""
    driver.get(f"{url}/assets/qdrant_collection?view=partitions&partition={shard}")
    wait_for(
        driver,
        lambda d: displayed(d, LATEST_MATERIALIZATION_RUN),
        f"the run that materialized shard {shard!r}",
        evidence,
        UI_TIMEOUT,
    )
    row = wait_for(
        driver,
        lambda d: displayed(d, change_row("added", source, "ok")),
        f"{source} added by the latest materialization of shard {shard!r}",
        evidence,
        UI_TIMEOUT,
    )
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", row[0])


@pytest.mark.slow
def test_the_readme_first_hour_in_a_browser(tmp_path: Path) -> None:
    require_chromium()
    project = copy_project(tmp_path / "project")
    sample = sum(1 for p in SAMPLE_CORPUS.rglob("*") if p.is_file())
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = Settings.from_env(
        {"RAG_S3_BUCKET": SAMPLE_BUCKET, "RAG_DATA_DIR": str(project / "data")}
    )
    layout = settings.shard_layout
    sensor = sensor_names(settings.prefixes)[settings.prefixes[0]]
    known = "guides/sourdough.md"

    with ExitStack() as stack:
        # `make dev`: documents/ is created from the sample corpus and everything is ingested.
        term = stack.enter_context(make_dev(project, port, tmp_path / "terminal-0.log"))
        term.expect(r"\[dev\] created .*documents from the sample corpus", timeout=120)
        term.expect(rf"\[dev\] all {sample} known documents are ingested or recorded")
        assert sorted(p.name for p in (project / "documents").rglob("*") if p.is_file()) == sorted(
            p.name for p in SAMPLE_CORPUS.rglob("*") if p.is_file()
        )
        # `dg dev` and `dagster dev` run in the project find the same instance through .env.
        home = project.resolve() / "dagster_home"
        assert f"DAGSTER_HOME=${{DAGSTER_HOME:-{home}}}" in (project / ".env").read_text()

        # The UI: the lineage graph with every shard materialized, then one shard's metadata.
        driver = stack.enter_context(chromium())
        driver.get(url + GROUP_URL)
        for name in ASSETS:
            wait_for(
                driver,
                lambda d, name=name: displayed(d, filled_node(name, layout.count, layout.count)),
                f"the asset graph node {name!r} with every shard filled",
                tmp_path / "timeout-asset-graph",
                UI_TIMEOUT,
            )
        _skip_welcome(driver, tmp_path / "timeout-welcome")
        assert displayed(driver, graph_node("qdrant_collection"))
        assert_screenshot(driver, tmp_path / "asset-graph.png")
        shard = layout.of(document_id(SAMPLE_BUCKET, known))
        source = f"s3://{SAMPLE_BUCKET}/{known}"
        _shard_detail(driver, url, shard, source, tmp_path / "timeout-shard")
        assert_screenshot(driver, tmp_path / "shard-metadata.png")

        # The README's Python snippet, verbatim, while `make dev` runs.
        hits = _search(project, json.loads(README_QUERY))
        assert len(hits) == 3 and hits[0][1] == source, hits

        # A document dropped into documents/ is put into the bucket and ingested.
        offset = len(term.text())
        (project / "documents" / DROPPED).write_text(DROPPED_TEXT)
        dropped = f"s3://{SAMPLE_BUCKET}/{DROPPED}"
        term.expect(r"\[dev\] documents folder: 1 put, 0 deleted", timeout=120, after=offset)
        term.expect(
            rf"\[dev\] all {sample + 1} known documents are ingested or recorded", after=offset
        )
        assert _search(project, "quokka zebra protocol")[0][1] == dropped
        dropped_shard = layout.of(document_id(SAMPLE_BUCKET, DROPPED))
        _shard_detail(driver, url, dropped_shard, dropped, tmp_path / "timeout-dropped")
        assert_screenshot(driver, tmp_path / "dropped-shard-metadata.png")
        term.ctrl_c(project)
        ingest_runs = _ingest_runs(project / "dagster_home")

        # Two restarts: the document is served again, nothing is deleted or re-ingested.
        for n in (1, 2):
            started = time.time()
            with make_dev(project, port, tmp_path / f"terminal-{n}.log") as term:
                term.expect(rf"mirrors .*documents \({sample + 1} files\)", timeout=120)
                term.expect(rf"\[dev\] all {sample + 1} known documents are ingested or recorded")
                deadline = time.monotonic() + INGEST_TIMEOUT
                while not _listing_ticked_since(project / "dagster_home", sensor, started):
                    assert time.monotonic() < deadline, term.text()[-4000:]
                    time.sleep(3)
                assert _search(project, "quokka zebra protocol")[0][1] == dropped
                text = term.text()
                assert "created" not in text and "put, 0 deleted" not in text, text[-4000:]
                assert not re.search(r"deleted [1-9]", text), text[-4000:]
                term.ctrl_c(project)
            assert _ingest_runs(project / "dagster_home") == ingest_runs
