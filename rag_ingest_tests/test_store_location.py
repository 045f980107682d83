"""One location per deployment (review H2): the location that sensors, planning and health
look targets up under (``VectorStoreResource.location``) is the one the writer registers them
under (the opened store's ``location``), however the URL or folder is spelled."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from rag_ingest.core.vectorstore import VectorStore, open_vector_store
from rag_ingest.core.vectorstore.qdrant import QdrantClientStore
from rag_ingest.resources import VectorStoreResource
from rag_ingest.testing.harness import Harness, make_resources, make_settings
from rag_ingest_tests.sync_oracle import text

pytestmark = pytest.mark.filterwarnings("ignore:Failed to obtain server version")

URL_SPELLINGS = {
    "http://qdrant:6333": "server:http://qdrant:6333",
    "http://qdrant:6333/": "server:http://qdrant:6333",
    "http://Qdrant.Internal:6333": "server:http://qdrant.internal:6333",
    "HTTP://QDRANT:6333/": "server:http://qdrant:6333",
    "https://user:secret@qdrant:6333": "server:https://qdrant:6333",
    "https://user:secret@Qdrant:6333/?api-key=x#frag": "server:https://qdrant:6333",
    "https://qdrant.example.com/prefix/": "server:https://qdrant.example.com/prefix",
    "http://qdrant": "server:http://qdrant",
}


@pytest.mark.parametrize("url", sorted(URL_SPELLINGS))
def test_server_resource_and_store_name_one_location(url: str) -> None:
    resource = VectorStoreResource(engine="server", url=url)
    # qdrant-client connects lazily: the store object exists without a reachable server.
    with open_vector_store("server", url=url, api_key="k") as store:
        assert resource.location == store.location == URL_SPELLINGS[url]
    assert "secret" not in resource.location and "api-key" not in resource.location


SPELLINGS = ["absolute", "trailing-slash", "relative", "dotdot", "symlink"]


@pytest.mark.parametrize("engine", ["edge", "local"])
@pytest.mark.parametrize("spelling", SPELLINGS)
def test_folder_resource_and_store_name_one_location(
    engine: str, spelling: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = tmp_path / "real" / "store"
    real.mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    path = {
        "absolute": str(real),
        "trailing-slash": f"{real}/",
        "relative": "real/store",
        "dotdot": "real/../real/store",
        "symlink": str(tmp_path / "link" / "store"),
    }[spelling]
    resource = VectorStoreResource(engine=engine, path=path, lock_wait_seconds=2)
    with resource.open() as store:
        assert resource.location == store.location == f"{engine}:{os.path.realpath(real)}"


SERVER_URL = "https://reader:pw@Qdrant.Internal:6333/"


@pytest.fixture()
def server_harness(
    s3_endpoint: str, s3_client: Any, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Harness]:
    """The harness with ``engine="server"`` and an awkwardly spelled URL. No Qdrant server runs
    here, so the points go to qdrant-client's local mode while the store names itself exactly
    as ``QdrantClientStore(url=SERVER_URL)`` does: the writer registers targets under that."""
    server_side = open_vector_store("server", url=SERVER_URL).location
    folder = tmp_path / "server-points"

    def fake_server(engine: str, **kwargs: Any) -> VectorStore:
        assert engine == "server" and kwargs["url"] == SERVER_URL
        store = QdrantClientStore(path=folder, lock_wait_seconds=5)
        store._location = server_side  # pyright: ignore[reportPrivateUsage]
        return store

    monkeypatch.setattr("rag_ingest.resources.vectors.open_vector_store", fake_server)
    rng = random.Random(7)
    for i in range(5):
        s3_client.put_object(Bucket=bucket, Key=f"s/{i}.md", Body=text(rng, 2).encode())
    settings = make_settings(bucket, tmp_path)
    resources = make_resources(s3_endpoint, settings)
    resources["vectors"] = VectorStoreResource(engine="server", url=SERVER_URL)
    with dg.instance_for_test() as instance:
        yield Harness(instance, settings, resources)


def test_a_synced_server_deployment_plans_no_more_work(server_harness: Harness) -> None:
    first = server_harness.sync()
    assert first and all(run.success for run in first)
    # The sensor looks the target up where the writer registered it: nothing left to do.
    again = server_harness.tick()
    assert not again.run_requests, again
    with server_harness.store() as store:
        target = server_harness.registry.target(
            store.location, server_harness.settings.physical_collection
        )
    assert target is not None and target.state == "live"
