"""What the cuts of a launched run's fixed cost (``bench/results/run-costs.md``) must keep true:
a run starts extraction workers only when a document needs extracting and loads the model only
when a text needs embedding; the BM25 punctuation test is fastembed's table, character for
character; a run worker's definitions are the code location's, less the component catalogue."""

from __future__ import annotations

import multiprocessing
import sys
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from rag_ingest import definitions
from rag_ingest.core.documents import isolation
from rag_ingest.core.text import encoder
from rag_ingest.core.text.sparse import Bm25Encoder, _is_punctuation
from rag_ingest.testing.harness import Harness, make_resources, make_settings

CATALOGUE_KEY = "plugin_component_types_json"


class Spies:
    """Counts of extraction worker processes started and models loaded, while the real ones run."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.workers = 0
        self.models = 0
        worker_start = isolation._Worker.start
        encoder_init = encoder.Encoder.__init__

        def start(worker: Any) -> None:
            self.workers += 1
            worker_start(worker)

        def init(enc: Any, *args: Any, **kwargs: Any) -> None:
            self.models += 1
            encoder_init(enc, *args, **kwargs)

        monkeypatch.setattr(isolation._Worker, "start", start)
        monkeypatch.setattr(encoder.Encoder, "__init__", init)
        # The process-wide encoder of earlier tests would hide a load.
        encoder._shared.cache_clear()

    def reset(self) -> None:
        self.workers = self.models = 0


@pytest.fixture()
def harness(s3_endpoint: str, bucket: str, tmp_path: Path) -> Iterator[Harness]:
    # extract_workers=2: the count of started workers shows a run started them all.
    settings = make_settings(bucket, tmp_path, full_reconcile_hours=24, extract_workers=2)
    with dg.instance_for_test() as instance:
        yield Harness(instance, settings, make_resources(s3_endpoint, settings))


def _paragraphs(seed: int) -> bytes:
    words = ["harbor", "lantern", "meadow", "copper", "glacier", "violin", "orchard", "saddle"]
    paragraphs = [
        " ".join(words[(seed + p + i * i) % len(words)] for i in range(50)) for p in range(4)
    ]
    return "\n\n".join(paragraphs).encode()


def _figure(run: dg.ExecuteInProcessResult, asset: str, name: str) -> int:
    value = run.asset_materializations_for_node(asset)[0].metadata[name].value
    assert isinstance(value, int)
    return value


def test_runs_start_workers_and_load_the_model_only_for_work_that_needs_them(
    harness: Harness, s3_client: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spies = Spies(monkeypatch)
    texts = {f"notes/{i}.txt": _paragraphs(i) for i in range(3)}
    for key, body in texts.items():
        s3_client.put_object(Bucket=bucket, Key=key, Body=body)
    new_text = harness.sync()
    assert [r.success for r in new_text] == [True]
    assert (spies.workers, spies.models) == (2, 1)  # the spies see the real starts

    spies.reset()
    harness.full_reconcile_due()
    nothing = harness.sync()
    assert [r.success for r in nothing] == [True]
    assert _figure(nothing[0], "raw_documents", "run_planned") == 0
    assert (spies.workers, spies.models) == (0, 0)

    spies.reset()
    s3_client.delete_object(Bucket=bucket, Key="notes/0.txt")
    deletes = harness.sync()
    assert [r.success for r in deletes] == [True]
    assert _figure(deletes[0], "raw_documents", "run_deleted") == 1
    assert (spies.workers, spies.models) == (0, 0)

    spies.reset()
    s3_client.put_object(Bucket=bucket, Key="again/0.txt", Body=texts["notes/0.txt"])
    cached = harness.sync()
    assert [r.success for r in cached] == [True]
    assert _figure(cached[0], "embeddings", "cache_misses") == 0
    assert _figure(cached[0], "embeddings", "cache_hits") > 0
    assert (spies.workers, spies.models) == (2, 0)  # extracted, nothing embedded
    assert harness.registry.status_counts() == {"ok": 3, "removed": 1}


def test_bm25_punctuation_is_fastembeds_table_for_every_character() -> None:
    from fastembed.common.utils import get_all_punctuation

    table = get_all_punctuation()
    assert len(table) > 500
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        assert _is_punctuation(char) == (char in table), hex(code)
    assert not _is_punctuation("..")  # only single characters are dropped, as in fastembed
    stems = Bm25Encoder()._stems_of("dough _ rises, « proofs » ‽ overnight")
    assert stems == ["dough", "rise", "proof", "overnight"]
    assert unicodedata.category("_") == "Pc"


def _in_run_worker() -> bool:
    return definitions.in_run_worker()


def test_a_run_worker_is_told_apart_from_the_code_server() -> None:
    assert not definitions.in_run_worker()
    # Dagster's code server starts a launched run as a spawned multiprocessing child.
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        assert pool.apply(_in_run_worker)


def test_run_worker_definitions_are_the_code_locations_without_the_catalogue(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("RAG_S3_BUCKET", "my-bucket")
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path))
    served = definitions.defs().get_repository_def()
    monkeypatch.setattr(definitions, "in_run_worker", lambda: True)
    worker = definitions.defs().get_repository_def()
    assert CATALOGUE_KEY in (served.metadata or {})
    assert CATALOGUE_KEY not in (worker.metadata or {})
    assert sorted(worker.job_names) == sorted(served.job_names)
    for name in served.job_names:
        # A run checks its job against the snapshot the code server planned it with.
        snapshot = served.get_job(name).get_job_snapshot_id()
        assert worker.get_job(name).get_job_snapshot_id() == snapshot, name
    assert {s.name for s in worker.sensor_defs} == {s.name for s in served.sensor_defs}
    assert {s.name for s in worker.schedule_defs} == {s.name for s in served.schedule_defs}
    assert set(worker.get_top_level_resources()) == set(served.get_top_level_resources())
    assert worker.asset_graph.get_all_asset_keys() == served.asset_graph.get_all_asset_keys()
