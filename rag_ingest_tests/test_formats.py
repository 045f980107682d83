"""Office, tabular, JSON, email and EPUB documents built in code: text, structure, bounds."""

from __future__ import annotations

import base64
import io
import zipfile

import pytest

from rag_ingest.core.documents.detect import detect_kind
from rag_ingest.core.documents.extract import extract
from rag_ingest.core.documents.isolation import DocumentProcessor
from rag_ingest.core.documents.limits import DocumentLimits, MiB
from rag_ingest.core.documents.model import Block, Extracted, ExtractionError
from rag_ingest.testing import formats as f

TABLE = [["Region", "Revenue"], ["Nordics", "1200"], ["Iberia", "950"]]


def _fails(key: str, data: bytes, status: str = "failed", ctype: str | None = None) -> str:
    with pytest.raises(ExtractionError) as info:
        extract(key, data, ctype)
    assert info.value.status == status, info.value.reason
    return info.value.reason


def _block(doc: Extracted, phrase: str) -> Block:
    return next(b for b in doc.blocks if phrase in b.text)


def test_docx_heading_path_and_table_rows_under_header() -> None:
    data = f.docx_bytes("Annual Report", "Sales", "quokka harbour paragraph", TABLE)
    doc = extract("r.docx", data)
    assert doc.format == "docx" and doc.title == "Annual Report"
    para = _block(doc, "quokka harbour")
    assert para.heading_path == ("Annual Report", "Sales")
    table = _block(doc, "Nordics | 1200")
    assert "Region | Revenue" in table.text and table.heading_path == ("Annual Report", "Sales")


def test_pptx_slide_number_title_notes() -> None:
    data = f.pptx_bytes([("Intro", "hello", "n1"), ("Roadmap", "ship walrus", "tapir notes")])
    doc = extract("deck.pptx", data)
    assert doc.format == "pptx" and doc.pages == 2
    slide = _block(doc, "walrus")
    assert slide.page == 2 and slide.heading == "Roadmap"
    assert "Speaker notes: tapir notes" in slide.text
    assert slide.text.count("Roadmap") == 1


def test_xlsx_sheets_row_ranges_and_header_in_every_block() -> None:
    rows: list[list[object]] = [["Item", "Qty"]]
    rows += [[f"widget-{i}", i] for i in range(2, 400)]
    data = f.xlsx_bytes({"Stock": rows, "Other": [["Col"], ["okapi cell"]]})
    doc = extract("book.xlsx", data)
    stock = [b for b in doc.blocks if b.heading == "Stock"]
    assert len(stock) > 3
    assert all(b.text.splitlines()[1] == "Item | Qty" for b in stock)
    assert stock[0].heading_path == ("Stock", stock[0].heading_path[1])
    assert stock[0].heading_path[1].startswith("rows 2-")
    assert _block(doc, "okapi cell").heading == "Other"


def test_csv_tsv_header_repeated_and_capped_field() -> None:
    text = "name,notes\n" + "".join(f"r{i},v{i}\n" for i in range(300))
    doc = extract("exports/t.csv", text.encode())
    assert doc.format == "csv" and len(doc.blocks) > 1
    assert all("name | notes" in b.text for b in doc.blocks)
    tsv = extract("t.tsv", b"a\tb\nlynx\tmarmot\n")
    assert "lynx | marmot" in tsv.text
    huge = b"a,b\nx," + b"y" * (3 * MiB) + b"\n"
    capped = extract("big.csv", huge)
    assert capped.note and "truncated" in capped.note
    assert max(len(b.text) for b in capped.blocks) < 20_000


def test_json_key_paths_jsonl_and_depth() -> None:
    doc = extract("c.json", f.json_bytes({"db": {"hosts": ["pangolin-1"], "port": 5432}}))
    assert "db.hosts[0]: pangolin-1" in doc.text and "db.port: 5432" in doc.text
    lines = extract("e.jsonl", b'{"a": 1}\n{"b": "gecko"}\n')
    assert _block(lines, "gecko").heading_path[0] == "line 2"
    deep = b"[" * 5000 + b"]" * 5000
    assert "nested" in _fails("deep.json", deep)


def test_email_plain_preferred_headers_and_attachment() -> None:
    csv_attachment = b"city,mascot\nOslo,narwhal\n"
    data = f.eml_bytes(
        "Q3 numbers",
        "Ana <ana@example.com>",
        "plain caf\u00e9 body ibex",
        "<p>html only</p>",
        {"mascots.csv": csv_attachment},
    )
    doc = extract("mail/msg.eml", data)
    assert doc.format == "email" and doc.title == "Q3 numbers"
    first = doc.blocks[0]
    assert "From: Ana <ana@example.com>" in first.text and "Date:" in first.text
    assert "caf\u00e9 body ibex" in first.text and "html only" not in doc.text
    att = _block(doc, "narwhal")
    assert att.heading == "mascots.csv" and "Attachment: mascots.csv" in att.heading_path


def test_epub_chapters_in_spine_order() -> None:
    doc = extract("b.epub", f.epub_bytes("Field Guide", [("One", "axolotl"), ("Two", "dugong")]))
    assert doc.format == "epub" and doc.title == "Field Guide"
    assert doc.text.index("axolotl") < doc.text.index("dugong")
    assert _block(doc, "dugong").heading == "Two"


def test_detection_from_bytes_and_mismatch_refused() -> None:
    docx = f.docx_bytes("T", "S", "detected by bytes", TABLE)
    assert extract("upload.zip", docx).format == "docx"
    assert extract("noext", docx).format == "docx"
    reason = _fails("sheet.xlsx", docx, "unsupported")
    assert "Excel workbook" in reason and "Word document" in reason
    assert "not a zip" in _fails("a.pptx", b"plain text", "unsupported")
    assert extract("x", b"a,b\n1,2\n", "text/csv").format == "csv"


def test_hostile_archives_refused_with_reason() -> None:
    good = f.docx_bytes("T", "S", "p", TABLE)
    assert "zip bomb" in _fails("bomb.docx", f.zip_bomb_docx(128 * MiB))
    assert "members" in _fails("many.docx", f.many_members_docx(5000))
    book = f.xlsx_bytes({"S": [["a"], ["b"]]})
    assert "DTD" in _fails("lol.xlsx", f.entity_xlsx(book))
    # A nested archive is never opened: the document's own text still comes through.
    assert "p" in extract("nested.docx", f.nested_zip_docx(good, 5)).text
    assert "corrupt" in _fails("cut.docx", good[: len(good) // 2])
    assert "password" in _fails("locked.docx", b"\xd0\xcf\x11\xe0" + b"\0" * 600)
    encrypted = io.BytesIO()
    with zipfile.ZipFile(encrypted, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", "<a/>")
    raw = bytearray(encrypted.getvalue())
    raw[6] |= 1  # local header: encrypted flag
    i = raw.find(b"PK\x01\x02")
    raw[i + 8] |= 1  # central directory too
    assert "encrypted" in _fails("enc.docx", bytes(raw))


def test_macro_enabled_read_as_text_only() -> None:
    data = f.docx_bytes("Macro", "S", "macro doc text", TABLE)
    buf = io.BytesIO()
    src = zipfile.ZipFile(io.BytesIO(data))
    with zipfile.ZipFile(buf, "w") as z:
        for info in src.infolist():
            z.writestr(info.filename, src.read(info.filename))
        z.writestr("word/vbaProject.bin", b"\xd0\xcf\x11\xe0 Sub AutoOpen() Shell(...)")
    assert "macro doc text" in extract("m.docm", buf.getvalue()).text


def test_million_row_sheet_capped_in_a_worker() -> None:
    rows: list[list[object]] = [["k", "v"]]
    rows += [[i, "x"] for i in range(150_000)]
    data = f.xlsx_bytes({"Big": rows})
    limits = DocumentLimits(timeout_seconds=120, memory_bytes=1024 * MiB)
    with DocumentProcessor(limits, workers=1) as processor:
        status, reason, doc = processor.extract("big.xlsx", data, None, None)
    assert status == "ok", reason
    assert doc is not None and doc.note and "rows after" in doc.note


def test_email_charsets_base64_html_only_and_unsupported_attachment() -> None:
    body = base64.b64encode("Cr\xe8me br\xfbl\xe9e recipe".encode("latin-1")).decode()
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(40)).decode()
    raw = (
        "From: chef@example.com\r\nSubject: =?utf-8?q?D=C3=A9ssert?=\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
        "Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: base64\r\n"
        f"\r\n{body}\r\n--b\r\nContent-Type: image/png\r\n"
        'Content-Disposition: attachment; filename="p.png"\r\nContent-Transfer-Encoding: base64'
        f"\r\n\r\n{png}\r\n--b--\r\n"
    ).encode()
    doc = extract("no-extension", raw)
    assert doc.format == "email" and doc.title == "D\xe9ssert"
    assert "Cr\xe8me br\xfbl\xe9e recipe" in doc.text
    assert doc.note and "p.png" in doc.note and "PNG" in doc.note
    html_only = f.eml_bytes("H", "a@b.c", "", "<h1>Quince</h1><p>jam recipe</p>", {})
    assert "jam recipe" in extract("h.eml", html_only.replace(b"text/plain", b"text/x-none")).text


def test_pdf_named_bin_is_read_as_pdf() -> None:
    assert detect_kind("upload.bin", "application/octet-stream", b"%PDF-1.7\n") == "pdf"
    assert detect_kind("noext", "application/json", b'{"a": 1}') == "json"
