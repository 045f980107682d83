"""Every office/data format and its hostile variants in one run through the real pipeline,
with a plain document beside them: each good document is found by a phrase only it holds, its
structure rides in the payload, each bad one is recorded with its reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg

from rag_ingest.core.documents.limits import MiB
from rag_ingest.core.keys import document_id
from rag_ingest.core.text.encoder import shared_encoder
from rag_ingest.testing import formats as f
from rag_ingest.testing.harness import Harness, make_resources, make_settings

TABLE = [["Station", "Reading"], ["Skerry lighthouse", "gale force nine"]]
# key -> (body, phrase found only in it)
GOOD: dict[str, tuple[bytes, str]] = {
    "f/report.docx": (
        f.docx_bytes(
            "Bridge inspection",
            "Rivets",
            # Longer than one chunk, so packing keeps this section (and its path) to itself.
            " ".join(
                f"Corroded rivets on the suspension bridge cables need replacing before winter, "
                f"span {n} of the crossing."
                for n in range(30)
            ),
            TABLE,
        ),
        "corroded rivets on the suspension bridge",
    ),
    "f/deck.pptx": (
        f.pptx_bytes(
            [
                ("Intro", "Agenda", "Say hello."),
                ("Cocoa prices", "Cocoa bean prices doubled in Ghana", "Blame the drought."),
            ]
        ),
        "cocoa bean prices doubled in Ghana",
    ),
    "f/book.xlsx": (
        f.xlsx_bytes(
            {"Fleet": [["Vessel", "Cargo"], ["Northern Star", "frozen Norwegian salmon"]]}
        ),
        "Northern Star vessel carrying frozen Norwegian salmon",
    ),
    "f/trains.csv": (
        b"line,fact\nGlacier Express,slowest express train crossing the Oberalp pass\n",
        "slowest express train crossing the Oberalp pass",
    ),
    "f/settings.json": (
        f.json_bytes({"beekeeping": {"hive": "Langstroth hive with eight honey supers"}}),
        "Langstroth hive with eight honey supers",
    ),
    "f/mail.eml": (
        f.eml_bytes(
            "Violin repair",
            "luthier@example.com",
            "The cracked spruce top of the violin was glued with hide glue.",
            "<p>ignored html</p>",
            {},
        ),
        "cracked spruce top of the violin glued with hide glue",
    ),
    "f/guide.epub": (
        f.epub_bytes(
            "Caves",
            [
                (
                    "Stalactites",
                    "Limestone stalactites grow a centimetre every century in Postojna cave.",
                )
            ],
        ),
        "limestone stalactites in Postojna cave",
    ),
    "f/plain.md": (
        b"# Knitting\n\nMerino wool socks are knitted with a heel flap and gusset.\n",
        "merino wool socks with a heel flap",
    ),
}
GOOD_DOCX = GOOD["f/report.docx"][0]
# key -> (body, status, fragment of the reason)
BAD: dict[str, tuple[bytes, str, str]] = {
    "bad/bomb.docx": (f.zip_bomb_docx(128 * MiB), "failed", "zip bomb"),
    "bad/many.docx": (f.many_members_docx(3000), "failed", "members"),
    "bad/lol.xlsx": (f.entity_xlsx(f.xlsx_bytes({"S": [["a"], ["b"]]})), "failed", "DTD"),
    "bad/locked.docx": (b"\xd0\xcf\x11\xe0" + b"\0" * 600, "failed", "password"),
    "bad/cut.pptx": (f.pptx_bytes([("a", "b", "c")])[:3000], "failed", "corrupt"),
    "bad/wrong.xlsx": (GOOD_DOCX, "unsupported", "Word document"),
    "bad/deep.json": (b"[" * 100_000 + b"]" * 100_000, "failed", "nested"),
    "bad/broken.jsonl": (b'{"a": 1}\n{not json\n', "failed", "malformed JSON"),
}


def test_formats_and_hostile_files_in_one_run(
    s3_endpoint: str, s3_client: Any, bucket: str, tmp_path: Path
) -> None:
    big_field = b"k,v\nwide," + b"tundra " * (2 * MiB) + b"\n"
    bodies = {k: b for k, (b, _) in GOOD.items()} | {k: b for k, (b, _s, _r) in BAD.items()}
    bodies["f/wide.csv"] = big_field
    for key, body in bodies.items():
        s3_client.put_object(Bucket=bucket, Key=key, Body=body)
    settings = make_settings(bucket, tmp_path, shards=16, full_reconcile_hours=24)
    with dg.instance_for_test() as instance:
        harness = Harness(instance, settings, make_resources(s3_endpoint, settings))
        harness.full_reconcile_due()
        runs = harness.sync()
        assert all(r.success for r in runs)
        records = {
            r.key: r
            for r in harness.registry.lookup(document_id(bucket, k) for k in bodies).values()
        }
        for key, (_body, status, fragment) in BAD.items():
            assert records[key].status == status, (key, records[key].reason)
            assert fragment in (records[key].reason or ""), (key, records[key].reason)
        assert records["f/wide.csv"].status == "ok"
        assert "truncated" in (records["f/wide.csv"].reason or "")
        for key in GOOD:
            assert records[key].status == "ok" and records[key].chunk_count, key
        points = harness.points()
        meta = [p.payload["metadata"] for p in points]
        deck = [m for m in meta if m["doc_id"] == document_id(bucket, "f/deck.pptx")]
        assert {m.get("page") for m in deck} == {1, 2}
        sheet = [m for m in meta if m["doc_id"] == document_id(bucket, "f/book.xlsx")]
        assert sheet[0]["heading_path"] == ["Fleet", "rows 2-2"]
        word = [m for m in meta if m["doc_id"] == document_id(bucket, "f/report.docx")]
        assert ["Bridge inspection", "Rivets"] in [m.get("heading_path") for m in word]
        encoder = shared_encoder("cpu")
        with harness.store() as store:
            for key, (_body, phrase) in GOOD.items():
                hits = store.search("documents", encoder.encode([phrase])[0], 2)
                found = [h.payload["metadata"]["doc_id"] for h in hits]
                assert document_id(bucket, key) in found, (key, phrase, found)
