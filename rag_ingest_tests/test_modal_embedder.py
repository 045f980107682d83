"""ModalEmbedder against an injected fake of the looked-up class (Modal's cloud is unreachable)."""

import os
import time
from pathlib import Path
from typing import Any

import dagster as dg
import modal
import modal.exception
import numpy as np
import pytest

from rag_ingest.core.modal_names import APP_NAME, CLASS_NAME
from rag_ingest.resources.embedders import EmbeddingError
from rag_ingest.resources.modal import ModalEmbedder, ModalSetupError
from rag_ingest.testing.harness import Harness, make_resources, make_settings
from rag_ingest_tests.modal_fakes import FakeModal, fake_vector, install, set_modal_token

DOCS = {
    "a.md": "# Alpha\n\n" + "Alpha text about rivers and lakes. " * 40,
    "b.md": "# Beta\n\nBeta text about mountains.",
    "c.txt": "Gamma text about deserts and dunes. " * 60,
}


@pytest.fixture()
def modal_env(monkeypatch: pytest.MonkeyPatch) -> None:
    set_modal_token(monkeypatch)


@pytest.fixture()
def harness(s3_endpoint: str, s3_client: Any, bucket: str, tmp_path: Path) -> Any:
    for key, text in DOCS.items():
        s3_client.put_object(Bucket=bucket, Key=key, Body=text.encode())
    # A full reconcile on the first tick puts every shard into one run.
    settings = make_settings(bucket, tmp_path, embedder="modal", full_reconcile_hours=24)
    embedder = ModalEmbedder(batch_size=2, retry_delay_seconds=0.0, environment_name="staging")
    with dg.instance_for_test() as instance:
        harness = Harness(instance, settings, make_resources(s3_endpoint, settings, embedder))
        harness.full_reconcile_due()
        yield harness


def _points(h: Harness) -> list[Any]:
    return h.points()


def _embedding_metadata(h: Harness) -> dict[str, Any]:
    event = h.instance.get_latest_materialization_event(dg.AssetKey("embeddings"))
    assert event is not None and event.asset_materialization is not None
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


@pytest.mark.usefixtures("modal_env")
def test_batches_fan_out_in_order_and_are_priced(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeModal()
    looked_up = install(monkeypatch, fake)
    runs = harness.sync()
    assert [r.success for r in runs] == [True]
    assert looked_up == [("rag-ingest-embedder", "EmbeddingModel", "staging")]
    assert (APP_NAME, CLASS_NAME) == ("rag-ingest-embedder", "EmbeddingModel")
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
    # One window of texts, so one embed call: all its batches went out in a single .map.
    assert [len(call) for call in fake.map_calls] == [meta["run_batches"]]
    assert all(len(batch) <= 2 for batch in fake.map_calls[0])
    assert fake.params == [{"batch_size": 2}]


@pytest.mark.usefixtures("modal_env")
def test_a_failed_batch_is_retried_and_the_run_succeeds(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeModal(fail_first=1)
    install(monkeypatch, fake)
    assert [r.success for r in harness.sync()] == [True]
    meta = _embedding_metadata(harness)
    # The first .map carries every batch; the second only the one that failed.
    assert [len(call) for call in fake.map_calls] == [meta["run_batches"], 1]
    assert fake.map_calls[1] == fake.map_calls[0][:1]
    assert fake.runs.total() == meta["run_batches"] + 1  # exactly one batch sent twice
    assert len(_points(harness)) == meta["run_texts"]


@pytest.mark.usefixtures("modal_env")
@pytest.mark.parametrize("mode", ["permanent-failure", "wrong-shape"])
def test_a_batch_that_keeps_failing_fails_the_run_naming_documents(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    fake = FakeModal(fail_always=mode == "permanent-failure", bad_shape=mode == "wrong-shape")
    install(monkeypatch, fake)
    (run,) = harness.sync()
    assert not run.success
    failure = next(e for e in run.all_events if e.event_type_value == "STEP_FAILURE")
    assert failure.step_key == "embeddings"
    message = str(failure.event_specific_data.error)  # type: ignore[union-attr]
    for key in DOCS:
        assert f"s3://{harness.settings.bucket}/{key}" in message
    assert "3 attempts" in message
    assert set(fake.runs.values()) == {3}  # every batch ran 1 + max_batch_retries times
    assert _points(harness) == []  # nothing half-written into Qdrant


def test_missing_credentials_fail_fast_and_say_what_to_set(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MODAL_TOKEN_ID", raising=False)
    monkeypatch.delenv("MODAL_TOKEN_SECRET", raising=False)
    monkeypatch.setattr("modal.config.config.get", lambda key, *a, **k: None)
    started = time.perf_counter()
    with pytest.raises(ModalSetupError) as info:
        ModalEmbedder().setup_for_execution(dg.build_init_resource_context())
    assert time.perf_counter() - started < 1.0
    assert "MODAL_TOKEN_ID" in str(info.value) and "modal token set" in str(info.value)
    assert "\n" not in str(info.value)
    (run,) = harness.sync()
    assert not run.success
    assert not run.get_asset_materialization_events()  # failed before any work
    init = next(e for e in run.all_events if e.event_type_value == "RESOURCE_INIT_FAILURE")
    assert "MODAL_TOKEN_ID" in str(init.event_specific_data.error)  # type: ignore[union-attr]


@pytest.mark.usefixtures("modal_env")
def test_app_not_deployed_says_how_to_deploy(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, FakeModal(hydrate_error=modal.exception.NotFoundError("no app")))
    with pytest.raises(ModalSetupError, match="deploy it with: modal deploy -m modal_functions"):
        ModalEmbedder().setup_for_execution(dg.build_init_resource_context())


@pytest.mark.usefixtures("modal_env")
def test_unreachable_modal_is_bounded_by_the_lookup_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    install(monkeypatch, FakeModal(hydrate_delay=5.0))
    started = time.perf_counter()
    with pytest.raises(ModalSetupError, match="could not reach Modal within"):
        ModalEmbedder(lookup_timeout_seconds=0.5).setup_for_execution(
            dg.build_init_resource_context()
        )
    assert time.perf_counter() - started < 2.0


TEXTS = [f"text number {n}" for n in range(11)]  # batches of 2: five pairs and a single
SPANS = [(0, 2), (2, 4), (4, 6), (6, 8), (8, 10), (10, 11)]


def _embedder(**config: Any) -> ModalEmbedder:
    return ModalEmbedder(**{"batch_size": 2, "retry_delay_seconds": 0.0, **config})


@pytest.mark.usefixtures("modal_env")
def test_one_map_call_carries_every_batch_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeModal()
    install(monkeypatch, fake)
    texts = [f"chunk {n}" for n in range(1001)]  # 501 batches: more than any in-flight cap
    vectors, stats = _embedder().embed(texts)
    assert len(fake.map_calls) == 1 and len(fake.map_calls[0]) == 501
    assert fake.map_calls[0] == [texts[i : i + 2] for i in range(0, 1001, 2)]
    np.testing.assert_array_equal(vectors, np.stack([fake_vector(t) for t in texts]))
    assert (stats.texts, stats.batches) == (1001, 501)
    assert stats.gpu_seconds == pytest.approx(0.25 * 501)
    assert stats.cost_usd == pytest.approx(0.25 * 501 * 0.000306)


@pytest.mark.usefixtures("modal_env")
def test_only_the_failed_batches_are_sent_again(monkeypatch: pytest.MonkeyPatch) -> None:
    failing = {tuple(TEXTS[2:4]), tuple(TEXTS[6:8])}
    fake = FakeModal(fail=lambda batch, run: tuple(batch) in failing and run == 1)
    install(monkeypatch, fake)
    vectors, stats = _embedder().embed(TEXTS)
    assert [len(call) for call in fake.map_calls] == [6, 2]
    assert fake.map_calls[1] == [TEXTS[2:4], TEXTS[6:8]]
    np.testing.assert_array_equal(vectors, np.stack([fake_vector(t) for t in TEXTS]))
    # Failed runs report no GPU time; the six successful ones do.
    assert stats.batches == 6 and stats.gpu_seconds == pytest.approx(0.25 * 6)


@pytest.mark.usefixtures("modal_env")
@pytest.mark.parametrize("retries", [0, 1, 2, 4])
def test_a_batch_runs_at_most_one_plus_max_batch_retries_times(
    monkeypatch: pytest.MonkeyPatch, retries: int
) -> None:
    fake = FakeModal(fail_always=True)
    install(monkeypatch, fake)
    with pytest.raises(EmbeddingError, match=f"6 of 6 Modal batches failed after {1 + retries} "):
        _embedder(max_batch_retries=retries).embed(TEXTS)
    assert len(fake.map_calls) == 1 + retries
    assert set(fake.runs.values()) == {1 + retries} and len(fake.runs) == 6


@pytest.mark.usefixtures("modal_env")
def test_a_permanent_failure_names_the_spans_of_its_texts(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeModal(fail=lambda batch, run: batch == TEXTS[4:6] or batch == TEXTS[10:])
    install(monkeypatch, fake)
    with pytest.raises(EmbeddingError) as info:
        _embedder().embed(TEXTS)
    assert info.value.failed_spans == [SPANS[2], SPANS[5]]
    assert "2 of 6 Modal batches failed after 3 attempts" in str(info.value)
    assert "RemoteError: container lost" in str(info.value)
    assert fake.runs[tuple(TEXTS[4:6])] == 3 and fake.runs[tuple(TEXTS[0:2])] == 1


@pytest.mark.usefixtures("modal_env")
def test_non_finite_vectors_are_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeModal(nan_first_run=True)
    install(monkeypatch, fake)
    vectors, _ = _embedder().embed(TEXTS)
    assert [len(call) for call in fake.map_calls] == [6, 6]
    assert np.isfinite(vectors).all()


@pytest.mark.usefixtures("modal_env")
def test_a_broken_map_stream_resends_only_the_batches_without_output(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeModal(break_after=2)
    install(monkeypatch, fake)
    vectors, stats = _embedder().embed(TEXTS)
    assert fake.map_calls[1] == fake.map_calls[0][2:]
    np.testing.assert_array_equal(vectors, np.stack([fake_vector(t) for t in TEXTS]))
    assert stats.gpu_seconds == pytest.approx(0.25 * 6)


@pytest.mark.usefixtures("modal_env")
def test_retry_rounds_back_off(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, FakeModal(fail_always=True))
    pauses: list[float] = []
    monkeypatch.setattr("rag_ingest.resources.modal.time.sleep", pauses.append)
    with pytest.raises(EmbeddingError):
        _embedder(retry_delay_seconds=0.5, max_batch_retries=3).embed(TEXTS)
    assert pauses == [0.5, 1.0, 2.0]


def test_negative_retries_are_rejected_when_the_resource_is_built() -> None:
    with pytest.raises(ValueError, match="max_batch_retries"):
        ModalEmbedder(max_batch_retries=-1)


@pytest.mark.usefixtures("modal_env")
def test_setup_looks_up_once_and_embed_reuses_it(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeModal()
    looked_up = install(monkeypatch, fake)
    resource = _embedder()
    resource.setup_for_execution(dg.build_init_resource_context())
    resource.embed(TEXTS)
    resource.embed(TEXTS[:3])
    assert len(looked_up) == 1 and fake.hydrations == 1


@pytest.mark.usefixtures("modal_env")
def test_embed_without_setup_looks_up_through_the_same_checks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeModal()
    looked_up = install(monkeypatch, fake)
    resource = _embedder()
    resource.embed(TEXTS)
    resource.embed(TEXTS)
    assert len(looked_up) == 1 and fake.hydrations == 1
    install(monkeypatch, FakeModal(hydrate_error=modal.exception.NotFoundError("no app")))
    with pytest.raises(ModalSetupError, match="deploy it with"):
        _embedder().embed(TEXTS)


def test_no_texts_need_no_modal() -> None:
    vectors, stats = ModalEmbedder().embed([])
    assert vectors.shape == (0, 384) and stats.batches == 0


@pytest.mark.modal
@pytest.mark.skipif(not os.environ.get("MODAL_TOKEN_ID"), reason="needs a Modal token")
def test_the_really_deployed_function_matches_the_local_model() -> None:
    from rag_ingest.resources import LocalEmbedder

    texts = ["Glaciers carve U-shaped valleys.", "Bees dance to share directions."]
    resource = ModalEmbedder(environment_name=os.environ.get("MODAL_ENVIRONMENT"))
    resource.setup_for_execution(dg.build_init_resource_context())
    vectors, stats = resource.embed(texts)
    np.testing.assert_allclose(vectors, LocalEmbedder().embed(texts)[0], atol=1e-3)
    assert stats.gpu_seconds > 0 and stats.cost_usd > 0
