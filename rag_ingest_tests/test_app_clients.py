"""What the README's "Query from an application" shows, with the unmodified clients: LangChain's
``QdrantVectorStore`` and LlamaIndex's Qdrant vector store read a collection this pipeline wrote
(qdrant-client local mode, the same client and payload a server would serve), through the
alias, and find the document a question is about."""

from __future__ import annotations

from typing import Any

import dagster as dg
import pytest

from rag_ingest.core.text.encoder import shared_encoder
from rag_ingest.testing import SAMPLE_CORPUS
from rag_ingest.testing.harness import Harness, make_resources, make_settings
from rag_ingest.testing.s3 import upload_corpus

QUESTION = "how do I feed a sourdough starter"


@pytest.fixture(scope="module")
def written(s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    import boto3

    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    bucket = "app-clients"
    client.create_bucket(Bucket=bucket)
    upload_corpus(client, bucket, SAMPLE_CORPUS / "guides")
    upload_corpus(client, bucket, SAMPLE_CORPUS / "notes", prefix="notes/")
    settings = make_settings(bucket, tmp_path_factory.mktemp("data"), qdrant_engine="local")
    with dg.instance_for_test() as instance:
        harness = Harness(instance, settings, make_resources(s3_endpoint, settings))
        harness.converge()
    return settings


def test_langchain_reads_the_collection(written: Any) -> None:
    from langchain_core.embeddings import Embeddings
    from langchain_qdrant import QdrantVectorStore
    from qdrant_client import QdrantClient

    model = shared_encoder()

    class Pipelines(Embeddings):  # the pipeline's model, as an application would load it
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return model.encode(texts).tolist()  # LangChain probes the dimension with it

        def embed_query(self, text: str) -> list[float]:
            return model.encode_query([text])[0].tolist()

    client = QdrantClient(path=str(written.qdrant_path))
    try:
        store = QdrantVectorStore(client, written.collection, embedding=Pipelines())
        docs = store.similarity_search(QUESTION, k=2)
    finally:
        client.close()
    assert docs[0].metadata["source"].endswith("sourdough.md"), docs
    assert "starter" in docs[0].page_content


def test_llamaindex_reads_the_collection(written: Any) -> None:
    from llama_index.core.vector_stores.types import VectorStoreQuery
    from llama_index.vector_stores.qdrant import QdrantVectorStore
    from qdrant_client import QdrantClient

    model = shared_encoder()
    client = QdrantClient(path=str(written.qdrant_path))
    try:
        store = QdrantVectorStore(
            collection_name=written.collection, client=client, text_key="page_content"
        )
        vector = model.encode_query([QUESTION])[0].tolist()
        query = VectorStoreQuery(query_embedding=vector, similarity_top_k=2)
        result = store.query(query)
    finally:
        client.close()
    nodes = result.nodes or []
    assert nodes and "starter" in nodes[0].get_content(), nodes
    # LlamaIndex hands the payload over as the node's metadata: the pipeline's own metadata
    # (LangChain's shape) is under "metadata".
    assert nodes[0].metadata["metadata"]["source"].endswith("sourdough.md"), nodes[0].metadata
