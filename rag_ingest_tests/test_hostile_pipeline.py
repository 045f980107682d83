"""One run with every kind of bad input at once, plus good documents, through the real
pipeline: each bad document is recorded with its reason, every good one is searchable."""

from pathlib import Path
from typing import Any

import dagster as dg

from rag_ingest.core.keys import document_id
from rag_ingest.core.text.encoder import shared_encoder
from rag_ingest.testing.harness import Harness, make_resources, make_settings
from rag_ingest_tests.hostile import HOSTILE_LIMITS, expected_outcomes, hostile_corpus

# Documents that are hostile by their size but still ingest (a 2 MB run of "a a a", 50,000
# sections) make ~10,000 chunks: 12 minutes of CPU embedding. Their bounds are proven in
# test_hostile_bounds.py; here their first bytes keep the class of input at ~1/40 of the cost.
KEEP_BYTES = 48 * 1024
BY_SIZE = ("bad/aaa.txt", "bad/long-heading.md", "bad/many-sections.md", "bad/many-elements.html")


def _pipeline_corpus() -> dict[str, tuple[bytes, str | None]]:
    return {
        key: (body[:KEEP_BYTES] if key in BY_SIZE else body, content_type)
        for key, (body, content_type) in hostile_corpus().items()
    }


def test_a_hostile_corpus_in_one_run_loses_nothing_good(
    s3_endpoint: str, s3_client: Any, bucket: str, tmp_path: Path
) -> None:
    corpus = _pipeline_corpus()
    for key, (body, content_type) in corpus.items():
        extra = {"ContentType": content_type} if content_type else {}
        s3_client.put_object(Bucket=bucket, Key=key, Body=body, **extra)
    settings = make_settings(
        bucket,
        tmp_path,
        shards=16,
        full_reconcile_hours=24,  # a full reconcile on the first tick: one run, every shard
        extract_workers=2,
        document_timeout_seconds=HOSTILE_LIMITS.timeout_seconds,
        document_memory_mb=HOSTILE_LIMITS.memory_bytes // 2**20,
    )
    with dg.instance_for_test() as instance:
        harness = Harness(instance, settings, make_resources(s3_endpoint, settings))
        harness.full_reconcile_due()
        (run,) = harness.sync()
        failures = [str(e.event_specific_data) for e in run.all_events if e.is_step_failure]
        assert run.success, failures
        records = {
            r.key: r
            for r in harness.registry.lookup(document_id(bucket, k) for k in corpus).values()
        }
        for key, (status, fragment) in expected_outcomes().items():
            record = records[key]
            assert record.status == status, (key, record.status, record.reason)
            if fragment:
                assert fragment in (record.reason or ""), (key, record.reason)
        good = [k for k, (status, _) in expected_outcomes().items() if status == "ok"]
        points = harness.points()
        by_doc: dict[str, list[Any]] = {}
        for point in points:
            by_doc.setdefault(point.payload["metadata"]["doc_id"], []).append(point)
        encoder = shared_encoder("cpu")
        with harness.store() as store:
            for key in good:
                doc_id = document_id(bucket, key)
                mine = by_doc.get(doc_id, [])
                assert len(mine) == records[key].chunk_count and mine, key
                # Its own text finds it (or an identical text: degenerate inputs such as
                # 10,000 "<i>x</i>" make the same chunk as other documents).
                probe = max(mine, key=lambda p: len(p.payload["page_content"]))
                vector = encoder.encode([probe.payload["page_content"]])[0]
                hits = store.search("documents", vector, 5)
                found = {(h.payload["metadata"]["doc_id"], h.payload["page_content"]) for h in hits}
                assert any(
                    d == doc_id or text == probe.payload["page_content"] for d, text in found
                ), key
        bad = [k for k, (status, _) in expected_outcomes().items() if status != "ok"]
        assert not any(document_id(bucket, k) in by_doc for k in bad)
