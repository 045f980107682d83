"""End to end on real local components: moto S3, embedded Qdrant Edge, the packaged model."""

from collections.abc import Iterator
from typing import Any

import dagster as dg
import numpy as np
import pytest

from rag_ingest.core.keys import document_id
from rag_ingest.core.records import DocumentInfo
from rag_ingest.core.text.chunking import Chunk
from rag_ingest.core.text.encoder import shared_encoder
from rag_ingest.core.vectorstore import DocumentPoints
from rag_ingest.testing.harness import Harness, make_resources, make_settings, shard_range
from rag_ingest.testing.s3 import upload_corpus

ODD_KEYS = {
    "odd/Q3 report, final (v2).md": "# Quarterly report\n\nRevenue grew by twelve percent.",
    "odd/日本語/ドキュメント.md": "# 富士山\n\n富士山は日本で一番高い山です。",
    "odd/../weird..name.txt": "Dots in keys must not escape storage.",
    "odd/a b/c d.txt": "Spaces in every part of the key.",
    "odd/" + "long-" * 200 + "key.txt": "A key of over a thousand bytes.",
    "odd/" + "p" * 70 + "/same-prefix-1.txt": "Keys that differ only after 64 characters, one.",
    "odd/" + "p" * 70 + "/same-prefix-2.txt": "Keys that differ only after 64 characters, two.",
    "odd/a|b [link](http://x.test).txt": "A key with Markdown table and link syntax.",
}
PER_RUN = 8


@pytest.fixture(scope="module")
def world(s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from rag_ingest.core.storage.s3 import make_client

    client = make_client(s3_endpoint, "us-east-1")
    bucket = "pipeline-e2e"
    client.create_bucket(Bucket=bucket)
    keys = upload_corpus(client, bucket)
    for key, text in ODD_KEYS.items():
        client.put_object(Bucket=bucket, Key=key, Body=text.encode())
    keys += list(ODD_KEYS)
    settings = make_settings(bucket, tmp_path_factory.mktemp("data"), documents_per_run=PER_RUN)
    with dg.instance_for_test() as instance:
        harness = Harness(instance, settings, make_resources(s3_endpoint, settings))
        first_runs = harness.sync()
        yield {"harness": harness, "keys": keys, "bucket": bucket, "first_runs": first_runs}


def _meta(point: Any) -> dict[str, Any]:
    return point.payload["metadata"]


def test_the_sensor_batches_shards_into_few_runs(world: dict[str, Any]) -> None:
    harness: Harness = world["harness"]
    runs = world["first_runs"]
    layout = harness.settings.shard_layout
    assert all(run.success for run in runs)
    shards = {layout.of(document_id(world["bucket"], k)) for k in world["keys"]}
    covered: set[str] = set()
    for run in runs:
        first, last = shard_range(run)
        span = layout.span(first, last)
        assert first in shards and last in shards  # runs start and end at shards with work
        covered |= set(span)
        docs = [k for k in world["keys"] if layout.of(document_id(world["bucket"], k)) in span]
        assert len(docs) <= PER_RUN or first == last  # a shard is never split
    assert shards <= covered
    assert len(runs) < len(world["keys"])  # many documents per run, not one run each
    # The partition set is fixed: the shard keys, whatever the corpus.
    job = harness.job("ingest_documents")
    assert job.partitions_def is not None
    assert job.partitions_def.get_partition_keys() == layout.keys()


def test_every_good_document_is_in_qdrant_with_langchain_payload(world: dict[str, Any]) -> None:
    harness: Harness = world["harness"]
    points = harness.points()
    registry = harness.registry
    ok = [
        r
        for r in registry.lookup(document_id(world["bucket"], k) for k in world["keys"]).values()
        if r.status == "ok"
    ]
    assert len(ok) == len(world["keys"]) - 4
    by_doc: dict[str, list[Any]] = {}
    for point in points:
        by_doc.setdefault(_meta(point)["doc_id"], []).append(point)
    assert set(by_doc) == {r.doc_id for r in ok}
    for record in ok:
        doc_points = by_doc[record.doc_id]
        assert len(doc_points) == record.chunk_count
        assert sorted(_meta(p)["chunk_index"] for p in doc_points) == list(
            range(record.chunk_count or 0)
        )
        meta = _meta(doc_points[0])
        assert meta["source"] == f"s3://{world['bucket']}/{record.key}"
        assert meta["key"] == record.key and meta["etag"] == record.etag
        assert {"char_start", "char_end", "token_count", "chunk_count", "key_hash"} <= set(meta)
        assert doc_points[0].payload["page_content"]
        vector = doc_points[0].vector
        assert vector is not None and len(vector) == 384
        assert abs(float(np.dot(vector, vector)) - 1.0) < 1e-3
    pdf = next(r for r in ok if r.key == "reports/glaciers.pdf")
    assert {_meta(p)["page"] for p in by_doc[pdf.doc_id]} == {1, 2, 3}


def test_readers_use_an_alias_of_the_fingerprints_collection(world: dict[str, Any]) -> None:
    harness: Harness = world["harness"]
    with harness.store() as store:
        assert store.resolve("documents") == harness.settings.physical_collection
        assert harness.settings.physical_collection.startswith("documents__")
    target = harness.registry.target(
        harness.resources["vectors"].location,  # type: ignore[attr-defined]
        harness.settings.physical_collection,
    )
    assert target is not None and target.state == "live"
    assert {r.target_id for r in harness.registry.by_status(["ok"])} == {target.id}


def test_awkward_keys_land_with_their_real_key(world: dict[str, Any]) -> None:
    harness: Harness = world["harness"]
    sources = {_meta(p)["source"] for p in harness.points()}
    for key in ODD_KEYS:
        assert f"s3://{world['bucket']}/{key}" in sources
    # Intermediate files are gone once written, and never lived outside the storage base.
    storage = harness.settings.data_dir / "storage"
    assert not [p for p in storage.rglob("*") if p.is_file()]


def _latest(harness: Harness, asset: str, shard: str) -> dict[str, Any]:
    records = harness.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[shard]), limit=1
    ).records
    assert records, f"{asset} was not materialized for shard {shard}"
    materialization = records[0].asset_materialization
    assert materialization is not None
    return {k: v.value for k, v in materialization.metadata.items()}


def test_bad_inputs_are_recorded_with_reasons_and_in_metadata(world: dict[str, Any]) -> None:
    harness: Harness = world["harness"]
    failed = {
        r.key: (r.status, r.reason or "")
        for r in harness.registry.by_status(["failed", "empty", "unsupported", "missing"])
    }
    assert failed == {
        "broken/empty.txt": ("empty", "empty object (0 bytes)"),
        "broken/latin1.txt": ("failed", failed["broken/latin1.txt"][1]),
        "broken/logo.png": ("unsupported", "unsupported binary format: PNG image"),
        "broken/truncated.pdf": ("failed", failed["broken/truncated.pdf"][1]),
    }
    # Undeclared, not UTF-8, and too short for a confident guess: refused, saying why.
    assert failed["broken/latin1.txt"][1].startswith("not valid UTF-8 (byte 0xe9 at offset 3)")
    assert "declare one in the Content-Type" in failed["broken/latin1.txt"][1]
    assert failed["broken/truncated.pdf"][1].startswith("corrupt PDF")
    shard = harness.settings.shard_layout.of(document_id(world["bucket"], "broken/logo.png"))
    raw = _latest(harness, "raw_documents", shard)
    assert raw["documents_unsupported"] >= 1
    assert "broken/logo.png" in raw["documents_not_read"] and "PNG" in raw["documents_not_read"]
    written = _latest(harness, "qdrant_collection", shard)
    assert written["failed"] >= 1 and "broken/logo.png" in written["changes"]
    assert written["documents"] >= written["ingested"] + written["failed"]


def test_untrusted_keys_are_escaped_in_markdown_metadata(world: dict[str, Any]) -> None:
    harness: Harness = world["harness"]
    key = "odd/a|b [link](http://x.test).txt"
    shard = harness.settings.shard_layout.of(document_id(world["bucket"], key))
    table = _latest(harness, "qdrant_collection", shard)["changes"]
    row = next(line for line in table.splitlines() if "x.test" in line)
    assert "a\\|b \\[link\\]\\(http://x.test\\).txt" in row
    assert row.count(" | ") == 3  # four cells: the key's "|" did not open a fifth


def test_the_asset_check_warns_about_documents_not_ingested(world: dict[str, Any]) -> None:
    evaluations = [
        e
        for run in world["first_runs"]
        for e in run.get_asset_check_evaluations()
        if e.check_name == "documents_not_ingested"
    ]
    assert evaluations, "the check runs with every ingestion run"
    last = evaluations[-1]
    assert not last.passed and last.severity == dg.AssetCheckSeverity.WARN
    assert last.metadata["documents_failed"].value == 2
    assert last.metadata["documents_unsupported"].value == 1
    assert "broken/logo.png" in str(last.metadata["examples"].value)


def test_retrieval_smoke_a_close_query_returns_its_document_first(world: dict[str, Any]) -> None:
    harness: Harness = world["harness"]
    query = shared_encoder("cpu").encode(["how do bees tell each other where the flowers are"])[0]
    with harness.store() as store:
        hits = store.search("documents", query, 3)
    assert _meta(hits[0])["key"] == "web/honeybees.html"
    assert any("waggle dance" in h.payload["page_content"] for h in hits)


def test_rematerializing_is_idempotent_and_removes_stale_chunks(world: dict[str, Any]) -> None:
    harness: Harness = world["harness"]
    before = {p.id for p in harness.points()}
    record = max(harness.registry.by_status(["ok"]), key=lambda r: r.chunk_count or 0)
    assert (record.chunk_count or 0) > 1
    shard = harness.settings.shard_layout.of(record.doc_id)
    # A stale point of the document (say, a chunk of an older chunking) takes its points'
    # place.
    info = DocumentInfo(record.doc_id, record.bucket, record.key, record.etag, 1, "")
    stale = Chunk(index=999, text="stale chunk", char_start=0, char_end=11, token_count=2)
    with harness.store() as store:
        collection = harness.settings.physical_collection
        unit = np.ones((1, 384), dtype=np.float32) / np.sqrt(384)
        store.replace_documents(collection, [DocumentPoints(info, [stale], unit)])
    # An ordinary reconcile of the shard sees it (points ≠ chunks) and re-queues the document.
    verify = harness.materialize(shard)
    assert verify.success
    assert harness.registry.lookup([record.doc_id])[record.doc_id].status == "pending"
    # The next sync re-ingests it: exactly the original point set again, nothing stale.
    assert all(run.success for run in harness.sync())
    assert {p.id for p in harness.points()} == before
    # A forced re-ingest rewrites the same points (deterministic ids), no duplicates.
    assert harness.materialize(shard, force=True).success
    points = harness.points()
    assert {p.id for p in points} == before and len(points) == len(before)
    # Nothing left to do: a sync launches nothing.
    assert harness.sync() == []
