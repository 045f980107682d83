"""UI with the large state: the asset graph and ``qdrant_collection``'s partitions page in
headless Chromium, against the GPU-speed scenario's instance (every shard materialized by its
runs), with the tests' browser helpers (``rag_ingest.testing.browser``: Debian's chromium and
chromedriver driven by Selenium, ``dagster-webserver`` in a process of its own).

Each page is loaded once to warm the webserver and the browser cache (the React bundle's first
load costs tens of seconds on this machine and is not what a user waits for twice), then
``--ui-loads`` more times; a load is timed from ``driver.get`` until the page shows what it
must: the four asset nodes with their partitions filled, and the status filter with the count
of materialized shards.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ASSETS = ("raw_documents", "chunks", "embeddings", "qdrant_collection")
GROUP_URL = "/locations/__repository__@rag_ingest.definitions/asset-groups/ingestion"
TIMEOUT = 180.0


@dataclass
class UiResult:
    materialized: int
    shards: int
    server_up_seconds: float = 0.0
    graph_first: float = float("nan")
    partitions_first: float = float("nan")
    graph: list[float] = field(default_factory=list)
    partitions: list[float] = field(default_factory=list)
    error: str = ""


def _node(name: str, percent: int, shards: int) -> str:
    label = f"[@data-tooltip='{name}'][normalize-space()='{name}']"
    return (
        f"//*[local-name()='foreignObject'][.//*{label}]"
        f"[.//a[@href='/assets/{name}?view=partitions'][normalize-space()='{percent}% filled']]"
        f"[.//*[normalize-space()='{shards} partitions']]"
    )


def _timed_load(driver: Any, url: str, xpaths: list[str]) -> float:
    from selenium.webdriver.support.ui import WebDriverWait

    from rag_ingest.testing.browser import displayed

    started = time.perf_counter()
    driver.get(url)
    for xpath in xpaths:
        WebDriverWait(driver, TIMEOUT, poll_frequency=0.05).until(
            lambda d, xpath=xpath: displayed(d, xpath)
        )
    return time.perf_counter() - started


def run_ui(
    home: Path,
    settings: Any,
    endpoint: str,
    workdir: Path,
    loads: int = 3,
    say: Callable[[str], None] = print,
) -> UiResult:
    import dagster as dg
    from selenium.common.exceptions import TimeoutException

    from rag_ingest.testing.browser import chromium, dagster_webserver

    instance = dg.DagsterInstance.from_config(str(home))
    try:
        done = instance.get_materialized_partitions(dg.AssetKey("qdrant_collection"))
    finally:
        instance.dispose()
    result = UiResult(len(done), settings.shards)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "DAGSTER_"))}
    env |= {
        "DAGSTER_HOME": str(home), "RAG_S3_BUCKET": settings.bucket,
        "RAG_S3_ENDPOINT_URL": endpoint, "RAG_DATA_DIR": str(settings.data_dir),
        "RAG_SHARDS": str(settings.shards), "HF_HUB_OFFLINE": "1",
    }  # fmt: skip
    percent = len(done) * 100 // settings.shards
    graph = [_node(name, percent, settings.shards) for name in ASSETS]
    page = [f"//label[normalize-space()='Materialized ({len(done)})']"]
    workdir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        started = time.perf_counter()
        server = stack.enter_context(dagster_webserver(env, workdir / "webserver.log"))
        result.server_up_seconds = time.perf_counter() - started
        driver = stack.enter_context(chromium())
        graph_url = server.url + GROUP_URL
        page_url = f"{server.url}/assets/qdrant_collection?view=partitions"
        try:
            result.graph_first = _timed_load(driver, graph_url, graph)
            result.partitions_first = _timed_load(driver, page_url, page)
            for _ in range(loads):
                result.graph.append(_timed_load(driver, graph_url, graph))
                result.partitions.append(_timed_load(driver, page_url, page))
        except TimeoutException:
            driver.save_screenshot(str(workdir / "timeout.png"))
            result.error = f"a page did not show what it must within {TIMEOUT:.0f}s"
    say(f"ui: graph {result.graph}, partitions {result.partitions} {result.error}")
    return result
