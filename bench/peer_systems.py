"""The three systems the peers benchmark runs side by side, each behind ``sync(corpus)``: bring
its vector store in line with the corpus, and say how long that took and how many texts went to
the embedding model.

- ``ProjectPeer``: this project's real path — the corpus in a moto S3 bucket, the listing
  sensor's ticks and the ``ingest_documents`` runs they request executed in process on a
  Dagster instance, the real MiniLM (``LocalEmbedder``, counted by a subclass) and the embedded
  Qdrant Edge store, with its chunk-level embedding cache in the registry database.
- ``LlamaIndexPeer``: LlamaIndex's ``IngestionPipeline`` with a ``SimpleDocumentStore`` and
  ``DocstoreStrategy.UPSERTS_AND_DELETE``, a ``SentenceSplitter`` at the same word-piece budget
  (counted by the model's own tokenizer), ``HuggingFaceEmbedding`` on the same model folder
  (its texts counted by LlamaIndex's own instrumentation) and ``QdrantVectorStore`` over
  qdrant-client's local mode.
- ``SeedPeer``: the seed's approach — every document extracted and chunked by the project's
  own functions and embedded by one model call per document, every run, its points replaced in
  qdrant-client's local mode.

Every system loads and warms its model before anything is timed (a long-lived process holds it).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
from llama_index.core import Document
from llama_index.core.ingestion import DocstoreStrategy, IngestionPipeline
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.embedding import EmbeddingEndEvent
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.storage.docstore import SimpleDocumentStore
from llama_index.embeddings.huggingface import HuggingFaceEmbedding
from llama_index.vector_stores.qdrant import QdrantVectorStore
from llama_index_instrumentation import get_dispatcher
from qdrant_client import QdrantClient, models

from rag_ingest.core.documents.extract import extract
from rag_ingest.core.text.chunking import chunk_blocks
from rag_ingest.core.text.encoder import shared_encoder
from rag_ingest.core.text.model import load_tokenizer, model_dir
from rag_ingest.resources.embedders import EmbedStats, LocalEmbedder
from rag_ingest.testing.harness import Harness, make_resources, make_settings

from .common import Stopwatch, s3_client
from .gpu_speed import INSTANCE_YAML, QUIET_LOGS
from .peer_docs import Corpus

# Texts and calls the project's embedder received. Module level, not a field: resources are
# frozen pydantic models that Dagster copies when it binds them.
_PROJECT_EMBEDDED = {"texts": 0, "calls": 0}


@dataclass
class SyncFigures:
    """One system's figures for one phase."""

    wall_seconds: float
    texts_embedded: int
    embed_calls: int
    points: int  # in its vector store afterwards
    runs: int = 0  # Dagster runs (the project only)
    cache_hits: int = 0  # chunks whose vectors came from the project's cache


class CountingEmbedder(LocalEmbedder):
    """The project's LocalEmbedder, unchanged, that also counts what it is asked to embed."""

    def embed(self, texts: list[str]) -> tuple[np.ndarray, EmbedStats]:
        _PROJECT_EMBEDDED["texts"] += len(texts)
        _PROJECT_EMBEDDED["calls"] += 1
        return super().embed(texts)


class EmbeddingCounter(BaseEventHandler):
    """Counts the texts LlamaIndex's embedding models report embedding, through its own
    instrumentation (every ``get_text_embedding*`` call ends with an ``EmbeddingEndEvent``)."""

    texts: int = 0
    calls: int = 0

    @classmethod
    def class_name(cls) -> str:
        return "EmbeddingCounter"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        if isinstance(event, EmbeddingEndEvent):
            self.texts += len(event.chunks)
            self.calls += 1


class ProjectPeer:
    """This project: S3 (moto) → listing sensor → ``ingest_documents`` runs → Qdrant Edge."""

    name = "rag-ingest"

    def __init__(
        self, workdir: Path, endpoint: str, max_tokens: int, overlap: int, shards: int = 16
    ) -> None:
        self.client = s3_client(endpoint)
        self.bucket = f"peers-{uuid.uuid4().hex[:10]}"
        self.client.create_bucket(Bucket=self.bucket)
        self.settings = make_settings(
            self.bucket,
            workdir / "data",
            shards=shards,
            chunk_max_tokens=max_tokens,
            chunk_overlap_tokens=overlap,
        )
        embedder = CountingEmbedder()
        embedder.embed(["warm-up"])  # loads the shared model once, as a run process would
        resources = make_resources(endpoint, self.settings, embedder)
        home = workdir / "dagster_home"
        home.mkdir(parents=True, exist_ok=True)
        (home / "dagster.yaml").write_text(INSTANCE_YAML)
        self.instance = dg.DagsterInstance.from_config(str(home))
        self.harness = Harness(self.instance, self.settings, resources)
        self._job = self.harness.job("ingest_documents")  # resolved once, as a code location
        self._stored: dict[str, bytes] = {}
        self.confirm_seconds: list[float] = []  # each phase's last tick, which found no work

    def close(self) -> None:
        self.instance.dispose()

    def _put(self, corpus: Corpus) -> None:
        """The bucket made to hold ``corpus`` (the source changing; not timed)."""
        for key, data in corpus.documents.items():
            if self._stored.get(key) != data:
                self.client.put_object(Bucket=self.bucket, Key=key, Body=data)
                self._stored[key] = data
        for key in set(self._stored) - set(corpus.documents):
            self.client.delete_object(Bucket=self.bucket, Key=key)
            del self._stored[key]

    def sync(self, corpus: Corpus, max_ticks: int = 5) -> SyncFigures:
        """Ticks, and the runs each requests, until a tick requests none. The wall ends when
        the last run ends (every change is then searchable); with no run, it is the one tick
        that found nothing to do."""
        self._put(corpus)
        before = dict(_PROJECT_EMBEDDED)
        outcomes: list[dg.ExecuteInProcessResult] = []
        wall = 0.0
        for _ in range(max_ticks):
            with Stopwatch() as tick:
                requests = list(self.harness.tick().run_requests or [])
            if not requests:
                if not outcomes:
                    wall = tick.seconds
                self.confirm_seconds.append(tick.seconds)
                break
            wall += tick.seconds
            for request in requests:
                assert isinstance(request, dg.RunRequest)
                tags = dict(request.tags)
                if request.run_key:
                    tags["dagster/run_key"] = request.run_key  # as the daemon records it
                with Stopwatch() as run:
                    outcome = self._job.execute_in_process(
                        instance=self.instance,
                        tags=tags,
                        run_config=QUIET_LOGS,
                        raise_on_error=False,
                    )
                wall += run.seconds
                if not outcome.success:
                    raise RuntimeError(f"run {outcome.run_id} failed")
                outcomes.append(outcome)
        else:
            raise RuntimeError(f"still requesting runs after {max_ticks} ticks")
        texts = _PROJECT_EMBEDDED["texts"] - before["texts"]
        recorded = sum(_embedding_meta(o, "texts_embedded") for o in outcomes)
        if recorded != texts:  # the run's own record and the wrapped embedder must agree
            raise AssertionError(f"runs recorded {recorded} texts embedded, embedder saw {texts}")
        return SyncFigures(
            wall_seconds=wall,
            texts_embedded=texts,
            embed_calls=_PROJECT_EMBEDDED["calls"] - before["calls"],
            points=len(self.harness.points()),
            runs=len(outcomes),
            cache_hits=sum(_embedding_meta(o, "cache_hits") for o in outcomes),
        )


def _embedding_meta(outcome: dg.ExecuteInProcessResult, name: str) -> int:
    """A run-wide figure of the ``embeddings`` step (each shard's materialization repeats it)."""
    mats = outcome.asset_materializations_for_node("embeddings")
    value = mats[0].metadata[name].value if mats else 0
    return int(value) if isinstance(value, int | float) else 0


def _token_counter(path: str) -> Any:
    tokenizer = load_tokenizer(path)
    return lambda text: tokenizer.encode(text, add_special_tokens=False).ids


class LlamaIndexPeer:
    """LlamaIndex's IngestionPipeline with its docstore deciding what to (re-)ingest."""

    name = "LlamaIndex"

    def __init__(self, workdir: Path, max_tokens: int, overlap: int, batch_size: int = 64) -> None:
        path = str(model_dir())
        embed = HuggingFaceEmbedding(model_name=path, device="cpu", embed_batch_size=batch_size)
        embed.get_text_embedding("warm-up")
        self.counter = EmbeddingCounter()
        get_dispatcher().add_event_handler(self.counter)
        self.client = QdrantClient(path=str(workdir / "llama-qdrant"))
        self.collection = "peers"
        splitter = SentenceSplitter(
            chunk_size=max_tokens, chunk_overlap=overlap, tokenizer=_token_counter(path)
        )
        self.pipeline = IngestionPipeline(
            transformations=[splitter, embed],
            docstore=SimpleDocumentStore(),
            vector_store=QdrantVectorStore(collection_name=self.collection, client=self.client),
            docstore_strategy=DocstoreStrategy.UPSERTS_AND_DELETE,
        )

    def close(self) -> None:
        get_dispatcher().event_handlers.remove(self.counter)
        self.client.close()

    def sync(self, corpus: Corpus) -> SyncFigures:
        # A reader's output: the file's text, its key as the document id the docstore tracks.
        documents = [
            Document(text=data.decode(), id_=key, metadata={"source": key})
            for key, data in corpus.documents.items()
        ]
        texts, calls = self.counter.texts, self.counter.calls
        with Stopwatch() as sw:
            self.pipeline.run(documents=documents)
        return SyncFigures(
            wall_seconds=sw.seconds,
            texts_embedded=self.counter.texts - texts,
            embed_calls=self.counter.calls - calls,
            points=self.client.count(self.collection).count,
        )


class SeedPeer:
    """The seed's approach: one embedding call per document, every document every run."""

    name = "seed (one call per document)"

    def __init__(self, workdir: Path, max_tokens: int, overlap: int, batch_size: int = 64) -> None:
        self.max_tokens, self.overlap = max_tokens, overlap
        self.encoder = shared_encoder("cpu", batch_size)
        self.encoder.encode(["warm-up"])
        self.client = QdrantClient(path=str(workdir / "seed-qdrant"))
        self.collection = "peers"
        self.client.create_collection(
            self.collection,
            vectors_config=models.VectorParams(
                size=self.encoder.dimension, distance=models.Distance.COSINE
            ),
        )

    def close(self) -> None:
        self.client.close()

    def sync(self, corpus: Corpus) -> SyncFigures:
        texts = calls = 0
        with Stopwatch() as sw:
            for key, data in corpus.documents.items():
                chunks = chunk_blocks(extract(key, data).blocks, self.max_tokens, self.overlap)
                vectors = self.encoder.encode([c.text for c in chunks])
                texts += len(chunks)
                calls += 1
                self.client.delete(
                    self.collection,
                    models.Filter(
                        must=[
                            models.FieldCondition(key="source", match=models.MatchValue(value=key))
                        ]
                    ),
                )
                self.client.upsert(
                    self.collection,
                    [
                        models.PointStruct(
                            id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{key}#{i}")),
                            vector=vector.tolist(),
                            payload={"source": key, "text": chunk.text},
                        )
                        for i, (chunk, vector) in enumerate(zip(chunks, vectors, strict=True))
                    ],
                )
        return SyncFigures(sw.seconds, texts, calls, self.client.count(self.collection).count)
