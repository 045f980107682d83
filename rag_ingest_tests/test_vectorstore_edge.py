"""What the Edge store adds on top of the shared contract: its folder layout, alias file, index
builds, and the assumptions about Qdrant Edge that its locking rests on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import qdrant_edge as qe

from rag_ingest.core.vectorstore import DocumentPoints, StoreLocked
from rag_ingest.core.vectorstore.edge import EdgeStore, read_aliases
from rag_ingest_tests.vectorstores import REPO, make_doc

# Enough 384-d points to pass Edge's default indexing threshold (10 MB of vectors).
INDEXED_POINTS = 8000


def _big_docs(n_points: int, chunks: int = 50) -> list[DocumentPoints]:
    rng = np.random.default_rng(3)
    return [
        make_doc(f"big/{i}.md", chunks=chunks, rng=rng, dim=384) for i in range(n_points // chunks)
    ]


def test_layout_is_one_shard_per_collection(tmp_path: Path) -> None:
    with EdgeStore(tmp_path) as store:
        store.ensure_collection("a", 8)
        store.ensure_collection("b", 8)
        store.set_alias("live", "a")
    assert sorted(p.name for p in (tmp_path / "collections").iterdir()) == ["a", "b"]
    assert json.loads((tmp_path / "aliases.json").read_text()) == {"live": "a"}
    assert read_aliases(tmp_path) == {"live": "a"}
    assert (tmp_path / ".lock").is_file()


def test_leftovers_of_a_dead_process_are_swept(tmp_path: Path) -> None:
    half_made = tmp_path / "collections" / ".new-a-1234"
    half_made.mkdir(parents=True)
    with EdgeStore(tmp_path) as store:
        assert store.list_collections() == []
        assert not half_made.exists()


def test_invalid_names_are_refused(tmp_path: Path) -> None:
    with EdgeStore(tmp_path) as store:
        for name in ["../escape", ".hidden", "a/b", ""]:
            with pytest.raises(ValueError):
                store.ensure_collection(name, 8)
            assert store.resolve(name) is None


def test_alias_readers_see_old_or_new_mapping_never_neither(tmp_path: Path) -> None:
    seen: set[str] = set()
    failures: list[BaseException] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            try:
                seen.add(read_aliases(tmp_path)["live"])
            except BaseException as exc:  # a missing key or a torn file
                failures.append(exc)
                return

    with EdgeStore(tmp_path) as store:
        store.ensure_collection("a", 8)
        store.ensure_collection("b", 8)
        store.set_alias("live", "a")
        reader = threading.Thread(target=read)
        reader.start()
        for i in range(300):
            store.set_alias("live", "ab"[i % 2])
        done.set()
        reader.join()
    assert failures == []
    assert seen == {"a", "b"}


def test_edge_itself_refuses_a_second_opener_of_a_shard(tmp_path: Path) -> None:
    """Why readers cannot share an Edge store: the shard's WAL lock fails any second ``load``."""
    with EdgeStore(tmp_path) as store:
        store.ensure_collection("a", 8)
        store.count("a")  # opens the shard
        shard = tmp_path / "collections" / "a"
        code = f"import qdrant_edge as qe; qe.EdgeShard.load({str(shard)!r})"
        result = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            timeout=60,
        )
    assert result.returncode != 0
    assert "WouldBlock" in result.stderr
    # The same process, too: one EdgeStore per folder per process.
    with pytest.raises(Exception, match="WouldBlock"), EdgeStore(tmp_path) as store:
        store.count("a")
        qe.EdgeShard.load(str(shard))


def test_same_process_second_store_is_locked_out(tmp_path: Path) -> None:
    with EdgeStore(tmp_path), pytest.raises(StoreLocked, match="pid"):
        EdgeStore(tmp_path, lock_wait_seconds=0.2)


def test_search_is_exact_before_the_index_and_close_builds_it(tmp_path: Path) -> None:
    docs = _big_docs(INDEXED_POINTS)
    every = np.vstack([d.vectors for d in docs])
    queries = every[:: INDEXED_POINTS // 20] + 0.01
    with EdgeStore(tmp_path, auto_optimize_points=INDEXED_POINTS) as store:
        store.ensure_collection("c", 384)
        store.replace_documents("c", docs)
        assert store.index_status("c")[:2] == (INDEXED_POINTS, 0)
        for query in queries:
            expected = np.sort(every @ query / np.linalg.norm(query))[::-1][:10]
            scores = [h.score for h in store.search("c", query, 10)]
            np.testing.assert_allclose(scores, expected, atol=1e-4)
    # close() saw enough changed points and built the index
    with EdgeStore(tmp_path) as store:
        points, indexed, _ = store.index_status("c")
        assert points == INDEXED_POINTS
        assert indexed >= INDEXED_POINTS
        assert store.optimize("c") is False
        top = store.search("c", queries[0], 1)[0]
        assert top.score == pytest.approx(float(every[0] @ queries[0] / np.linalg.norm(queries[0])))


def _exact_top(every: np.ndarray, query: np.ndarray, k: int) -> np.ndarray:
    return np.sort(every @ (query / np.linalg.norm(query)))[::-1][:k]


def test_pipeline_sized_writes_end_indexed(tmp_path: Path) -> None:
    """Review M5: runs smaller than the threshold used to leave every point unindexed for
    ever. The backlog now carries over between opens, so ten runs of 1,500 points with a
    3,000-point threshold build the index every second run and end with all of it indexed."""
    rng = np.random.default_rng(5)
    every = []
    backlogs = []
    for run in range(10):
        docs = [make_doc(f"r{run}/{i}.md", chunks=50, rng=rng, dim=384) for i in range(30)]
        every += [d.vectors for d in docs]
        with EdgeStore(tmp_path, auto_optimize_points=3000) as store:
            store.ensure_collection("c", 384)
            store.replace_documents("c", docs)
        with EdgeStore(tmp_path, auto_optimize_points=None) as store:
            points, indexed, _ = store.index_status("c")
        assert points == 1500 * (run + 1)
        backlogs.append(points - indexed)
    assert max(backlogs) < 3000  # a search never scans more than the threshold exhaustively
    vectors = np.vstack(every)
    with EdgeStore(tmp_path, auto_optimize_points=None) as store:
        assert store.index_status("c")[:2] == (15_000, 15_000)
        for i in range(0, 15_000, 1_000):
            query = vectors[i] + 0.01
            hits = store.search("c", query, 10)
            assert hits[0].score == pytest.approx(_exact_top(vectors, query, 1)[0], abs=1e-4)
            assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_only_a_writer_builds_the_index(tmp_path: Path) -> None:
    with EdgeStore(tmp_path, auto_optimize_points=1000) as store:
        store.ensure_collection("c", 384)
    with EdgeStore(tmp_path, auto_optimize_points=None) as store:
        store.replace_documents("c", _big_docs(2000))
    # A reader's open stays as short as its read, whatever the backlog.
    with EdgeStore(tmp_path, auto_optimize_points=1000) as store:
        assert store.count("c") == 2000
    with EdgeStore(tmp_path) as store:
        assert store.index_status("c")[:2] == (2000, 0)
    with EdgeStore(tmp_path, auto_optimize_points=1000) as store:
        store.replace_documents("c", [make_doc("one.md", chunks=5, dim=384)])
    with EdgeStore(tmp_path) as store:
        assert store.index_status("c")[:2] == (2005, 2005)
