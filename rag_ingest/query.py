"""Query the index from Python: what `rag-ingest search` runs, importable by applications.

    from rag_ingest.query import Index

    with Index() as index:          # settings from the environment, as the pipeline reads them
        for hit in index.search("how do I knead dough?", k=5):
            print(hit.score, hit.source, hit.text[:80])

``mode`` is ``dense`` (the model), ``sparse`` (BM25, fastembed's ``Qdrant/bm25`` tokens, IDF
from the collection) or ``hybrid`` (both, fused by Qdrant with reciprocal rank fusion); unset, it
is ``hybrid`` when the collection holds BM25 vectors (``RAG_SPARSE``, on by default) and
``dense`` otherwise. ``RAG_HYBRID_SPARSE_WEIGHT`` weights BM25's ranking in the fusion.

The model loads once, when the first query needs it, and stays loaded for the life of the
``Index``. The vector store is opened per query and released straight after: the embedded
engines are held by one process at a time, so an ``Index`` kept open in an application never
keeps the pipeline's writers waiting. Applications that query while the pipeline writes, or from
several processes, point ``RAG_QDRANT_URL`` at a Qdrant server (see the README).
"""

from __future__ import annotations

import contextlib
from types import TracebackType
from typing import Any

from rag_ingest.core.config import Settings
from rag_ingest.core.index.search import MODES, Hit, Mode, search_collection
from rag_ingest.core.text.sparse import Bm25Encoder
from rag_ingest.core.vectorstore import Fusion

__all__ = ["MODES", "Hit", "Index", "Mode"]


class Index:
    """A reader of the live collection (the alias the pipeline serves) with the model loaded once.

    ``settings`` defaults to ``Settings.from_env()`` (the ``RAG_*`` environment);
    ``collection`` names another collection or alias than the live one.
    """

    def __init__(self, settings: Settings | None = None, collection: str | None = None) -> None:
        self.settings = settings or Settings.from_env()
        self.collection = collection or self.settings.collection
        self._stack: contextlib.ExitStack | None = None
        self._resources: Any = None
        self._bm25: Bm25Encoder | None = None

    def _open(self) -> Any:
        if self._resources is None:
            import dagster as dg

            from rag_ingest.defs.resources import build_resources

            wired = build_resources(self.settings)
            stack = contextlib.ExitStack()
            self._resources = stack.enter_context(
                dg.build_resources({name: wired[name] for name in ("vectors", "embedder")})
            )
            self._stack = stack
        return self._resources

    def search(self, query: str, k: int = 5, mode: Mode | None = None) -> list[Hit]:
        """The ``k`` best chunks for ``query``, best first; empty when nothing is indexed.

        Raises:
            ValueError: an empty query, an unknown mode, or ``sparse``/``hybrid`` on a
                collection without BM25 vectors.
        """
        if not query.strip():
            raise ValueError("the query is empty")
        if mode is not None and mode not in MODES:
            raise ValueError(f"unknown search mode {mode!r}; allowed: {', '.join(MODES)}")
        res = self._open()
        with res.vectors.open() as store:
            has_sparse = store.sparse_vector(self.collection) is not None
        mode = mode or ("hybrid" if has_sparse else "dense")
        if mode != "dense" and not has_sparse:
            raise ValueError(
                f"{self.collection!r} holds no BM25 vectors, so --mode {mode} cannot run: "
                "search with --mode dense, or index with RAG_SPARSE=true (a new version)"
            )
        sparse = None
        if mode != "dense":
            self._bm25 = self._bm25 or Bm25Encoder()
            sparse = self._bm25.embed_query(query)
        # The model's query prompt; a sparse-only search never loads the model.
        vector = res.embedder.embed_query([query])[0] if mode != "sparse" else None
        with res.vectors.open() as store:
            served = store.dimension(self.collection)
            if vector is not None and served is not None and served != len(vector):
                raise ValueError(
                    f"{self.collection!r} holds {served}-d vectors but RAG_EMBED_MODEL "
                    f"{res.embedder.model_name} embeds {len(vector)}-d queries: query with the "
                    "model of the live version (rag-ingest index list shows it)"
                )
            fusion = Fusion(sparse_weight=self.settings.hybrid_sparse_weight)
            return search_collection(store, self.collection, vector, k, sparse, fusion)

    def close(self) -> None:
        """Unload the model; the ``Index`` can be used again (it loads once more)."""
        if self._stack is not None:
            self._stack.close()
        self._stack = None
        self._resources = None

    def __enter__(self) -> Index:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
