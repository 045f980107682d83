"""A collection the pipeline wrote, read by the project's own search modes and by unmodified
langchain-qdrant in hybrid mode, with fastembed's own BM25 encoding the queries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from langchain_core.embeddings import Embeddings

from rag_ingest.cli import main as cli_main
from rag_ingest.core.text.sparse import ENGLISH_STOPWORDS, MODEL_NAME
from rag_ingest.query import Index
from rag_ingest.resources import LocalEmbedder
from rag_ingest.testing.harness import Harness, make_resources, make_settings

DOCS = {
    "kb/tls.md": "# TLS errors\n\nThe client aborts with ERR_SSL_WRONG_VERSION_NUMBER when the "
    "server speaks plain HTTP on the TLS port. Check the port and the scheme of the URL.",
    "kb/bread.md": "# Baking bread\n\nKnead the dough for ten minutes, let it rise overnight "
    "in a cool place, then bake it in a very hot oven until the crust is dark.",
    "kb/backoff.md": "# Retries\n\nSet retry_backoff_seconds to wait between attempts; a "
    "connection reset by the peer is retried, a refused request is not.",
    "kb/rivers.md": "# Rivers\n\nGlaciers carve valleys that rivers later fill; the water "
    "carries silt to the sea and builds deltas at the mouth.",
}


class _Dense(Embeddings):
    """LangChain's Embeddings over the pipeline's own model (its query prompt included)."""

    def __init__(self, embedder: LocalEmbedder) -> None:
        self.embedder = embedder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embedder.embed(texts)[0].tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embedder.embed_query([text])[0].tolist()


@pytest.fixture()
def written(s3_endpoint: str, s3_client: Any, bucket: str, tmp_path: Path) -> Any:
    for key, body in DOCS.items():
        s3_client.put_object(Bucket=bucket, Key=key, Body=body.encode())
    settings = make_settings(bucket, tmp_path, qdrant_engine="local")
    with dg.instance_for_test() as instance:
        Harness(instance, settings, make_resources(s3_endpoint, settings)).converge()
    return settings


def test_search_modes_and_langchain_hybrid_read_the_pipeline_s_collection(
    written: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    settings = written
    assert settings.sparse and settings.fingerprint.sparse_vector == "langchain-sparse"
    identifier = "ERR_SSL_WRONG_VERSION_NUMBER"
    with Index(settings) as index:
        default = index.search(identifier, k=4)
        sparse = index.search(identifier, k=4, mode="sparse")
        dense = index.search("when does the dough rise?", k=4, mode="dense")
        hybrid = index.search(identifier, k=4, mode="hybrid")
        ours = index.search("retry backoff seconds reset", k=4, mode="sparse")
    assert [h.source for h in default] == [h.source for h in hybrid]
    # BM25 finds only the one chunk holding the identifier; the fusion keeps it first.
    assert [h.source.rsplit("/", 1)[1] for h in sparse] == ["tls.md"]
    assert hybrid[0].source == sparse[0].source and len(hybrid) == 4
    assert dense[0].source.endswith("bread.md")
    # RAG_HYBRID_SPARSE_WEIGHT: Qdrant's weighted RRF lifts what BM25 ranks (the weight
    # shortens its rank in 1/(k + rank)), so the chunk first on both sides scores higher.
    with Index(settings.replace(hybrid_sparse_weight=4.0)) as index:
        weighted = index.search(identifier, k=4, mode="hybrid")
    assert weighted[0].source == hybrid[0].source
    assert weighted[0].score > hybrid[0].score + 0.1  # plain RRF would score it the same

    # Unmodified langchain-qdrant over qdrant-client local mode: fastembed's own Bm25 (the
    # stopword file written locally: the hub is unreachable) encodes the queries.
    from langchain_qdrant import FastEmbedSparse, QdrantVectorStore, RetrievalMode
    from qdrant_client import QdrantClient

    model_dir = tmp_path / "bm25"
    model_dir.mkdir()
    (model_dir / "english.txt").write_text("\n".join(sorted(ENGLISH_STOPWORDS)) + "\n")
    (model_dir / "config.json").write_text("{}")
    bm25 = FastEmbedSparse(MODEL_NAME, specific_model_path=str(model_dir), local_files_only=True)
    client = QdrantClient(path=str(settings.qdrant_path))
    try:
        common: dict[str, Any] = {
            "client": client,
            "collection_name": settings.physical_collection,
            "embedding": _Dense(LocalEmbedder()),
            "sparse_embedding": bm25,
            "vector_name": "",
            "sparse_vector_name": settings.sparse_vector_name,
        }
        hybrid_lc = QdrantVectorStore(retrieval_mode=RetrievalMode.HYBRID, **common)
        found = hybrid_lc.similarity_search(identifier, k=4)
        assert found[0].metadata["source"] == hybrid[0].source
        assert identifier in found[0].page_content
        sparse_lc = QdrantVectorStore(retrieval_mode=RetrievalMode.SPARSE, **common)
        scored = sparse_lc.similarity_search_with_score("retry backoff seconds reset", k=4)
        # Same query tokens, same stored vectors, same IDF: the same ranking and scores.
        assert [(d.metadata["source"], round(s, 5)) for d, s in scored] == [
            (h.source, round(h.score, 5)) for h in ours
        ]
        assert scored[0][0].metadata["source"].endswith("backoff.md")
    finally:
        client.close()

    # The CLI runs the same API.
    monkeypatch.setenv("RAG_S3_BUCKET", settings.bucket)
    monkeypatch.setenv("RAG_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("RAG_SHARDS", "16")
    monkeypatch.setenv("RAG_QDRANT_EMBEDDED", "local")
    monkeypatch.delenv("RAG_QDRANT_URL", raising=False)
    assert cli_main(["search", identifier, "--mode", "sparse", "-k", "3"]) == 0
    out = capsys.readouterr().out
    assert "kb/tls.md" in out and out.count("kb/") == 1


def test_llamaindex_hybrid_reads_the_pipeline_s_collection(written: Any, tmp_path: Path) -> None:
    """Unmodified llama-index-vector-stores-qdrant with ``enable_hybrid=True`` over
    qdrant-client local mode, fastembed's own Bm25 encoding its sparse queries."""
    from fastembed.sparse.bm25 import Bm25
    from llama_index.core.vector_stores.types import VectorStoreQuery, VectorStoreQueryMode
    from llama_index.vector_stores.qdrant import QdrantVectorStore
    from qdrant_client import QdrantClient

    settings = written
    identifier = "ERR_SSL_WRONG_VERSION_NUMBER"
    with Index(settings) as index:
        ours_hybrid = index.search(identifier, k=4, mode="hybrid")
        ours_sparse = index.search("retry backoff seconds reset", k=4, mode="sparse")
    model_dir = tmp_path / "bm25"
    model_dir.mkdir()
    (model_dir / "english.txt").write_text("\n".join(sorted(ENGLISH_STOPWORDS)) + "\n")
    bm25 = Bm25(MODEL_NAME, specific_model_path=str(model_dir))

    def pairs(vectors: Any) -> tuple[list[list[int]], list[list[float]]]:
        vectors = list(vectors)
        return [v.indices.tolist() for v in vectors], [v.values.tolist() for v in vectors]

    dense = LocalEmbedder()
    client = QdrantClient(path=str(settings.qdrant_path))
    try:
        store = QdrantVectorStore(
            collection_name=settings.physical_collection,
            client=client,
            enable_hybrid=True,
            sparse_vector_name=settings.sparse_vector_name,
            # Both given: LlamaIndex would otherwise load a SPLADE model for documents.
            sparse_doc_fn=lambda texts: pairs(bm25.embed(texts)),
            sparse_query_fn=lambda texts: pairs(bm25.query_embed(texts)),
            text_key="page_content",
        )
        # It finds the unnamed dense vector on its own (its "legacy" layout).
        assert store.dense_vector_name == ""

        def ask(text: str, mode: VectorStoreQueryMode) -> list[tuple[str, float]]:
            vector = dense.embed_query([text])[0].tolist()
            query = VectorStoreQuery(
                query_embedding=vector, query_str=text, similarity_top_k=4, mode=mode
            )
            result = store.query(query)
            nodes, scores = result.nodes or [], result.similarities or []
            return [
                (n.metadata["metadata"]["source"], s) for n, s in zip(nodes, scores, strict=True)
            ]

        hybrid = ask(identifier, VectorStoreQueryMode.HYBRID)
        sparse = ask("retry backoff seconds reset", VectorStoreQueryMode.SPARSE)
    finally:
        client.close()
    # LlamaIndex fuses on its side (relative scores), so only the winner is compared.
    assert hybrid[0][0] == ours_hybrid[0].source and hybrid[0][0].endswith("tls.md")
    # Same query tokens, same stored vectors, same IDF: the same ranking and scores.
    assert [(src, round(s, 5)) for src, s in sparse] == [
        (h.source, round(h.score, 5)) for h in ours_sparse
    ]


def test_sparse_off_keeps_the_old_digest_and_refuses_sparse_queries(
    s3_endpoint: str, s3_client: Any, bucket: str, tmp_path: Path
) -> None:
    s3_client.put_object(Bucket=bucket, Key="kb/tls.md", Body=DOCS["kb/tls.md"].encode())
    on = make_settings(bucket, tmp_path)
    off = on.replace(sparse=False)
    assert off.fingerprint.sparse_vector == "" and "sparse" not in off.fingerprint.as_json()
    assert on.physical_collection != off.physical_collection
    with dg.instance_for_test() as instance:
        Harness(instance, off, make_resources(s3_endpoint, off)).converge()
    with Index(off) as index:
        assert index.search("ERR_SSL_WRONG_VERSION_NUMBER", k=2)  # dense by default
        with pytest.raises(ValueError, match="holds no BM25 vectors"):
            index.search("ERR_SSL_WRONG_VERSION_NUMBER", mode="hybrid")
