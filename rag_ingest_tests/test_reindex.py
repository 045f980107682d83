"""Zero-downtime re-index on a chunking or model change: versioned collections behind the alias,
a reader querying throughout, an interrupted build resuming, promotion and rollback."""

import random
import threading
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from rag_ingest.cli import main as cli_main
from rag_ingest.core.config import Settings
from rag_ingest.core.index.versions import rollback
from rag_ingest.core.text.encoder import shared_encoder
from rag_ingest.core.vectorstore import StoreLocked
from rag_ingest.resources import LocalEmbedder
from rag_ingest.testing.harness import Harness, make_resources, make_settings
from rag_ingest_tests.sync_oracle import expected_versions, text

QUERIES = ["glacier and river", "honey bread", "chess puzzle engine", "comet orbit lantern"]


class BrokenEmbedder(LocalEmbedder):
    def embed(self, texts: list[str]) -> Any:
        raise RuntimeError("GPU worker lost")


class Reader(threading.Thread):
    """Queries the alias as a RAG application would, for as long as the test runs."""

    def __init__(self, harness: Harness) -> None:
        super().__init__(daemon=True)
        self.harness = harness
        self.stop = threading.Event()
        self.answers: list[tuple[str, int, list[tuple[str, float]]]] = []
        self.errors: list[str] = []
        self.vectors = shared_encoder("cpu").encode(QUERIES)

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            try:
                query = i % len(QUERIES)
                with self.harness.store() as store:
                    live = store.resolve("documents") or ""
                    hits = store.search("documents", self.vectors[query], 3)
                self.answers.append((live, query, [(h.id, h.score) for h in hits]))
            except StoreLocked:
                continue  # a writer holds the embedded store: wait and ask again
            except Exception as exc:  # any other failure is what the test looks for
                self.errors.append(f"{type(exc).__name__}: {exc}")
            i += 1
            self.stop.wait(0.05)


def _direct(harness: Harness, collection: str) -> list[list[tuple[str, float]]]:
    """Each query's answer from one physical collection, bypassing the alias."""
    vectors = shared_encoder("cpu").encode(QUERIES)
    with harness.store() as store:
        return [[(h.id, h.score) for h in store.search(collection, v, 3)] for v in vectors]


def _same(a: list[tuple[str, float]], b: list[tuple[str, float]]) -> bool:
    # Exact: one collection answers one query vector bit for bit, and the backend change's
    # versions differ only in float rounding (onnx fp32 vs torch fp32: ~2e-7 in these scores).
    return a == b


def _answers(harness: Harness) -> list[list[str]]:
    vectors = shared_encoder("cpu").encode(QUERIES)
    with harness.store() as store:
        return [[h.id for h in store.search("documents", v, 3)] for v in vectors]


@pytest.fixture()
def corpus(s3_client: Any, bucket: str) -> str:
    rng = random.Random(11)
    for i in range(8):
        s3_client.put_object(Bucket=bucket, Key=f"kb/{i}.md", Body=text(rng, 4).encode())
    return bucket


# Per change: the settings, the embedder's fields and the environment that select the new version.
CHANGES = {
    "chunking": (
        {"chunk_max_tokens": 64, "chunk_overlap_tokens": 8},
        {},
        {"RAG_CHUNK_MAX_TOKENS": "64", "RAG_CHUNK_OVERLAP_TOKENS": "8"},
    ),
    # Same chunks, another vector space: only the scores tell the versions apart (in their
    # last bits: the onnx export's fused kernels round differently from torch).
    "backend": (
        {"embed_backend": "onnx"},
        {"backend": "onnx"},
        {"RAG_EMBED_BACKEND": "onnx"},
    ),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_pipeline_change_reindexes_in_the_background_and_rolls_back(
    change: str,
    s3_endpoint: str,
    s3_client: Any,
    corpus: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings_change, embedder_change, environment = CHANGES[change]
    v1 = make_settings(corpus, tmp_path, documents_per_run=3)
    v2 = v1.replace(**settings_change)
    assert v1.physical_collection != v2.physical_collection
    with dg.instance_for_test() as instance:
        harness = Harness(instance, v1, make_resources(s3_endpoint, v1))
        harness.converge()
        old_answers = _answers(harness)
        reader = Reader(harness)
        reader.start()
        try:
            # The new settings: every document needs work in the new version's collection,
            # in several runs (3 documents each). The alias stays on v1 meanwhile.
            harness.settings = v2
            healthy = LocalEmbedder(**embedder_change)
            harness.resources["embedder"] = healthy
            requests = harness.tick().run_requests or []
            assert len(requests) >= 2
            first = harness.launch(dg.SensorResult(run_requests=requests[:1]))
            assert first[0].success
            with harness.store() as store:
                assert store.resolve("documents") == v1.physical_collection
                assert store.count(v2.physical_collection) > 0
            # An interrupted build: the remaining runs fail ...
            harness.resources["embedder"] = BrokenEmbedder(**embedder_change)
            failed = harness.launch(dg.SensorResult(run_requests=requests[1:]))
            assert not any(r.success for r in failed)
            with harness.store() as store:
                assert store.resolve("documents") == v1.physical_collection
            # ... and a later sync resumes where it stopped, then promotes the complete,
            # verified version atomically.
            harness.resources["embedder"] = healthy
            harness.converge()
            with harness.store() as store:
                assert store.resolve("documents") == v2.physical_collection
            assert harness.versions() == expected_versions(s3_client, corpus, v2)
        finally:
            reader.stop.set()
            reader.join(timeout=30)
        assert reader.errors == []
        direct = {v.physical_collection: _direct(harness, v.physical_collection) for v in (v1, v2)}
        # The two versions answer differently, so an answer shows which one served it ...
        old, new = direct[v1.physical_collection], direct[v2.physical_collection]
        assert not all(_same(a, b) for a, b in zip(old, new, strict=True))
        # ... and every answer came whole from the version live when it was asked: v1 while
        # v2 was being built (v1 did not change), v2 once complete (and unchanged since).
        assert {live for live, _, _ in reader.answers} == set(direct)
        for live, query, hits in reader.answers:
            assert _same(hits, direct[live][query]), (live, query)

        # Rollback: the old version answers again, exactly as before.
        with harness.store() as store:
            previous = rollback(store, harness.registry, "documents")
        assert previous.collection == v1.physical_collection
        assert _answers(harness) == old_answers
        # The rolled-back version is not promoted again by the next reconcile.
        assert harness.materialize_all().success
        with harness.store() as store:
            assert store.resolve("documents") == v1.physical_collection

        # The operator's view and commands, on the same settings.
        for name, value in {
            "RAG_S3_BUCKET": corpus,
            "RAG_DATA_DIR": str(tmp_path),
            "RAG_SHARDS": "16",
            **environment,
        }.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("RAG_QDRANT_URL", raising=False)
        assert cli_main(["index", "list"]) == 0
        listing = capsys.readouterr().out
        assert v1.physical_collection in listing and v2.physical_collection in listing
        assert "rolled_back" in listing
        assert cli_main(["index", "promote"]) == 0
        with harness.store() as store:
            assert store.resolve("documents") == v2.physical_collection
        assert cli_main(["index", "drop", v1.physical_collection]) == 0
        with harness.store() as store:
            assert not store.collection_exists(v1.physical_collection)
        assert cli_main(["index", "drop", v2.physical_collection]) == 1  # live: refused
        assert "is live" in capsys.readouterr().out


def test_a_backend_change_gets_a_collection_of_its_own() -> None:
    torch = Settings(bucket="b")
    assert torch.fingerprint.vector_space == "torch-fp32"
    assert Settings(bucket="b", embedder="modal").physical_collection == torch.physical_collection
    for backend in ("onnx", "openvino"):
        other = Settings(bucket="b", embed_backend=backend)
        assert other.physical_collection != torch.physical_collection, backend


def test_an_embedder_of_another_vector_space_is_refused_before_writing(
    s3_endpoint: str, corpus: str, tmp_path: Path
) -> None:
    settings = make_settings(corpus, tmp_path)
    with dg.instance_for_test() as instance:
        resources = make_resources(s3_endpoint, settings, LocalEmbedder(backend="onnx"))
        harness = Harness(instance, settings, resources)
        runs = harness.sync()
        assert runs and not any(r.success for r in runs)
        failure = next(e for e in runs[0].all_events if e.event_type_value == "STEP_FAILURE")
        assert "onnx-fp32" in str(failure.event_specific_data.error)  # type: ignore[union-attr]
        assert harness.points() == []
