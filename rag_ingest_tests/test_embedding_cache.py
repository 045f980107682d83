"""The chunk-level embedding cache: the core cache on real SQLite, and the pipeline with the real
MiniLM re-ingesting edited, unchanged and re-chunked documents."""

import dataclasses
import logging
import random
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pytest
import sqlalchemy as sa

from rag_ingest.core.cost import gpu_cost_usd, price_workload, render_markdown
from rag_ingest.core.documents.extract import extract
from rag_ingest.core.index.fingerprint import embedding_identity
from rag_ingest.core.index.health import UNIT_NORM_TOLERANCE
from rag_ingest.core.registry import Registry
from rag_ingest.core.registry.embedding_cache import EmbeddingCache, cache_key, plan_window
from rag_ingest.core.registry.schema import embedding_cache
from rag_ingest.core.text.chunking import chunk_blocks
from rag_ingest.core.text.encoder import shared_encoder
from rag_ingest.core.text.model import load_tokenizer
from rag_ingest.defs.monitoring.usage import embedding_workload
from rag_ingest.resources.modal import ModalEmbedder
from rag_ingest.testing.harness import Harness, make_resources, make_settings
from rag_ingest_tests.modal_fakes import FakeModal, fake_vector, install, set_modal_token
from rag_ingest_tests.sync_oracle import WORDS

SECTIONS = 220
LONG_EVERY = 40  # every 40th section is long: split in windows, so re-chunking changes it


def _section(rng: random.Random, i: int) -> str:
    words = 150 if i % LONG_EVERY == 0 else 40
    return " ".join(rng.choice(WORDS) for _ in range(words)) + "."


def _handbook(sections: list[str]) -> bytes:
    body = "\n\n".join(f"## Part {i}\n\n{text}" for i, text in enumerate(sections))
    return f"# Handbook\n\n{body}\n".encode()


def _chunk_texts(data: bytes, settings: Any) -> set[str]:
    blocks = extract("handbook.md", data).blocks
    tokenizer = load_tokenizer(settings.model_spec.path)
    sizes = {"max_tokens": settings.chunk_max_tokens, "overlap": settings.chunk_overlap_tokens}
    return {c.text for c in chunk_blocks(blocks, tokenizer=tokenizer, **sizes)}


def _cache_figures(runs: list[dg.ExecuteInProcessResult]) -> dict[str, int]:
    """The cache figures of ``runs``, summed (each of a run's shards carries its run's)."""
    names = ("texts_embedded", "cache_hits", "cache_misses", "cache_corrupt", "run_texts")
    totals: dict[str, int] = dict.fromkeys(names, 0)
    for run in runs:
        assert run.success
        first = run.asset_materializations_for_node("embeddings")[0]
        for name in names:
            totals[name] += int(first.metadata[name].value)  # type: ignore[arg-type]
    return totals


def _vectors_are_fresh(harness: Harness) -> None:
    """Every point's vector is what the model gives its text now."""
    points = harness.points()
    assert points
    texts = [p.payload["page_content"] for p in points]
    fresh = shared_encoder("cpu").encode(texts)
    stored = np.asarray([p.vector for p in points], dtype=np.float32)
    assert np.allclose(stored, fresh, atol=1e-5)


@pytest.fixture()
def settings(bucket: str, tmp_path: Path) -> Any:
    return make_settings(bucket, tmp_path, chunk_max_tokens=64, chunk_overlap_tokens=16)


# ---- the core cache ------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """A registry database of each kind the cache runs on (PostgreSQL in production)."""
    if request.param == "postgresql":
        yield request.getfixturevalue("pg_registry").engine
        return
    registry = Registry(f"sqlite:///{tmp_path / 'registry.db'}")
    yield registry.engine
    registry.close()


def _identity(settings: Any, **changes: Any) -> str:
    return embedding_identity(dataclasses.replace(settings.fingerprint, **changes))


def test_two_identities_never_share_a_vector(engine: Any, settings: Any) -> None:
    mini = EmbeddingCache(engine, _identity(settings), 3, 100)
    other = EmbeddingCache(engine, _identity(settings, model="other-model@abc"), 3, 100)
    prompted = EmbeddingCache(engine, _identity(settings, document_prompt="passage: "), 3, 100)
    text = "the same chunk text"
    keys = {c.keys([text])[0] for c in (mini, other, prompted)}
    assert len(keys) == 3
    mini.store(mini.keys([text]), np.array([[1.0, 0.0, 0.0]], np.float32))
    assert other.lookup(other.keys([text])) == {}
    assert prompted.lookup(prompted.keys([text])) == {}
    other.store(other.keys([text]), np.array([[0.0, 1.0, 0.0]], np.float32))
    (got_mini,) = mini.lookup(mini.keys([text])).values()
    (got_other,) = other.lookup(other.keys([text])).values()
    assert got_mini.tolist() == [1.0, 0.0, 0.0] and got_other.tolist() == [0.0, 1.0, 0.0]
    # A row copied under another identity's key fails its checksum: a miss, not its vector.
    with engine.begin() as conn:
        conn.execute(
            embedding_cache.update()
            .where(embedding_cache.c.key == prompted.keys([text])[0])
            .values(identity=prompted.identity_id)
        )
        row = conn.execute(
            sa.select(embedding_cache).where(embedding_cache.c.key == mini.keys([text])[0])
        ).one()
        conn.execute(
            embedding_cache.insert().values(
                {**row._asdict(), "key": prompted.keys([text])[0], "identity": prompted.identity_id}
            )
        )
    assert prompted.lookup(prompted.keys([text])) == {}
    assert prompted.stats.corrupt == 1


@pytest.mark.parametrize("damage", ["truncated", "flipped", "dimension"])
def test_a_damaged_entry_is_a_miss_and_is_replaced(engine: Any, settings: Any, damage: str) -> None:
    cache = EmbeddingCache(engine, _identity(settings), 4, 100)
    keys = cache.keys(["a", "b"])
    vectors = np.array([[0.5, 0.5, 0.5, 0.5], [1.0, 0.0, 0.0, 0.0]], np.float32)
    cache.store(keys, vectors)
    with engine.begin() as conn:
        data = conn.execute(
            sa.select(embedding_cache.c.vector).where(embedding_cache.c.key == keys[0])
        ).scalar_one()
        changes: dict[str, Any] = {
            "truncated": {"vector": data[:-3]},
            "flipped": {"vector": bytes([data[0] ^ 1]) + data[1:]},
            "dimension": {"dimension": 3},
        }[damage]
        conn.execute(
            embedding_cache.update().where(embedding_cache.c.key == keys[0]).values(**changes)
        )
    found = cache.lookup(keys)
    assert list(found) == [keys[1]] and cache.stats.corrupt == 1
    cache.store(keys[:1], vectors[:1])  # the run's fresh vector takes the damaged row's place
    again = cache.lookup(keys)
    assert again[keys[0]].tolist() == vectors[0].tolist()


def test_vectors_the_blocking_check_refuses_are_not_cached(engine: Any, settings: Any) -> None:
    cache = EmbeddingCache(engine, _identity(settings), 2, 100)
    keys = cache.keys(["unit", "doubled", "nan"])
    vectors = np.array([[0.6, 0.8], [1.2, 1.6], [np.nan, 0.0]], np.float32)
    cache.store(keys, vectors, norm_tolerance=UNIT_NORM_TOLERANCE)
    assert list(cache.lookup(keys)) == keys[:1] and cache.stats.stored == 1


def test_least_recently_used_entries_are_evicted_beyond_the_bound(
    engine: Any, settings: Any
) -> None:
    cache = EmbeddingCache(engine, _identity(settings), 2, max_entries=10)
    texts = [f"text {i}" for i in range(25)]
    for i, text in enumerate(texts):
        cache.store(cache.keys([text]), np.array([[float(i), 1.0]], np.float32))
        with engine.begin() as conn:  # a distinct, increasing last use per entry
            conn.execute(
                embedding_cache.update()
                .where(embedding_cache.c.key == cache.keys([text])[0])
                .values(last_used=float(i))
            )
    assert len(cache.lookup(cache.keys(texts[:2]))) == 2  # used now: the most recent
    assert cache.evict() == 15 and cache.stats.evictions == 15
    kept = cache.lookup(cache.keys(texts))
    assert set(kept) == set(cache.keys(texts[:2] + texts[17:]))


def test_a_window_embeds_each_missing_text_once(engine: Any, settings: Any) -> None:
    cache = EmbeddingCache(engine, _identity(settings), 2, 100)
    cache.store(cache.keys(["cached"]), np.array([[1.0, 0.0]], np.float32))
    plan = plan_window(cache, ["new", "cached", "new", "other"])
    assert plan.miss_texts == ["new", "other"]
    out = plan.assemble(np.array([[0.0, 1.0], [0.5, 0.5]], np.float32), 2)
    assert out.tolist() == [[0.0, 1.0], [1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]
    # A failed batch of misses names every window position that needed it.
    assert plan.text_spans([(0, 1)]) == [(0, 1), (2, 3)]


def test_a_read_only_or_missing_cache_degrades_to_no_cache(
    tmp_path: Path, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "registry.db"
    Registry(f"sqlite:///{path}").close()
    read_only = sa.create_engine(f"sqlite:///file:{path}?mode=ro&uri=true")
    cache = EmbeddingCache(read_only, _identity(settings), 2, 100)
    with caplog.at_level(logging.WARNING):
        assert cache.lookup(cache.keys(["a"])) == {}
        cache.store(cache.keys(["a"]), np.array([[1.0, 0.0]], np.float32))
    assert not cache.enabled and "embedding cache off" in caplog.text
    assert cache.lookup(cache.keys(["a"])) == {} and cache.evict() == 0
    off = EmbeddingCache(read_only, _identity(settings), 2, max_entries=0)
    assert not off.enabled and off.lookup(off.keys(["a"])) == {} and off.stats.misses == 1
    assert cache_key("x", "yz") != cache_key("xy", "z")


# ---- through the pipeline ------------------------------------------------------------------


def _harness(instance: Any, s3_endpoint: str, settings: Any) -> Harness:
    return Harness(instance, settings, make_resources(s3_endpoint, settings))


def test_an_edit_embeds_only_its_changed_chunks_and_a_rerun_none(
    s3_endpoint: str, s3_client: Any, bucket: str, settings: Any
) -> None:
    rng = random.Random(22)
    sections = [_section(rng, i) for i in range(SECTIONS)]
    s3_client.put_object(Bucket=bucket, Key="handbook.md", Body=_handbook(sections))
    with dg.instance_for_test() as instance:
        harness = _harness(instance, s3_endpoint, settings)
        cold = _cache_figures(harness.converge())
        chunks = len(harness.points())
        assert chunks >= 200 and cold["texts_embedded"] == chunks == cold["run_texts"]
        assert cold["cache_hits"] == 0

        # (b) an unchanged document re-ingested (forced): every vector comes from the cache.
        again = _cache_figures([harness.materialize_all(force=True)])
        assert again["run_texts"] == chunks
        assert again["texts_embedded"] == 0 and again["cache_hits"] == chunks

        # (a) one paragraph edited: only the chunk that holds it is embedded.
        sections[SECTIONS // 2 + 1] = _section(rng, SECTIONS // 2 + 1)
        s3_client.put_object(Bucket=bucket, Key="handbook.md", Body=_handbook(sections))
        edit = _cache_figures(harness.converge())
        assert edit["run_texts"] == chunks
        assert 1 <= edit["texts_embedded"] <= 0.02 * chunks
        assert edit["cache_hits"] == chunks - edit["texts_embedded"]
        _vectors_are_fresh(harness)


def test_a_chunking_only_reindex_embeds_only_new_texts(
    s3_endpoint: str, s3_client: Any, bucket: str, settings: Any
) -> None:
    rng = random.Random(23)
    data = _handbook([_section(rng, i) for i in range(SECTIONS // 2)])
    s3_client.put_object(Bucket=bucket, Key="handbook.md", Body=data)
    v2 = settings.replace(chunk_max_tokens=80)
    assert v2.physical_collection != settings.physical_collection
    new_texts = _chunk_texts(data, v2) - _chunk_texts(data, settings)
    assert 0 < len(new_texts) < len(_chunk_texts(data, v2))
    with dg.instance_for_test() as instance:
        harness = _harness(instance, s3_endpoint, settings)
        harness.converge()
        harness.settings = v2
        reindex = _cache_figures(harness.converge())
        with harness.store() as store:
            assert store.resolve(settings.collection) == v2.physical_collection
        assert reindex["texts_embedded"] == len(new_texts)
        assert reindex["cache_hits"] == reindex["run_texts"] - len(new_texts)
        _vectors_are_fresh(harness)


def test_corrupt_entries_are_re_embedded(
    s3_endpoint: str, s3_client: Any, bucket: str, settings: Any
) -> None:
    rng = random.Random(24)
    data = _handbook([_section(rng, i) for i in range(12)])
    s3_client.put_object(Bucket=bucket, Key="handbook.md", Body=data)
    with dg.instance_for_test() as instance:
        harness = _harness(instance, s3_endpoint, settings)
        harness.converge()
        engine = harness.registry.engine
        with engine.begin() as conn:
            keys = list(conn.execute(sa.select(embedding_cache.c.key)).scalars())
            for key in keys[:3]:
                conn.execute(
                    embedding_cache.update()
                    .where(embedding_cache.c.key == key)
                    .values(vector=sa.func.substr(embedding_cache.c.vector, 1, 100))
                )
        again = _cache_figures([harness.materialize_all(force=True)])
        assert again["cache_corrupt"] == 3 and again["texts_embedded"] == 3
        assert again["cache_hits"] == again["run_texts"] - 3
        _vectors_are_fresh(harness)


def test_a_broken_cache_table_warns_and_the_run_succeeds(
    s3_endpoint: str, s3_client: Any, bucket: str, settings: Any
) -> None:
    rng = random.Random(25)
    s3_client.put_object(Bucket=bucket, Key="a.md", Body=_handbook([_section(rng, 1)]))
    with dg.instance_for_test() as instance:
        harness = _harness(instance, s3_endpoint, settings)
        harness.converge()
        # Dropped and replaced by a table of another shape (a failed migration, another tool's
        # table): the registry's upgrade sees the name and leaves it, every query on it fails.
        engine = harness.registry.engine
        embedding_cache.drop(engine)
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE embedding_cache (key VARCHAR(64) PRIMARY KEY)"))
        s3_client.put_object(
            Bucket=bucket, Key="b.md", Body=_handbook([_section(rng, i) for i in range(3)])
        )
        runs = harness.converge()
        figures = _cache_figures(runs)
        assert figures["cache_hits"] == 0 and figures["texts_embedded"] == figures["run_texts"]
        warnings = [
            entry.user_message
            for run in runs
            for entry in instance.all_logs(run.run_id)
            if entry.level == logging.WARNING
        ]
        assert any("embedding cache off" in message for message in warnings)
        _vectors_are_fresh(harness)


def test_the_modal_map_sees_only_misses_and_the_saving_is_priced(
    s3_endpoint: str,
    s3_client: Any,
    bucket: str,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    set_modal_token(monkeypatch)
    fake = FakeModal()
    install(monkeypatch, fake)
    rng = random.Random(26)
    sections = [_section(rng, i) for i in range(30)]
    s3_client.put_object(Bucket=bucket, Key="handbook.md", Body=_handbook(sections))
    modal = settings.replace(embedder="modal")
    embedder = ModalEmbedder(batch_size=4, retry_delay_seconds=0.0)
    with dg.instance_for_test() as instance:
        harness = Harness(instance, modal, make_resources(s3_endpoint, modal, embedder))
        harness.converge()
        before = {text for call in fake.map_calls for batch in call for text in batch}
        fake.map_calls.clear()
        sections[7] = _section(rng, 7)
        s3_client.put_object(Bucket=bucket, Key="handbook.md", Body=_handbook(sections))
        (run,) = harness.converge()
        sent = [text for call in fake.map_calls for batch in call for text in batch]
        assert len(sent) == 1 and sent[0] not in before and "## Part 7" in sent[0]
        meta: dict[str, Any] = {
            k: v.value
            for k, v in run.asset_materializations_for_node("embeddings")[0].metadata.items()
        }
        assert meta["texts_embedded"] == 1 and meta["cache_hits"] == len(before) - 1
        # Saved: the hits at this run's measured GPU seconds and price per embedded text.
        per_text = meta["run_gpu_seconds"]
        assert meta["cache_gpu_seconds_saved"] == pytest.approx(
            per_text * meta["cache_hits"], rel=1e-2
        )
        assert meta["cache_usd_saved"] == pytest.approx(
            gpu_cost_usd(per_text * meta["cache_hits"], embedder.gpu), rel=1e-2
        )
        points = harness.points()
        assert all(
            np.allclose(p.vector, fake_vector(p.payload["page_content"]), atol=1e-6) for p in points
        )
        # `rag-ingest cost` sums the cache's figures over the window's runs.
        workload = embedding_workload(instance, 1.0)
        assert workload.cache is not None and workload.runs == 2
        assert workload.cache.hits == meta["cache_hits"]
        assert workload.cache.texts_embedded == len(before) + 1
        assert workload.cache.usd_saved == pytest.approx(meta["cache_usd_saved"])
        assert f"Embedding cache: {meta['cache_hits']} hits" in render_markdown(
            price_workload(workload)
        )
