"""BM25 sparse vectors in every embedded engine: stored with IDF, queried alone and fused."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from rag_ingest.core.config import Settings, SettingsError
from rag_ingest.core.text.chunking import Chunk
from rag_ingest.core.text.sparse import Bm25Encoder
from rag_ingest.core.vectorstore import DocumentPoints, open_vector_store
from rag_ingest_tests.vectorstores import DIM, make_doc

SPARSE = "langchain-sparse"
TEXTS = {
    "alpha.md": ["Set RAG_SPARSE_VECTOR_NAME to rename the vector.", "Kneading bread dough."],
    "beta.md": ["Proofing dough overnight in the fridge.", "The oven runs hot."],
    "gamma.md": ["ECONNRESET means the peer closed the connection.", "Retry with backoff."],
}


def _docs() -> list[DocumentPoints]:
    docs = []
    for key, texts in TEXTS.items():
        doc = make_doc(key, chunks=len(texts))
        chunks = [replace(c, text=t) for c, t in zip(doc.chunks, texts, strict=True)]
        docs.append(DocumentPoints(doc.info, chunks, doc.vectors))
    return docs


@pytest.mark.parametrize("engine", ["edge", "local"])
def test_sparse_vectors_are_written_with_idf_and_queried(engine: str, tmp_path: Path) -> None:
    docs = _docs()
    encoder = Bm25Encoder()
    with open_vector_store(engine, path=tmp_path / engine) as store:
        assert store.ensure_collection("c", DIM, sparse_vector=SPARSE)
        assert store.sparse_vector("c") == SPARSE
        store.set_alias("live", "c")
        assert store.sparse_vector("live") == SPARSE
        store.replace_documents("c", docs)
        assert store.count("c") == 6

        def top(**query: object) -> str:
            hits = store.query("live", 3, **query)  # type: ignore[arg-type]
            return hits[0].payload["page_content"]

        # Keyword queries: BM25 finds the one chunk holding the identifier.
        assert top(sparse=encoder.embed_query("ECONNRESET")) == TEXTS["gamma.md"][0]
        assert top(sparse=encoder.embed_query("rag_sparse_vector_name")) == TEXTS["alpha.md"][0]
        # "dough" is in two chunks of six: IDF ranks a rarer word's chunk first.
        sparse_hits = store.query("live", 6, sparse=encoder.embed_query("dough overnight"))
        assert sparse_hits[0].payload["page_content"] == TEXTS["beta.md"][0]
        assert {h.payload["page_content"] for h in sparse_hits} == {
            TEXTS["beta.md"][0],
            TEXTS["alpha.md"][1],
        }
        # Dense alone equals the plain search; fused, a point first on both sides comes first.
        target = docs[1].vectors[1]
        dense = store.query("live", 3, dense=target)
        assert [h.id for h in dense] == [h.id for h in store.search("live", target, 3)]
        assert dense[0].payload["page_content"] == TEXTS["beta.md"][1]
        hybrid = store.query("live", 6, dense=target, sparse=encoder.embed_query("oven hot"))
        assert hybrid[0].payload["page_content"] == TEXTS["beta.md"][1]
        # A chunk only BM25 finds still reaches the fused list.
        fused = store.query("live", 6, dense=target, sparse=encoder.embed_query("ECONNRESET"))
        assert TEXTS["gamma.md"][0] in {h.payload["page_content"] for h in fused}
        # Scrolled vectors are the dense ones.
        stored = next(iter(store.scroll("c", with_vectors=True)))
        assert stored.vector is not None and stored.vector.shape == (DIM,)
        with pytest.raises(ValueError, match="dense or a sparse"):
            store.query("live", 3)
    if engine == "edge":
        config = json.loads(
            (tmp_path / engine / "collections" / "c" / "edge_config.json").read_text()
        )
        assert config["sparse_vectors"][SPARSE]["modifier"].lower() == "idf"
    else:
        from qdrant_client import QdrantClient, models

        client = QdrantClient(path=str(tmp_path / engine))
        try:
            params = client.get_collection("c").config.params.sparse_vectors
            assert params is not None and params[SPARSE].modifier == models.Modifier.IDF
        finally:
            client.close()


@pytest.mark.parametrize("engine", ["edge", "local"])
def test_a_collection_without_sparse_refuses_sparse_queries(engine: str, tmp_path: Path) -> None:
    with open_vector_store(engine, path=tmp_path / engine) as store:
        store.ensure_collection("c", DIM)
        assert store.sparse_vector("c") is None
        store.replace_documents("c", [make_doc("a.md")])
        hits = store.query("c", 2, dense=np.ones(DIM, dtype=np.float32))
        assert len(hits) == 2
        with pytest.raises(ValueError, match="no sparse vector"):
            store.query("c", 2, sparse=Bm25Encoder().embed_query("chunk"))


def test_precomputed_sparse_vectors_are_used_as_given(tmp_path: Path) -> None:
    doc = _docs()[0]
    # Swapped on purpose: the store writes what the writer computed, not its own encoding.
    encoder = Bm25Encoder()
    swapped = [encoder.embed_document(c.text) for c in reversed(doc.chunks)]
    with open_vector_store("edge", path=tmp_path) as store:
        store.ensure_collection("c", DIM, sparse_vector=SPARSE)
        store.replace_documents("c", [DocumentPoints(doc.info, doc.chunks, doc.vectors, swapped)])
        hit = store.query("c", 1, sparse=encoder.embed_query("kneading"))[0]
        assert hit.payload["page_content"] == TEXTS["alpha.md"][0]
        short = [Chunk(0, "x", 0, 1, 1)]
        with pytest.raises(ValueError, match="sparse vectors"):
            store.replace_documents(
                "c", [DocumentPoints(doc.info, short, doc.vectors[:1], swapped)]
            )


def test_a_sparse_vector_name_that_cannot_be_one_is_refused_naming_the_setting() -> None:
    for bad in ("has space", "x" * 201, "sparse/name", "émoji"):
        with pytest.raises(SettingsError, match=r"^RAG_SPARSE_VECTOR_NAME must be 1-200") as e:
            Settings.from_env({"RAG_SPARSE_VECTOR_NAME": bad})
        assert "\n" not in str(e.value)
    assert Settings.from_env({"RAG_SPARSE_VECTOR_NAME": "text-sparse-new"}).sparse_vector_name
    renamed = Settings.from_env({"RAG_SPARSE_VECTOR_NAME": "text-sparse-new"})
    # Another name is another layout: a new version is built, the live one is never rewritten.
    assert renamed.physical_collection != Settings.from_env({}).physical_collection


@pytest.mark.parametrize("engine", ["edge", "local"])
def test_fused_ties_come_back_in_one_order_by_point_id(engine: str, tmp_path: Path) -> None:
    # Ten chunks only BM25 finds (distinct term counts: no ties on that side; vectors opposite
    # the query's, below the dense prefetch) and sixty only the dense side finds: each rank of
    # the fused top ten holds one of each, so their fused scores tie pairwise.
    rng = np.random.default_rng(3)
    target = rng.standard_normal(DIM).astype(np.float32)
    target /= np.linalg.norm(target)
    docs = []
    for i in range(70):
        doc = make_doc(f"t{i}.md", chunks=1, rng=rng)
        text, vectors = f"filler words {i}", doc.vectors
        if i < 10:
            text, vectors = " ".join(["needle"] * (i + 1)), -target[None, :]
        docs.append(DocumentPoints(doc.info, [replace(doc.chunks[0], text=text)], vectors))
    needle = Bm25Encoder().embed_query("needle")
    answers = set()
    for _ in range(2):  # written, then reopened from disk
        with open_vector_store(engine, path=tmp_path / engine) as store:
            if store.ensure_collection("c", DIM, sparse_vector=SPARSE):
                store.replace_documents("c", docs)
            for _ in range(20):
                hits = store.query("c", 10, dense=target, sparse=needle)
                answers.add(tuple((h.id, h.score) for h in hits))
            top5 = [h.id for h in store.query("c", 5, dense=target, sparse=needle)]
    assert len(answers) == 1, answers
    (answer,) = answers
    assert len(answer) == 10 and top5 == [i for i, _ in answer[:5]]
    assert [(-s, i) for i, s in answer] == sorted((-s, i) for i, s in answer)
    assert len({s for _, s in answer}) < len(answer)  # ties were there to break


@pytest.mark.parametrize("engine", ["edge", "local"])
def test_rrf_weights_favour_the_side_weighted_higher(engine: str, tmp_path: Path) -> None:
    """Dense ranks one chunk first, BM25 another: the weighted side's first comes first."""
    from rag_ingest.core.vectorstore import Fusion

    docs = _docs()
    encoder = Bm25Encoder()
    dense = docs[1].vectors[1]  # beta's oven chunk, nearest to itself
    sparse = encoder.embed_query("ECONNRESET")  # gamma's first chunk only
    with open_vector_store(engine, path=tmp_path / engine) as store:
        store.ensure_collection("c", DIM, sparse_vector=SPARSE)
        store.replace_documents("c", docs)

        def first(weight: float) -> str:
            fusion = Fusion(sparse_weight=weight)
            hits = store.query("c", 3, dense=dense, sparse=sparse, fusion=fusion)
            return hits[0].payload["page_content"]

        assert first(10.0) == TEXTS["gamma.md"][0]
        # Both sides rank every point: the BM25 hit keeps its dense share, so a clear weight.
        assert first(0.1) == TEXTS["beta.md"][1]
        assert first(1.0) == TEXTS["gamma.md"][0]  # plain RRF: on both sides beats one


def test_fusion_weights_follow_the_stages_and_refuse_nonpositive() -> None:
    from rag_ingest.core.text.sparse import SparseVector
    from rag_ingest.core.vectorstore.fusion import Fusion, Stage

    stages = [Stage("", [0.1, 0.2]), Stage(SPARSE, SparseVector(indices=[1], values=[1.0]))]
    assert Fusion().rrf_weights(stages) is None
    assert Fusion(sparse_weight=2).rrf_weights(stages) == [1.0, 2.0]
    assert Fusion(sparse_weight=2).rrf_weights(stages[::-1]) == [2.0, 1.0]
    assert "sparse weight 2" in Fusion(sparse_weight=2).label
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="sparse_weight"):
            Fusion(sparse_weight=bad)
    with pytest.raises(ValueError, match="DBSF takes no weights"):
        Fusion(method="dbsf", sparse_weight=2)


def test_the_hybrid_sparse_weight_is_read_refused_naming_the_setting_and_not_a_new_version() -> (
    None
):
    weighted = Settings.from_env({"RAG_HYBRID_SPARSE_WEIGHT": "4"})
    assert weighted.hybrid_sparse_weight == 4.0 and Settings.from_env({}).hybrid_sparse_weight == 1
    # A query-time choice: the stored points do not change, so neither does the version.
    assert weighted.physical_collection == Settings.from_env({}).physical_collection
    for bad in ("0", "-1", "nan", "inf", "heavy"):
        with pytest.raises(SettingsError, match=r"^RAG_HYBRID_SPARSE_WEIGHT") as e:
            Settings.from_env({"RAG_HYBRID_SPARSE_WEIGHT": bad})
        assert "\n" not in str(e.value)
