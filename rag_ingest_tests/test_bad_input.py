"""Oversized objects are refused before download; memory stays bounded either way."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import dagster as dg

from rag_ingest.core.keys import document_id
from rag_ingest.testing import REPO
from rag_ingest.testing.harness import Harness, make_resources, make_settings

SIZE = 100 * 1024 * 1024


def _peak_rss_delta(endpoint: str, bucket: str, key: str, limit: int) -> dict[str, Any]:
    """Peak RSS growth of fetching + extracting one object, measured in a fresh process."""
    script = textwrap.dedent(f"""
        import json

        def peak_kb():  # VmHWM, unlike ru_maxrss, does not inherit the forking parent's peak
            status = open("/proc/self/status").read()
            return int(status.split("VmHWM:")[1].split()[0])

        from rag_ingest.core.registry import DocumentRecord
        from rag_ingest.core.storage.s3 import make_client
        from rag_ingest.core.pipeline.steps import DocumentLimits, DocumentProcessor, load_document
        client = make_client({endpoint!r}, "us-east-1")
        def record(key):
            return DocumentRecord("d", {bucket!r}, key, "", 0, "", 0, "pending", None, None,
                                  None, 0.0)
        limits = DocumentLimits(max_object_bytes={limit}, max_text_chars={limit},
                                max_decompressed_bytes={limit}, memory_bytes=2 * {limit} + 2**29)
        with DocumentProcessor(limits, workers=1) as processor:
            load_document(client, record("small.txt"), processor)  # warm up client and workers
            before = peak_kb()
            info, blocks = load_document(client, record({key!r}), processor)
            after = peak_kb()
        print(json.dumps({{"status": info.status, "reason": info.reason,
                           "chars": sum(len(b.text) for b in blocks),
                           "delta_mb": (after - before) / 1024}}))
    """)
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
        timeout=300,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_100mb_object_is_refused_unread_and_the_rest_lands(
    s3_endpoint: str, s3_client: Any, bucket: str, tmp_path: Path
) -> None:
    line = b"All work and no play makes a very large text file.\n"
    s3_client.put_object(Bucket=bucket, Key="small.txt", Body=b"A small document.")
    s3_client.put_object(Bucket=bucket, Key="huge.txt", Body=line * (SIZE // len(line)))
    refused = _peak_rss_delta(s3_endpoint, bucket, "huge.txt", 64 * 1024 * 1024)
    assert refused["status"] == "failed" and "too large" in refused["reason"]
    assert refused["delta_mb"] < 30  # the body was never read
    accepted = _peak_rss_delta(s3_endpoint, bucket, "huge.txt", 128 * 1024 * 1024)
    assert accepted["status"] == "ok" and accepted["chars"] > 90 * 1024 * 1024
    # In this process: the fetched bytes, then the blocks coming back from the worker.
    assert accepted["delta_mb"] < 4 * SIZE / 2**20, accepted
    print(
        f"peak RSS growth: refused {refused['delta_mb']:.0f} MB, "
        f"accepted {accepted['delta_mb']:.0f} MB"
    )

    with dg.instance_for_test() as instance:
        settings = make_settings(bucket, tmp_path)
        harness = Harness(instance, settings, make_resources(s3_endpoint, settings))
        assert all(r.success for r in harness.sync())
        huge = document_id(bucket, "huge.txt")
        record = harness.registry.lookup([huge])[huge]
        assert record.status == "failed" and "max_object_bytes" in (record.reason or "")
        assert {d for d, _, _ in harness.versions()} == {document_id(bucket, "small.txt")}
