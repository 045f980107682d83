"""One contract, every embedded engine: qdrant-client's local mode and Qdrant Edge.

Each test runs against both implementations through :func:`open_vector_store`; a server
deployment uses the same ``QdrantClientStore`` code as ``local``.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from rag_ingest.core.keys import key_hash
from rag_ingest.core.vectorstore import (
    CollectionMismatch,
    DocumentPoints,
    ReplaceStats,
    VectorStore,
    open_vector_store,
)
from rag_ingest.core.vectorstore.edge import EdgeStore
from rag_ingest_tests.vectorstores import BUCKET, DIM, make_doc, run_child


@pytest.fixture(params=["local", "edge"])
def engine(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture()
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture()
def store(engine: str, store_path: Path) -> Iterator[VectorStore]:
    with open_vector_store(engine, path=store_path, lock_wait_seconds=2) as opened:
        yield opened


@pytest.fixture()
def docs(store: VectorStore) -> list[DocumentPoints]:
    """Thirty documents of 1–4 chunks, written to collection ``c``."""
    rng = np.random.default_rng(7)
    written = [make_doc(f"folder/doc-{i}.md", chunks=1 + i % 4, rng=rng) for i in range(30)]
    store.ensure_collection("c", DIM)
    store.replace_documents("c", written, batch_size=7)
    return written


# collections


def test_ensure_collection_creates_once_and_rejects_other_sizes(store: VectorStore) -> None:
    assert store.dimension("c") is None
    assert not store.collection_exists("c")
    assert store.ensure_collection("c", DIM) is True
    assert store.ensure_collection("c", DIM) is False
    assert store.collection_exists("c")
    assert store.dimension("c") == DIM
    assert store.list_collections() == ["c"]
    with pytest.raises(CollectionMismatch):
        store.ensure_collection("c", DIM + 1)
    assert store.count("c") == 0


def test_drop_collection_removes_points_and_its_aliases(
    store: VectorStore, docs: list[DocumentPoints]
) -> None:
    store.ensure_collection("other", DIM)
    store.set_alias("live", "c")
    store.set_alias("spare", "other")
    store.drop_collection("c")
    store.drop_collection("never-made")
    assert store.list_collections() == ["other"]
    assert store.aliases() == {"spare": "other"}
    assert store.count("c") == 0
    assert store.search("c", docs[0].vectors[0], 3) == []
    assert store.ensure_collection("c", DIM) is True
    assert store.count("c") == 0


# writing


def test_replace_documents_swaps_versions_and_is_idempotent(store: VectorStore) -> None:
    store.ensure_collection("c", DIM)
    v1 = make_doc("a.md", "v1", chunks=3)
    assert store.replace_documents("c", [v1]) == ReplaceStats(1, 3, 0)
    v2 = make_doc("a.md", "v2", chunks=2)
    assert store.replace_documents("c", [v2]) == ReplaceStats(1, 2, 3)
    assert store.replace_documents("c", [v2]) == ReplaceStats(1, 2, 0)
    assert store.count("c") == 2
    etags = {p.payload["metadata"]["etag"] for p in store.scroll("c")}
    assert etags == {"v2"}


def test_replace_with_no_chunks_removes_the_document(
    store: VectorStore, docs: list[DocumentPoints]
) -> None:
    gone = docs[3]
    empty = make_doc(gone.info.key, "v9", chunks=0)
    before = store.count("c")
    assert store.replace_documents("c", [empty]) == ReplaceStats(1, 0, len(gone.chunks))
    assert store.count("c") == before - len(gone.chunks)
    assert store.points_per_document("c", [gone.info.doc_id]) == Counter()
    assert store.replace_documents("c", []) == ReplaceStats(0, 0, 0)


def test_replace_counts_every_batch(store: VectorStore, docs: list[DocumentPoints]) -> None:
    total = sum(len(d.chunks) for d in docs)
    assert store.count("c") == total
    again = store.replace_documents("c", docs, batch_size=5)
    assert again == ReplaceStats(len(docs), total, 0)
    assert store.count("c") == total


def test_delete_documents(store: VectorStore, docs: list[DocumentPoints]) -> None:
    victims = [docs[0].info.doc_id, docs[1].info.doc_id]
    expected = len(docs[0].chunks) + len(docs[1].chunks)
    before = store.count("c")
    assert store.delete_documents("c", victims) == expected
    assert store.count("c") == before - expected
    assert store.delete_documents("c", victims) == 0
    assert store.delete_documents("c", []) == 0
    assert store.delete_documents("missing", victims) == 0
    assert store.points_per_document("c", [docs[2].info.doc_id]) == Counter(
        {docs[2].info.doc_id: len(docs[2].chunks)}
    )


# reading


def test_count_whole_and_by_key_hash_range(store: VectorStore, docs: list[DocumentPoints]) -> None:
    assert store.count("c") == sum(len(d.chunks) for d in docs)
    assert store.count("missing") == 0
    for low, high in [(0, 65535), (0, 32767), (32768, 65535), (1000, 20000)]:
        expected = sum(len(d.chunks) for d in docs if low <= key_hash(d.info.doc_id) <= high)
        assert store.count("c", (low, high)) == expected
    one = key_hash(docs[5].info.doc_id)
    assert store.count("c", (one, one)) >= len(docs[5].chunks)


def test_points_per_document(store: VectorStore, docs: list[DocumentPoints]) -> None:
    everything = Counter({d.info.doc_id: len(d.chunks) for d in docs})
    pages: list[int] = []
    assert store.points_per_document("c", on_page=pages.append) == everything
    assert sum(pages) == sum(everything.values())
    chosen = [docs[1].info.doc_id, docs[2].info.doc_id, "no-such-doc"]
    assert store.points_per_document("c", chosen) == Counter({d: everything[d] for d in chosen[:2]})
    low, high = 0, 30000
    assert store.points_per_document("c", key_hashes=(low, high)) == Counter(
        {d: n for d, n in everything.items() if low <= key_hash(d) <= high}
    )
    assert store.points_per_document("c", []) == Counter()
    assert store.points_per_document("missing") == Counter()


def test_scroll_payloads_vectors_and_limit(store: VectorStore, docs: list[DocumentPoints]) -> None:
    total = sum(len(d.chunks) for d in docs)
    points = list(store.scroll("c"))
    assert len(points) == total
    assert all(p.vector is None for p in points)
    assert len({p.id for p in points}) == total
    assert len(list(store.scroll("c", limit=5))) == 5
    assert len(list(store.scroll("c", limit=total + 10))) == total
    doc = docs[4]
    mine = list(store.scroll("c", [doc.info.doc_id], with_vectors=True))
    assert len(mine) == len(doc.chunks)
    for point in mine:
        index = point.payload["metadata"]["chunk_index"]
        assert point.vector is not None and point.vector.dtype == np.float32
        np.testing.assert_allclose(point.vector, doc.vectors[index], atol=1e-5)
    assert list(store.scroll("c", [])) == []
    assert list(store.scroll("missing")) == []


def test_payload_has_langchain_shape(store: VectorStore, docs: list[DocumentPoints]) -> None:
    doc = docs[6]
    points = sorted(
        store.scroll("c", [doc.info.doc_id]), key=lambda p: p.payload["metadata"]["chunk_index"]
    )
    for chunk, point in zip(doc.chunks, points, strict=True):
        assert set(point.payload) == {"page_content", "metadata"}
        assert point.payload["page_content"] == chunk.text
        meta = point.payload["metadata"]
        assert meta["doc_id"] == doc.info.doc_id
        assert meta["key_hash"] == key_hash(doc.info.doc_id)
        assert isinstance(meta["key_hash"], int)
        assert meta["source"] == f"s3://{BUCKET}/{doc.info.key}"
        assert (meta["bucket"], meta["key"], meta["etag"]) == (BUCKET, doc.info.key, "v1")
        assert (meta["chunk_index"], meta["chunk_count"]) == (chunk.index, len(doc.chunks))
        assert (meta["page"], meta["heading"], meta["title"]) == (
            chunk.page,
            chunk.heading,
            doc.info.title,
        )
        assert (meta["char_start"], meta["char_end"]) == (chunk.char_start, chunk.char_end)


def test_search_nearest_first(store: VectorStore, docs: list[DocumentPoints]) -> None:
    doc = docs[9]
    hits = store.search("c", doc.vectors[0], 5)
    assert len(hits) == 5
    top = hits[0]
    assert top.payload["metadata"]["doc_id"] == doc.info.doc_id
    assert top.payload["metadata"]["chunk_index"] == 0
    assert top.score == pytest.approx(1.0, abs=1e-4)
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    every = np.vstack([d.vectors for d in docs])
    expected = np.sort(every @ doc.vectors[0])[::-1][:5]
    np.testing.assert_allclose(scores, expected, atol=1e-4)
    assert store.search("missing", doc.vectors[0], 5) == []
    with pytest.raises(ValueError):
        store.search("c", doc.vectors[0], 0)


# aliases


def test_aliases_set_move_resolve_list(store: VectorStore, docs: list[DocumentPoints]) -> None:
    store.ensure_collection("c2", DIM)
    assert store.aliases() == {}
    store.set_alias("live", "c")
    assert store.aliases() == {"live": "c"}
    assert store.resolve("live") == "c"
    assert store.resolve("c") == "c"
    assert store.resolve("nothing") is None
    assert store.collection_exists("live")
    assert store.dimension("live") == DIM
    assert store.count("live") == store.count("c")
    store.set_alias("live", "c2")
    assert store.aliases() == {"live": "c2"}
    assert store.count("live") == 0
    assert store.search("live", docs[0].vectors[0], 3) == []
    store.replace_documents("live", docs[:2])
    assert store.count("c2") == len(docs[0].chunks) + len(docs[1].chunks)
    assert store.list_collections() == ["c", "c2"]
    with pytest.raises(ValueError):
        store.set_alias("dangling", "no-such-collection")
    with pytest.raises(ValueError):
        store.set_alias("c", "c2")


# lifecycle


def test_reopen_after_close_keeps_everything(
    engine: str, store_path: Path, store: VectorStore, docs: list[DocumentPoints]
) -> None:
    store.set_alias("live", "c")
    before = store.points_per_document("c")
    hits = store.search("c", docs[0].vectors[0], 3)
    store.close()
    store.close()
    with open_vector_store(engine, path=store_path, lock_wait_seconds=2) as again:
        assert again.location == store.location
        assert again.points_per_document("c") == before
        assert again.aliases() == {"live": "c"}
        assert again.dimension("c") == DIM
        assert [h.id for h in again.search("live", docs[0].vectors[0], 3)] == [h.id for h in hits]


def test_location_names_engine_and_absolute_folder(
    engine: str, store: VectorStore, store_path: Path
) -> None:
    assert store.location == f"{engine}:{store_path.resolve()}"


def test_acknowledged_writes_survive_a_killed_process(engine: str, store_path: Path) -> None:
    result = run_child(
        engine,
        store_path,
        f"""
        import os, signal
        from rag_ingest_tests.vectorstores import make_doc
        store = open_vector_store(engine, path=path)
        store.ensure_collection("c", {DIM})
        store.replace_documents("c", [make_doc("k.md", chunks=4)])
        os.kill(os.getpid(), signal.SIGKILL)
        """,
    )
    assert result.returncode == -9, result.stderr
    with open_vector_store(engine, path=store_path, lock_wait_seconds=5) as store:
        assert store.count("c") == 4


def test_second_process_waits_then_gets_store_locked(engine: str, store_path: Path) -> None:
    with open_vector_store(engine, path=store_path):
        started = time.monotonic()
        result = run_child(
            engine,
            store_path,
            """
            try:
                open_vector_store(engine, path=path, lock_wait_seconds=1.5)
            except StoreLocked as exc:
                print("locked:", exc)
                sys.exit(3)
            """,
        )
        elapsed = time.monotonic() - started
    assert result.returncode == 3, result.stderr
    assert "held by another process" in result.stdout
    assert elapsed >= 1.5


def test_second_process_gets_the_store_once_released(engine: str, store_path: Path) -> None:
    """The second opener waits for the first to close, then sees all it wrote. Ordered by a
    marker file, not by timing: the holder writes once more after the child is already trying
    to open, so a child let in early would miss that collection."""
    trying = store_path.parent / "child-trying"
    holder = open_vector_store(engine, path=store_path)
    holder.ensure_collection("c", DIM)

    def release() -> None:
        try:
            for _ in range(6000):  # a safety bound; the child normally marks within a second
                if trying.exists():
                    break
                time.sleep(0.01)
            holder.ensure_collection("d", DIM)
        finally:
            holder.close()

    releaser = threading.Thread(target=release)
    releaser.start()
    try:
        result = run_child(
            engine,
            store_path,
            f"""
            open({str(trying)!r}, "w").close()
            with open_vector_store(engine, path=path, lock_wait_seconds=90) as store:
                print(store.list_collections())
            """,
            timeout=120,
        )
    finally:
        releaser.join()
    assert trying.exists()
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['c', 'd']"


def test_optimize_keeps_results(engine: str, store_path: Path) -> None:
    # Edge with an indexing threshold of a few points, so optimize really builds an index.
    opened = (
        EdgeStore(store_path, indexing_threshold_points=10)
        if engine == "edge"
        else open_vector_store(engine, path=store_path)
    )
    rng = np.random.default_rng(11)
    docs = [make_doc(f"opt/doc-{i}.md", chunks=1 + i % 4, rng=rng) for i in range(60)]
    queries = [d.vectors[0] + 0.05 for d in docs[::6]]
    with opened as store:
        store.ensure_collection("c", DIM)
        store.replace_documents("c", docs)

        def results() -> list[list[tuple[str, float]]]:
            return [[(h.id, round(h.score, 4)) for h in store.search("c", q, 10)] for q in queries]

        before = results()
        assert store.optimize("c") is (engine == "edge")  # a server or local mode: nothing
        if isinstance(store, EdgeStore):
            assert store.index_status("c")[:2] == (150, 150)
        assert results() == before
        assert store.count("c") == 150
        assert store.optimize("missing") is False


def test_factory_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown"):
        open_vector_store("faiss", path=tmp_path)
    with pytest.raises(ValueError, match="needs path"):
        open_vector_store("edge")
    with pytest.raises(ValueError, match="needs url"):
        open_vector_store("server")


def test_server_location_hides_credentials() -> None:
    with open_vector_store(
        "server", url="https://user:secret@127.0.0.1:9/?api-key=x", api_key="k"
    ) as store:
        assert store.location == "server:https://127.0.0.1:9"
