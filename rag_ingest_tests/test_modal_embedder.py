"""ModalEmbedder against an injected fake of the looked-up class (Modal's cloud is unreachable)."""

import hashlib
import os
import time
from pathlib import Path
from typing import Any

import dagster as dg
import modal
import modal.exception
import numpy as np
import pytest

from rag_ingest.core.keys import partition_key
from rag_ingest.modal_embedder import ModalEmbedder, ModalSetupError
from rag_ingest.resources import QdrantResource
from rag_ingest_tests.helpers import Harness, make_resources

DOCS = {
    "a.md": "# Alpha\n\n" + "Alpha text about rivers and lakes. " * 40,
    "b.md": "# Beta\n\nBeta text about mountains.",
    "c.txt": "Gamma text about deserts and dunes. " * 60,
}


def fake_vector(text: str) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")
    vector = np.random.default_rng(seed).standard_normal(384).astype(np.float32)
    return vector / np.linalg.norm(vector)


class FakeModal:
    """Stands in for ``modal.Cls.from_name(...)``: hydrate, instantiate, ``.embed.map``."""

    def __init__(
        self,
        fail_first: int = 0,
        fail_always: bool = False,
        bad_shape: bool = False,
        hydrate_error: BaseException | None = None,
        hydrate_delay: float = 0.0,
    ) -> None:
        self.fail_first = fail_first
        self.fail_always = fail_always
        self.bad_shape = bad_shape
        self.hydrate_error = hydrate_error
        self.hydrate_delay = hydrate_delay
        self.calls: list[int] = []
        self.embed = self

    def hydrate(self) -> "FakeModal":
        time.sleep(self.hydrate_delay)
        if self.hydrate_error:
            raise self.hydrate_error
        return self

    def __call__(self, **_params: Any) -> "FakeModal":
        return self

    def map(
        self, inputs: list[list[str]], order_outputs: bool = True, return_exceptions: bool = False
    ) -> list[Any]:
        assert order_outputs and return_exceptions
        outputs: list[Any] = []
        for batch in inputs:
            self.calls.append(len(batch))
            if self.fail_always or (self.fail_first and len(self.calls) <= self.fail_first):
                outputs.append(modal.exception.RemoteError("container lost"))
            elif self.bad_shape:
                outputs.append((np.zeros((len(batch), 12), np.float32), 0.1))
            else:
                outputs.append((np.stack([fake_vector(t) for t in batch]), 0.25))
        # Modal completes out of order; order_outputs=True hands results back in input order.
        return outputs


@pytest.fixture()
def modal_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODAL_TOKEN_ID", "ak-test")
    monkeypatch.setenv("MODAL_TOKEN_SECRET", "as-test")


def _install(monkeypatch: pytest.MonkeyPatch, fake: FakeModal) -> list[tuple[Any, ...]]:
    looked_up: list[tuple[Any, ...]] = []

    def from_name(app: str, name: str, **kwargs: Any) -> FakeModal:
        looked_up.append((app, name, kwargs.get("environment_name")))
        return fake

    monkeypatch.setattr(modal.Cls, "from_name", from_name)
    return looked_up


@pytest.fixture()
def harness(s3_endpoint: str, s3_client: Any, bucket: str, tmp_path: Path) -> Any:
    for key, text in DOCS.items():
        s3_client.put_object(Bucket=bucket, Key=key, Body=text.encode())
    with dg.instance_for_test() as instance:
        resources = make_resources(s3_endpoint, bucket, tmp_path)
        resources["embedder"] = ModalEmbedder(
            batch_size=2, max_in_flight=3, environment_name="staging"
        )
        yield Harness(instance, resources)


def _points(h: Harness) -> list[Any]:
    qdrant = h.resources["qdrant"]
    assert isinstance(qdrant, QdrantResource)
    with qdrant.get_client() as client:
        if not client.collection_exists("documents"):
            return []
        return client.scroll("documents", limit=1000, with_vectors=True)[0]


def _embedding_metadata(h: Harness) -> dict[str, Any]:
    event = h.instance.get_latest_materialization_event(dg.AssetKey("embeddings"))
    assert event is not None and event.asset_materialization is not None
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


@pytest.mark.usefixtures("modal_env")
def test_batches_fan_out_in_order_and_are_priced(harness: Harness, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    fake = FakeModal()
    looked_up = _install(monkeypatch, fake)
    runs = harness.sync()
    assert [r.success for r in runs] == [True]
    assert looked_up[0] == ("rag-ingest-embedder", "Embedder", "staging")
    points = _points(harness)
    assert points and all(
        np.allclose(p.vector, fake_vector(p.payload["page_content"]), atol=1e-6) for p in points
    )
    meta = _embedding_metadata(harness)
    texts = len(points)
    assert meta["run_texts"] == texts and meta["run_batches"] == -(-texts // 2)
    assert meta["run_gpu_seconds"] == pytest.approx(0.25 * meta["run_batches"])
    assert meta["run_cost_usd"] == pytest.approx(0.25 * meta["run_batches"] * 0.000306, rel=1e-3)
    assert meta["backend"] == "ModalEmbedder" and meta["model"].endswith("all-MiniLM-L6-v2")
    assert all(size <= 2 for size in fake.calls)


@pytest.mark.usefixtures("modal_env")
def test_a_failed_batch_is_retried_and_the_run_succeeds(harness: Harness, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    fake = FakeModal(fail_first=1)
    _install(monkeypatch, fake)
    assert [r.success for r in harness.sync()] == [True]
    meta = _embedding_metadata(harness)
    assert len(fake.calls) == meta["run_batches"] + 1  # exactly one batch sent twice
    assert len(_points(harness)) == meta["run_texts"]


@pytest.mark.usefixtures("modal_env")
@pytest.mark.parametrize(
    "fake",
    [FakeModal(fail_always=True), FakeModal(bad_shape=True)],
    ids=["permanent-failure", "wrong-shape"],
)
def test_a_batch_that_keeps_failing_fails_the_run_naming_partitions(
    harness: Harness,
    monkeypatch,
    fake: FakeModal,  # type: ignore[no-untyped-def]
) -> None:
    _install(monkeypatch, fake)
    (run,) = harness.sync()
    assert not run.success
    failure = next(e for e in run.all_events if e.event_type_value == "STEP_FAILURE")
    assert failure.step_key == "embeddings"
    message = str(failure.event_specific_data.error)  # type: ignore[union-attr]
    for key in DOCS:
        assert partition_key(harness.resources["s3_source"].bucket, key) in message  # type: ignore[attr-defined]
    assert "3 attempts" in message
    assert _points(harness) == []  # nothing half-written into Qdrant


def test_missing_credentials_fail_fast_and_say_what_to_set(harness: Harness, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("MODAL_TOKEN_ID", raising=False)
    monkeypatch.delenv("MODAL_TOKEN_SECRET", raising=False)
    monkeypatch.setattr("modal.config.config.get", lambda key, *a, **k: None)
    started = time.perf_counter()
    with pytest.raises(ModalSetupError) as info:
        ModalEmbedder().setup_for_execution(dg.build_init_resource_context())
    assert time.perf_counter() - started < 1.0
    assert "MODAL_TOKEN_ID" in str(info.value) and "modal token set" in str(info.value)
    assert "\n" not in str(info.value)
    started = time.perf_counter()
    (run,) = harness.sync()
    assert not run.success
    assert not run.get_asset_materialization_events()  # failed before any work
    init = next(e for e in run.all_events if e.event_type_value == "RESOURCE_INIT_FAILURE")
    assert "MODAL_TOKEN_ID" in str(init.event_specific_data.error)  # type: ignore[union-attr]


@pytest.mark.usefixtures("modal_env")
def test_app_not_deployed_says_how_to_deploy(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    _install(monkeypatch, FakeModal(hydrate_error=modal.exception.NotFoundError("no app")))
    with pytest.raises(ModalSetupError, match="deploy it with: modal deploy -m modal_functions"):
        ModalEmbedder().setup_for_execution(dg.build_init_resource_context())


@pytest.mark.usefixtures("modal_env")
def test_unreachable_modal_is_bounded_by_the_lookup_timeout(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    _install(monkeypatch, FakeModal(hydrate_delay=5.0))
    started = time.perf_counter()
    with pytest.raises(ModalSetupError, match="could not reach Modal within"):
        ModalEmbedder(lookup_timeout_seconds=0.5).setup_for_execution(
            dg.build_init_resource_context()
        )
    assert time.perf_counter() - started < 2.0


@pytest.mark.modal
@pytest.mark.skipif(not os.environ.get("MODAL_TOKEN_ID"), reason="needs a Modal token")
def test_the_really_deployed_function_matches_the_local_model() -> None:
    from rag_ingest.embedders import LocalEmbedder

    texts = ["Glaciers carve U-shaped valleys.", "Bees dance to share directions."]
    resource = ModalEmbedder(environment_name=os.environ.get("MODAL_ENVIRONMENT"))
    resource.setup_for_execution(dg.build_init_resource_context())
    vectors, stats = resource.embed(texts)
    np.testing.assert_allclose(vectors, LocalEmbedder().embed(texts)[0], atol=1e-3)
    assert stats.gpu_seconds > 0 and stats.cost_usd > 0
