"""The Dagster UI in a real headless browser shows what an ingestion materialized.

An ingestion of three short documents (one sensor tick and its runs) runs on a persistent
instance in a temporary DAGSTER_HOME; a separate ``dagster-webserver`` reads that instance with
the same shard count, and headless Chromium (Debian's ``chromium`` + ``chromium-driver``,
driven by Selenium) checks the asset graph and the shard partitions of ``qdrant_collection``:
the shards the runs covered are materialized, the others missing. Screenshots land in the
test's ``tmp_path``; how long each page took to render is printed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TypeVar

import dagster as dg
import pytest

from rag_ingest.core.config import Settings
from rag_ingest.core.keys import document_id
from rag_ingest.testing.browser import (
    LATEST_MATERIALIZATION_RUN,
    assert_screenshot,
    change_row,
    chromium,
    dagster_webserver,
    displayed,
    filled_node,
    graph_node,
    materialized_row,
    partition_row,
    require_chromium,
    wait_for,
)
from rag_ingest.testing.harness import Harness, make_resources, make_settings, shard_range

ASSETS = ("raw_documents", "chunks", "embeddings", "qdrant_collection")
DOCUMENTS = {
    "ui/alpine-lakes.md": "# Alpine lakes\n\nCold, clear water fed by glaciers and snowmelt.",
    "ui/bread-crust.txt": "A crisp crust forms when steam escapes early in the bake.",
    "ui/tide-pools.md": "# Tide pools\n\nAnemones and crabs wait for the sea to return.",
}
# The code location's name under `dagster-webserver -m rag_ingest.definitions`.
GROUP_URL = "/locations/__repository__@rag_ingest.definitions/asset-groups/ingestion"
UI_TIMEOUT = 180.0  # first load of the React app can take tens of seconds on 2 busy cores
T = TypeVar("T")


def _ingest(home: Path, settings: Settings, endpoint: str) -> list[str]:
    """One sensor tick and its runs, recorded in the instance at ``home``; returns the shards
    the runs materialized, in key order."""
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        harness = Harness(instance, settings, make_resources(endpoint, settings))
        runs = harness.sync()
        assert runs and all(run.success for run in runs)
        assert len(harness.points()) >= len(DOCUMENTS)
        materialized = instance.get_materialized_partitions(dg.AssetKey("qdrant_collection"))
    finally:
        # Not the context manager: its __exit__ leaks the state storage into later tests.
        instance.dispose()
    layout = settings.shard_layout
    covered = {shard for run in runs for shard in layout.span(*shard_range(run))}
    assert materialized == covered
    assert {layout.of(document_id(settings.bucket, key)) for key in DOCUMENTS} <= covered
    return sorted(covered, key=layout.index)


def _webserver_env(home: Path, settings: Settings, endpoint: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "DAGSTER_"))}
    env.update(
        DAGSTER_HOME=str(home),
        RAG_S3_BUCKET=settings.bucket,
        RAG_S3_ENDPOINT_URL=endpoint,
        RAG_DATA_DIR=str(settings.data_dir),
        # The same partitions as the ingestion: the shard count shapes the definitions.
        RAG_SHARDS=str(settings.shards),
        AWS_ACCESS_KEY_ID=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        AWS_SECRET_ACCESS_KEY=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
        AWS_DEFAULT_REGION="us-east-1",
        HF_HUB_OFFLINE="1",
    )
    return env


def _timed(timings: dict[str, float], what: str, step: Callable[[], T]) -> T:
    """Run ``step`` and print (not assert) how long it took."""
    started = time.monotonic()
    result = step()
    timings[what] = time.monotonic() - started
    print(f"[ui timing] {what}: {timings[what]:.1f}s", flush=True)
    return result


@pytest.mark.slow
def test_the_ui_shows_the_asset_graph_and_materialized_shards(
    tmp_path: Path, s3_endpoint: str, s3_client: Any, bucket: str
) -> None:
    require_chromium()
    for key, text in DOCUMENTS.items():
        s3_client.put_object(Bucket=bucket, Key=key, Body=text.encode())
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\nnux:\n  enabled: false\n")
    settings = make_settings(bucket, tmp_path / "data")
    layout = settings.shard_layout
    shards = _ingest(home, settings, s3_endpoint)
    missing = sorted(set(layout.keys()) - set(shards), key=layout.index)
    timings: dict[str, float] = {}

    env = _webserver_env(home, settings, s3_endpoint)
    with ExitStack() as stack:
        server = _timed(
            timings,
            "webserver up",
            lambda: stack.enter_context(dagster_webserver(env, tmp_path / "webserver.log")),
        )
        driver = stack.enter_context(chromium())

        # The ingestion group's lineage graph: the four assets, each with the shards the runs
        # covered filled, out of the fixed shard partitions.
        def graph() -> None:
            driver.get(server.url + GROUP_URL)
            for name in ASSETS:
                wait_for(
                    driver,
                    lambda d, name=name: displayed(d, graph_node(name)),
                    f"the asset graph node {name!r}",
                    tmp_path / "timeout-asset-graph",
                    UI_TIMEOUT,
                )

        def graph_filled() -> None:
            for name in ASSETS:
                wait_for(
                    driver,
                    lambda d, name=name: displayed(d, filled_node(name, len(shards), layout.count)),
                    f"{name!r} with {len(shards)} of {layout.count} partitions filled",
                    tmp_path / "timeout-asset-graph",
                    UI_TIMEOUT,
                )

        _timed(timings, "asset graph: nodes", graph)
        _timed(timings, "asset graph: partition fill", graph_filled)
        assert_screenshot(driver, tmp_path / "asset-graph.png")

        # qdrant_collection's partitions: the covered shards materialized, the others missing.
        def partitions() -> None:
            driver.get(f"{server.url}/assets/qdrant_collection?view=partitions")
            for label in (
                f"Materialized ({len(shards)})",
                f"Missing ({len(missing)})",
                "Failed (0)",
            ):
                wait_for(
                    driver,
                    lambda d, label=label: displayed(d, f"//label[normalize-space()='{label}']"),
                    f"the status filter {label!r}",
                    tmp_path / "timeout-partitions",
                    UI_TIMEOUT,
                )
            for key in shards:
                wait_for(
                    driver,
                    lambda d, key=key: displayed(d, materialized_row(key)),
                    f"shard {key!r} marked materialized",
                    tmp_path / "timeout-partitions",
                    UI_TIMEOUT,
                )

        _timed(timings, "qdrant_collection partitions", partitions)
        for key in missing:
            assert displayed(driver, partition_row(key)), f"shard {key!r} is not listed"
            assert not displayed(driver, materialized_row(key)), f"{key!r} shown materialized"
        assert_screenshot(driver, tmp_path / "qdrant_collection-partitions.png")

        # One shard's detail: what its latest materialization changed (the document's S3
        # object), by a run that is linked.
        doc = next(iter(DOCUMENTS))
        shard = layout.of(document_id(bucket, doc))
        source = f"s3://{bucket}/{doc}"

        def detail() -> None:
            displayed(driver, f"{partition_row(shard)}//div[@title='{shard}']")[0].click()
            wait_for(
                driver,
                lambda d: displayed(d, LATEST_MATERIALIZATION_RUN),
                f"the run that materialized shard {shard!r}",
                tmp_path / "timeout-partition-detail",
                UI_TIMEOUT,
            )
            # The "changes" metadata: a Markdown table, rendered inline while it is short.
            row = wait_for(
                driver,
                lambda d: displayed(d, change_row("added", source, "ok")),
                f"{source} added by the latest materialization of shard {shard!r}",
                tmp_path / "timeout-partition-detail",
                UI_TIMEOUT,
            )
            driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", row[0])

        _timed(timings, "shard detail", detail)
        assert_screenshot(driver, tmp_path / "qdrant_collection-partition.png")
    assert server.process.poll() is not None
    print(
        "[ui timing] total: "
        + ", ".join(f"{what} {seconds:.1f}s" for what, seconds in timings.items()),
        flush=True,
    )
