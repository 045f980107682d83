"""The Dagster UI in a real headless browser shows what an ingestion materialized.

An ingestion of three short documents runs on a persistent instance in a temporary
DAGSTER_HOME; a separate ``dagster-webserver`` reads that instance and headless Chromium
(Debian's ``chromium`` + ``chromium-driver``, driven by Selenium) checks the asset graph and the
partitions of ``qdrant_collection``. Screenshots land in the test's ``tmp_path``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from rag_ingest.partitions import DOCUMENTS_PARTITION

from rag_ingest.core.keys import partition_key
from rag_ingest_tests.browser import (
    chromium,
    dagster_webserver,
    displayed,
    png_size,
    require_chromium,
    wait_for,
)
from rag_ingest_tests.helpers import Harness, make_resources

ASSETS = ("raw_documents", "chunks", "embeddings", "qdrant_collection")
DOCUMENTS = {
    "ui/alpine-lakes.md": "# Alpine lakes\n\nCold, clear water fed by glaciers and snowmelt.",
    "ui/bread-crust.txt": "A crisp crust forms when steam escapes early in the bake.",
    "ui/tide-pools.md": "# Tide pools\n\nAnemones and crabs wait for the sea to return.",
}
# The code location's name under `dagster-webserver -m rag_ingest.definitions`.
GROUP_URL = "/locations/__repository__@rag_ingest.definitions/asset-groups/ingestion"
UI_TIMEOUT = 180.0  # first load of the React app can take tens of seconds on 2 busy cores


def _ingest(home: Path, data: Path, endpoint: str, bucket: str) -> list[str]:
    """One sensor tick and its runs, recorded in the instance at ``home``."""
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        harness = Harness(instance, make_resources(endpoint, bucket, data))
        runs = harness.sync()
        assert runs and all(run.success for run in runs)
        keys = sorted(instance.get_dynamic_partitions(DOCUMENTS_PARTITION))
        assert len(harness.points()) >= len(DOCUMENTS)
    finally:
        # Not the context manager: its __exit__ leaks the state storage into later tests.
        instance.dispose()
    assert keys == sorted(partition_key(bucket, key) for key in DOCUMENTS)
    return keys


def _webserver_env(home: Path, data: Path, endpoint: str, bucket: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "DAGSTER_"))}
    env.update(
        DAGSTER_HOME=str(home),
        RAG_S3_BUCKET=bucket,
        RAG_S3_ENDPOINT_URL=endpoint,
        RAG_DATA_DIR=str(data),
        AWS_ACCESS_KEY_ID=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        AWS_SECRET_ACCESS_KEY=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
        AWS_DEFAULT_REGION="us-east-1",
        HF_HUB_OFFLINE="1",
    )
    return env


def _graph_node(name: str) -> str:
    """XPath of the asset graph's node for ``name`` (nodes are SVG foreignObjects)."""
    label = f"[@data-tooltip='{name}'][normalize-space()='{name}']"
    return f"//*[local-name()='foreignObject'][.//*{label}]"


def _filled_node(name: str, partitions: int) -> str:
    """XPath of ``name``'s graph node once it shows every one of ``partitions`` materialized."""
    return (
        _graph_node(name)
        + f"[.//a[@href='/assets/{name}?view=partitions'][normalize-space()='100% filled']]"
        + f"[.//*[normalize-space()='{partitions} partitions']]"
    )


def _materialized_row(key: str) -> str:
    """XPath of the partition list's row for ``key`` with its green (materialized) status dot."""
    return (
        f"//div[@data-tooltip='{key}'][.//div[@title='{key}']]"
        "/following-sibling::div[contains(@style, '--color-accent-green')]"
    )


def _assert_screenshot(driver: Any, path: Path) -> None:
    assert driver.save_screenshot(str(path)), f"no screenshot written to {path}"
    width, height = png_size(path)
    assert width >= 800 and height >= 600, (path, width, height)
    assert path.stat().st_size > 20_000, f"{path} is suspiciously small (a blank page?)"


@pytest.mark.slow
def test_the_ui_shows_the_asset_graph_and_materialized_partitions(
    tmp_path: Path, s3_endpoint: str, s3_client: Any, bucket: str
) -> None:
    require_chromium()
    for key, text in DOCUMENTS.items():
        s3_client.put_object(Bucket=bucket, Key=key, Body=text.encode())
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\nnux:\n  enabled: false\n")
    data = tmp_path / "data"
    keys = _ingest(home, data, s3_endpoint, bucket)

    env = _webserver_env(home, data, s3_endpoint, bucket)
    with dagster_webserver(env, tmp_path / "webserver.log") as server, chromium() as driver:
        # The ingestion group's lineage graph: the four assets, each with all partitions filled.
        driver.get(server.url + GROUP_URL)
        for name in ASSETS:
            wait_for(
                driver,
                lambda d, name=name: displayed(d, _graph_node(name)),
                f"the asset graph node {name!r}",
                tmp_path / "timeout-asset-graph",
                UI_TIMEOUT,
            )
        for name in ASSETS:
            wait_for(
                driver,
                lambda d, name=name: displayed(d, _filled_node(name, len(keys))),
                f"{name!r} with {len(keys)} partitions, 100% filled",
                tmp_path / "timeout-asset-graph",
                UI_TIMEOUT,
            )
        _assert_screenshot(driver, tmp_path / "asset-graph.png")

        # qdrant_collection's partitions: every ingested document materialized, none missing.
        driver.get(f"{server.url}/assets/qdrant_collection?view=partitions")
        for label in (f"Materialized ({len(keys)})", "Missing (0)", "Failed (0)"):
            wait_for(
                driver,
                lambda d, label=label: displayed(d, f"//label[normalize-space()='{label}']"),
                f"the status filter {label!r}",
                tmp_path / "timeout-partitions",
                UI_TIMEOUT,
            )
        for key in keys:
            wait_for(
                driver,
                lambda d, key=key: displayed(d, _materialized_row(key)),
                f"partition {key!r} marked materialized",
                tmp_path / "timeout-partitions",
                UI_TIMEOUT,
            )
        _assert_screenshot(driver, tmp_path / "qdrant_collection-partitions.png")

        # One partition's detail: materialized from its S3 object by a run that is linked.
        doc = next(k for k in DOCUMENTS if partition_key(bucket, k) == keys[0])
        displayed(driver, f"//div[@title='{keys[0]}']/span")[0].click()
        wait_for(
            driver,
            lambda d: displayed(d, f"//*[normalize-space()='s3://{bucket}/{doc}']"),
            f"the source metadata of partition {keys[0]!r}",
            tmp_path / "timeout-partition-detail",
            UI_TIMEOUT,
        )
        run_link = wait_for(
            driver,
            lambda d: displayed(
                d,
                "//*[normalize-space()='Latest materialization']"
                "/following::a[starts-with(@href, '/runs/')]",
            ),
            f"the run that materialized partition {keys[0]!r}",
            tmp_path / "timeout-partition-detail",
            UI_TIMEOUT,
        )
        assert run_link
        _assert_screenshot(driver, tmp_path / "qdrant_collection-partition.png")
    assert server.process.poll() is not None
