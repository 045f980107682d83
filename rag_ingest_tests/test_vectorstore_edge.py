"""What the Edge store adds on top of the shared contract: its folder layout, alias file, index
builds, and the assumptions about Qdrant Edge that its locking rests on."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import qdrant_edge as qe

from rag_ingest.core.index.maintenance import build_index, index_wanted
from rag_ingest.core.vectorstore import DocumentPoints, StoreLocked
from rag_ingest.core.vectorstore.edge import (
    EdgeStore,
    IndexStatus,
    read_aliases,
    read_index_status,
)
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


def test_search_is_exact_before_the_index_and_only_optimize_builds_it(tmp_path: Path) -> None:
    docs = _big_docs(INDEXED_POINTS)
    every = np.vstack([d.vectors for d in docs])
    queries = every[:: INDEXED_POINTS // 20] + 0.01
    with EdgeStore(tmp_path, indexing_threshold_points=INDEXED_POINTS) as store:
        store.ensure_collection("c", 384)
        store.replace_documents("c", docs)
        assert store.index_status("c")[:2] == (INDEXED_POINTS, 0)
        for query in queries:
            expected = np.sort(every @ query / np.linalg.norm(query))[::-1][:10]
            scores = [h.score for h in store.search("c", query, 10)]
            np.testing.assert_allclose(scores, expected, atol=1e-4)
    # A writer's close only flushes, whatever the backlog; it records it for the maintenance
    # step, readable without the lock.
    assert read_index_status(tmp_path)["c"] == IndexStatus(INDEXED_POINTS, 0, 1)
    with EdgeStore(tmp_path, indexing_threshold_points=INDEXED_POINTS) as store:
        assert store.index_status("c")[:2] == (INDEXED_POINTS, 0)
        assert store.needs_index("c")
        assert store.optimize("c") is True
    with EdgeStore(tmp_path) as store:
        points, indexed, _ = store.index_status("c")
        assert points == INDEXED_POINTS
        assert indexed >= INDEXED_POINTS
        assert not store.needs_index("c")
        assert store.optimize("c") is False
        top = store.search("c", queries[0], 1)[0]
        assert top.score == pytest.approx(float(every[0] @ queries[0] / np.linalg.norm(queries[0])))
    assert read_index_status(tmp_path)["c"].backlog == 0


def _exact_top(every: np.ndarray, query: np.ndarray, k: int) -> np.ndarray:
    return np.sort(every @ (query / np.linalg.norm(query)))[::-1][:k]


def test_pipeline_sized_writes_end_indexed(tmp_path: Path) -> None:
    """Review M5 / issue 18 item 8: runs smaller than the threshold used to leave every point
    unindexed for ever, then the run crossing it built the index inside its lock. Now writer
    closes build nothing (the backlog grows across them) and the maintenance step, requested
    when the recorded backlog reaches the threshold, builds it between runs: ten runs of 1,500
    points with a 3,000-point threshold end with all of it indexed, in capped segments."""
    rng = np.random.default_rng(5)
    every = []
    backlogs = []
    builds = []
    settings: dict[str, Any] = {"indexing_threshold_points": 3000, "max_segment_points": 4000}
    for run in range(10):
        docs = [make_doc(f"r{run}/{i}.md", chunks=50, rng=rng, dim=384) for i in range(30)]
        every += [d.vectors for d in docs]
        with EdgeStore(tmp_path, **settings) as store:
            store.ensure_collection("c", 384)
            indexed_before = store.index_status("c")[1]
            store.replace_documents("c", docs)
        recorded = read_index_status(tmp_path)["c"]
        assert recorded.points == 1500 * (run + 1)
        assert recorded.indexed == indexed_before  # close() indexed nothing
        wanted, _ = index_wanted("edge", tmp_path, ["c"], threshold=3000)
        assert bool(wanted) == (recorded.backlog >= 3000)
        if wanted:
            with EdgeStore(tmp_path, **settings) as store:
                builds.append(build_index(store, "c"))
        with EdgeStore(tmp_path, indexing_threshold_points=None) as store:
            points, indexed, segments = store.index_status("c")
        backlogs.append(points - indexed)
    assert max(backlogs) < 3000  # a search never scans more than the threshold exhaustively
    assert [b.backlog_before for b in builds] == [3000] * 5
    assert all(b.built and b.backlog_after == 0 and b.points_indexed == 3000 for b in builds)
    assert segments > 2  # the cap kept each build to the new points, not one merged segment
    vectors = np.vstack(every)
    with EdgeStore(tmp_path, indexing_threshold_points=None) as store:
        assert store.index_status("c")[:2] == (15_000, 15_000)
        for i in range(0, 15_000, 1_000):
            query = vectors[i] + 0.01
            hits = store.search("c", query, 10)
            assert hits[0].score == pytest.approx(_exact_top(vectors, query, 1)[0], abs=1e-4)
            assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_no_close_builds_the_index(tmp_path: Path) -> None:
    with EdgeStore(tmp_path, indexing_threshold_points=1000) as store:
        store.ensure_collection("c", 384)
    with EdgeStore(tmp_path, indexing_threshold_points=1000) as store:
        store.replace_documents("c", _big_docs(2000))
    # Neither a writer's close nor a reader's, whatever the backlog.
    with EdgeStore(tmp_path, indexing_threshold_points=1000) as store:
        assert store.count("c") == 2000
    with EdgeStore(tmp_path, indexing_threshold_points=1000) as store:
        store.replace_documents("c", [make_doc("one.md", chunks=5, dim=384)])
    with EdgeStore(tmp_path, indexing_threshold_points=1000) as store:
        assert store.index_status("c")[:2] == (2005, 0)
        assert store.needs_index("c")
    assert read_index_status(tmp_path)["c"].backlog == 2005


def test_optimize_gives_an_older_collection_the_segment_cap(tmp_path: Path) -> None:
    """Collections made before the cap (Edge's defaults) get it at their next build."""
    with EdgeStore(tmp_path, indexing_threshold_points=None, max_segment_points=None) as store:
        store.ensure_collection("c", 384)
    config = json.loads((tmp_path / "collections" / "c" / "edge_config.json").read_text())
    assert not config.get("optimizers")
    with EdgeStore(tmp_path, indexing_threshold_points=1000, max_segment_points=1500) as store:
        store.replace_documents("c", _big_docs(1200))
        store.optimize("c")
        more = [make_doc(f"more/{i}.md", chunks=50, dim=384) for i in range(24)]
        store.replace_documents("c", more)
        store.optimize("c")
        points, indexed, segments = store.index_status("c")
    config = json.loads((tmp_path / "collections" / "c" / "edge_config.json").read_text())
    assert config["optimizers"]["max_segment_size"] == 1500 * 384 * 4 // 1024
    assert (points, indexed) == (2400, 2400)
    assert segments >= 3  # two capped indexed segments and the appendable one


def test_dropping_a_collection_forgets_its_index_status(tmp_path: Path) -> None:
    with EdgeStore(tmp_path) as store:
        store.ensure_collection("a", 8)
        store.ensure_collection("b", 8)
        store.replace_documents("a", [make_doc("x.md", chunks=3, dim=8)])
        store.replace_documents("b", [make_doc("y.md", chunks=2, dim=8)])
    assert {k: v.points for k, v in read_index_status(tmp_path).items()} == {"a": 3, "b": 2}
    with EdgeStore(tmp_path) as store:
        store.drop_collection("a")
    assert list(read_index_status(tmp_path)) == ["b"]


def _config(root: Path, name: str) -> dict:
    return json.loads((root / "collections" / name / "edge_config.json").read_text())


def _clustered_docs(n_points: int, seed: int = 7) -> list[DocumentPoints]:
    """Documents whose vectors sit around a few hundred topics, as text embeddings do (random
    vectors are a graph index's worst case, not what rag-ingest stores)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((300, 384))
    vectors = centres[rng.integers(0, 300, n_points)] / np.sqrt(384)
    vectors = vectors + rng.standard_normal((n_points, 384)) * 0.07 / np.sqrt(384) * 5
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    docs = _big_docs(n_points)
    return [
        dataclasses.replace(d, vectors=vectors[i * 50 : (i + 1) * 50]) for i, d in enumerate(docs)
    ]


def test_new_collections_get_int8_codes_and_older_ones_keep_what_they_had(tmp_path: Path) -> None:
    with EdgeStore(tmp_path, quantize=False) as store:
        store.ensure_collection("older", 384)
    with EdgeStore(tmp_path) as store:
        store.ensure_collection("newer", 384)
    assert _config(tmp_path, "newer")["quantization_config"] == {
        "scalar": {"type": "int8", "always_ram": True}
    }
    assert "quantization_config" not in _config(tmp_path, "older")
    docs = _clustered_docs(1500)
    every = np.vstack([d.vectors for d in docs])
    # A build by today's store (its optimizer settings differ, so the shard is reopened with
    # them) leaves the older collection unquantized, and oversampled searches still answer.
    with EdgeStore(tmp_path, indexing_threshold_points=1000, max_segment_points=5000) as store:
        store.replace_documents("older", docs)
        assert store.optimize("older") is True
        assert store.index_status("older")[:2] == (1500, 1500)
        query = every[3] + 0.01
        hits = store.search("older", query, 10)
        np.testing.assert_allclose([h.score for h in hits], _exact_top(every, query, 10), atol=1e-4)
    assert "quantization_config" not in _config(tmp_path, "older")
    assert _config(tmp_path, "older")["optimizers"]["max_segment_size"] == 5000 * 384 * 4 // 1024


def _position(metadata: dict) -> int:
    """Row of a ``_big_docs`` point in the stacked vectors: document ``big/<i>.md``, chunk j."""
    return int(metadata["key"].split("/")[1].split(".")[0]) * 50 + int(metadata["chunk_index"])


def test_quantized_search_rescores_on_the_originals(tmp_path: Path) -> None:
    """Graph walked on int8 codes, best 2×k rescored on the float vectors: scores are the exact
    cosines and recall@10 against exact search stays where the unquantized index has it."""
    docs = _clustered_docs(6000)
    every = np.vstack([d.vectors for d in docs])
    queries = every[::300] + np.random.default_rng(1).standard_normal((20, 384)) * 0.003
    recalls: dict[bool, float] = {}
    for quantize in (True, False):
        folder = tmp_path / f"q{quantize}"
        with EdgeStore(folder, indexing_threshold_points=1000, quantize=quantize) as store:
            store.ensure_collection("c", 384)
            store.replace_documents("c", docs)
            store.optimize("c")
            assert store.index_status("c")[:2] == (6000, 6000)
            found = 0
            for query in queries:
                hits = store.search("c", query, 10)
                unit = query / np.linalg.norm(query)
                exact_ids = set(np.argsort(-(every @ unit))[:10].tolist())
                positions = [_position(h.payload["metadata"]) for h in hits]
                np.testing.assert_allclose(
                    [h.score for h in hits], [every[p] @ unit for p in positions], atol=1e-4
                )
                found += len(exact_ids & set(positions))
            recalls[quantize] = found / (10 * len(queries))
    assert recalls[True] >= 0.95
    assert recalls[True] >= recalls[False] - 0.02
