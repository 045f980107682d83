"""End to end on real local components: moto S3, embedded Qdrant, the packaged model."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from qdrant_client import models

from rag_ingest.core.encoder import shared_encoder
from rag_ingest.core.keys import partition_key
from rag_ingest.partitions import DOCUMENTS_PARTITION
from rag_ingest.resources import DocumentRegistry, QdrantResource
from rag_ingest_tests.conftest import upload_corpus
from rag_ingest_tests.helpers import Harness, make_resources

ODD_KEYS = {
    "odd/Q3 report, final (v2).md": "# Quarterly report\n\nRevenue grew by twelve percent.",
    "odd/日本語/ドキュメント.md": "# 富士山\n\n富士山は日本で一番高い山です。",
    "odd/../weird..name.txt": "Dots in keys must not escape storage.",
    "odd/a b/c d.txt": "Spaces in every part of the key.",
    "odd/" + "long-" * 200 + "key.txt": "A key of over a thousand bytes.",
    "odd/" + "p" * 70 + "/same-prefix-1.txt": "Keys that differ only after 64 characters, one.",
    "odd/" + "p" * 70 + "/same-prefix-2.txt": "Keys that differ only after 64 characters, two.",
}
PER_RUN = 8


@pytest.fixture(scope="module")
def world(s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from rag_ingest.core.s3 import make_client

    client = make_client(s3_endpoint, "us-east-1")
    bucket = "pipeline-e2e"
    client.create_bucket(Bucket=bucket)
    keys = upload_corpus(client, bucket)
    for key, text in ODD_KEYS.items():
        client.put_object(Bucket=bucket, Key=key, Body=text.encode())
    keys += list(ODD_KEYS)
    data = tmp_path_factory.mktemp("data")
    with dg.instance_for_test() as instance:
        harness = Harness(
            instance, make_resources(s3_endpoint, bucket, data), partitions_per_run=PER_RUN
        )
        first_runs = harness.sync()
        yield {"harness": harness, "keys": keys, "bucket": bucket, "first_runs": first_runs}


def _qdrant(world: dict[str, Any]) -> QdrantResource:
    resource = world["harness"].resources["qdrant"]
    assert isinstance(resource, QdrantResource)
    return resource


def _all_points(world: dict[str, Any]) -> list[models.Record]:
    with _qdrant(world).get_client() as client:
        points, _ = client.scroll("documents", limit=10_000, with_payload=True, with_vectors=True)
    return points


def _payload(point: Any) -> dict[str, Any]:
    assert point.payload is not None
    return point.payload


def _meta(point: Any) -> dict[str, Any]:
    return _payload(point)["metadata"]


def _registry(world: dict[str, Any]) -> Any:
    resource = world["harness"].resources["registry"]
    assert isinstance(resource, DocumentRegistry)
    return resource.registry


def test_the_sensor_batches_documents_into_few_runs(world: dict[str, Any]) -> None:
    runs = world["first_runs"]
    assert all(run.success for run in runs)
    assert len(runs) == -(-len(world["keys"]) // PER_RUN)  # ceil: many partitions per run
    partitions = world["harness"].instance.get_dynamic_partitions(DOCUMENTS_PARTITION)
    assert sorted(partitions) == sorted(partition_key(world["bucket"], k) for k in world["keys"])


def test_every_good_document_is_in_qdrant_with_langchain_payload(world: dict[str, Any]) -> None:
    points = _all_points(world)
    registry = _registry(world)
    ok = [
        r
        for r in registry.lookup(partition_key(world["bucket"], k) for k in world["keys"]).values()
        if r.status == "ok"
    ]
    assert len(ok) == len(world["keys"]) - 4
    by_doc: dict[str, list[models.Record]] = {}
    for point in points:
        assert point.payload is not None
        by_doc.setdefault(_meta(point)["doc_id"], []).append(point)
    assert set(by_doc) == {r.doc_id for r in ok}
    for record in ok:
        doc_points = by_doc[record.doc_id]
        assert len(doc_points) == record.chunk_count
        assert sorted(_meta(p)["chunk_index"] for p in doc_points) == list(
            range(record.chunk_count)
        )
        meta = _meta(doc_points[0])
        assert meta["source"] == f"s3://{world['bucket']}/{record.key}"
        assert meta["key"] == record.key and meta["etag"] == record.etag
        assert {"char_start", "char_end", "token_count", "chunk_count"} <= set(meta)
        assert _payload(doc_points[0])["page_content"]
        vector = doc_points[0].vector
        assert isinstance(vector, list) and len(vector) == 384
        assert abs(sum(float(v) * float(v) for v in vector) - 1.0) < 1e-3  # type: ignore[arg-type]
    pdf = next(r for r in ok if r.key == "reports/glaciers.pdf")
    assert {_meta(p)["page"] for p in by_doc[pdf.doc_id]} == {1, 2, 3}


def test_awkward_keys_land_with_their_real_key(world: dict[str, Any]) -> None:
    sources = {_meta(p)["source"] for p in _all_points(world)}
    for key in ODD_KEYS:
        assert f"s3://{world['bucket']}/{key}" in sources
    storage = Path(world["harness"].resources["storage"].base)
    assert all(path.resolve().is_relative_to(storage.resolve()) for path in storage.rglob("*"))


def test_bad_inputs_are_recorded_with_reasons_and_in_metadata(world: dict[str, Any]) -> None:
    registry = _registry(world)
    failed = {
        r.key: (r.status, r.reason)
        for r in registry.by_status(["failed", "empty", "unsupported", "missing"])
    }
    assert failed == {
        "broken/empty.txt": ("empty", "empty object (0 bytes)"),
        "broken/latin1.txt": ("failed", "not valid UTF-8 (byte 0xe9 at offset 3)"),
        "broken/logo.png": ("unsupported", "unsupported binary format: PNG image"),
        "broken/truncated.pdf": ("failed", failed["broken/truncated.pdf"][1]),
    }
    assert failed["broken/truncated.pdf"][1].startswith("corrupt PDF")
    instance = world["harness"].instance
    doc_id = partition_key(world["bucket"], "broken/logo.png")
    event = instance.get_latest_materialization_event(dg.AssetKey("raw_documents"))
    assert event is not None
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("raw_documents"), asset_partitions=[doc_id]),
        limit=1,
    ).records
    metadata = records[0].asset_materialization.metadata  # type: ignore[union-attr]
    assert metadata["status"].value == "unsupported"
    assert "PNG" in str(metadata["reason"].value)
    assert metadata["source"].value == f"s3://{world['bucket']}/broken/logo.png"


def test_the_asset_check_warns_about_documents_not_ingested(world: dict[str, Any]) -> None:
    evaluations = [e for run in world["first_runs"] for e in run.get_asset_check_evaluations()]
    assert evaluations, "the check runs with every ingestion run"
    last = evaluations[-1]
    assert not last.passed and last.severity == dg.AssetCheckSeverity.WARN
    assert last.metadata["documents_failed"].value == 2
    assert last.metadata["documents_unsupported"].value == 1
    assert "broken/logo.png" in str(last.metadata["examples"].value)


def test_retrieval_smoke_a_close_query_returns_its_document_first(world: dict[str, Any]) -> None:
    query = shared_encoder("cpu").encode(["how do bees tell each other where the flowers are"])[0]
    with _qdrant(world).get_client() as client:
        hits = client.query_points("documents", query=query.tolist(), limit=3).points
    assert _meta(hits[0])["key"] == "web/honeybees.html"
    assert any("waggle dance" in _payload(h)["page_content"] for h in hits)


def test_rematerializing_is_idempotent_and_removes_stale_chunks(world: dict[str, Any]) -> None:
    harness: Harness = world["harness"]
    before = {p.id for p in _all_points(world)}
    doc_id = partition_key(world["bucket"], "guides/volcanoes.md")
    # Re-chunk one document smaller: more, different points for it.
    small = harness.job("ingest_documents").execute_in_process(
        instance=harness.instance,
        partition_key=doc_id,
        run_config={"ops": {"chunks": {"config": {"max_tokens": 40, "overlap_tokens": 0}}}},
    )
    assert small.success
    points = _all_points(world)
    mine = [p for p in points if _meta(p)["doc_id"] == doc_id]
    assert len(mine) > 3 and len({p.id for p in points}) == len(points)
    counts = {_meta(p)["chunk_count"] for p in mine}
    assert counts == {len(mine)}  # no leftovers from the earlier chunking
    # Back to defaults: exactly the original point set, no duplicates, nothing stale.
    assert harness.materialize([doc_id]).success
    assert {p.id for p in _all_points(world)} == before
    # A second sync finds nothing new and launches nothing.
    assert harness.sync() == []
