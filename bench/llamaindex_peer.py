"""The peer: LlamaIndex's stock ingestion of the same objects into embedded Qdrant.

``IngestionPipeline([SentenceSplitter(), HuggingFaceEmbedding(<packaged model dir>)])`` with a
``QdrantVectorStore``, all at LlamaIndex defaults (1,024-token chunks with 200 overlap counted by
tiktoken, embed batches of 10), reading the objects the way ``llama-index-readers-s3`` does:
download with boto3 into a temporary folder and load it with ``SimpleDirectoryReader``.

``FITTED`` is the like-for-like variant: chunks small enough (tiktoken tokens, metadata included)
that the model reads them whole, with rag-ingest's overlap, so both embed the same amount of text.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag_ingest.core.encoder import MAX_SEQ_LENGTH, load_tokenizer, model_dir

# SentenceSplitter(chunk_size=..., chunk_overlap=...) for the like-for-like run.
FITTED = (200, 32)


def available() -> bool:
    try:
        import llama_index.core
        import llama_index.embeddings.huggingface
        import llama_index.vector_stores.qdrant  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class PeerMeasure:
    documents: int
    llama_documents: int
    chunks: int
    over_window: int
    seconds: float
    read_seconds: float
    # Word pieces of what it embeds, and how many of them the model actually reads (≤ 256 each).
    tokens: int = 0
    tokens_read: int = 0

    @property
    def over_window_share(self) -> float:
        return self.over_window / self.chunks if self.chunks else float("nan")


def load_embedder() -> Any:
    """The peer's embedding model (loaded once, outside the timed part, as for rag-ingest)."""
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    return HuggingFaceEmbedding(model_name=str(model_dir()), device="cpu")


def run_llamaindex(
    client: Any,
    bucket: str,
    keys: Sequence[str],
    workdir: Path,
    embed_model: Any,
    splitter: tuple[int, int] | None = None,
) -> PeerMeasure:
    """One ingestion; ``splitter``: SentenceSplitter (chunk_size, chunk_overlap), else defaults."""
    from llama_index.core import SimpleDirectoryReader
    from llama_index.core.ingestion import IngestionPipeline
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.core.schema import MetadataMode
    from llama_index.vector_stores.qdrant import QdrantVectorStore
    from qdrant_client import QdrantClient

    workdir.mkdir(parents=True, exist_ok=True)
    qdrant = QdrantClient(path=str(workdir / "qdrant"))
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(dir=workdir) as tmp:
            for key in keys:
                target = Path(tmp) / key
                target.parent.mkdir(parents=True, exist_ok=True)
                client.download_file(bucket, key, str(target))
            documents = SimpleDirectoryReader(tmp, recursive=True).load_data()
        read_seconds = time.perf_counter() - started
        split = SentenceSplitter()
        if splitter:
            split = SentenceSplitter(chunk_size=splitter[0], chunk_overlap=splitter[1])
        pipeline = IngestionPipeline(
            transformations=[split, embed_model],
            vector_store=QdrantVectorStore(client=qdrant, collection_name="documents"),
        )
        nodes = pipeline.run(documents=documents)
        seconds = time.perf_counter() - started
    finally:
        qdrant.close()
    # What the model is fed: the node text with its embed-mode metadata, as LlamaIndex sends it.
    tokenizer = load_tokenizer()
    lengths = [
        len(tokenizer.encode(n.get_content(metadata_mode=MetadataMode.EMBED)).ids) for n in nodes
    ]
    over = sum(n > MAX_SEQ_LENGTH for n in lengths)
    read = sum(min(n, MAX_SEQ_LENGTH) for n in lengths)
    return PeerMeasure(
        len(keys), len(documents), len(nodes), over, seconds, read_seconds, sum(lengths), read
    )
