import gzip
import io

import pytest

from rag_ingest.core.documents.extract import extract, gunzip_bounded
from rag_ingest.core.documents.model import ExtractionError
from rag_ingest.testing import SAMPLE_CORPUS


def _raises(status: str, key: str, data: bytes, **kwargs: object) -> str:
    with pytest.raises(ExtractionError) as info:
        extract(key, data, **kwargs)  # type: ignore[arg-type]
    assert info.value.status == status
    return info.value.reason


def test_plain_text_with_bom_and_crlf() -> None:
    doc = extract("notes/a.txt", b"\xef\xbb\xbfHello\r\nworld\r\n")
    assert doc.format == "text"
    assert doc.text == "Hello\nworld"
    assert doc.blocks[0].page is None and doc.blocks[0].heading is None


def test_markdown_sections_follow_headings_but_not_inside_code_fences() -> None:
    md = (
        "Preamble.\n\n# Title\n\nIntro.\n\n```\n# not a heading\n```\n\n"
        "Setext Heading\n--------------\n\nUnder setext.\n\n## Sub\n\nLast."
    )
    doc = extract("g/readme.md", md.encode())
    assert [b.heading for b in doc.blocks] == [None, "Title", "Setext Heading", "Sub"]
    assert "# not a heading" in doc.blocks[1].text
    for block in doc.blocks:
        assert doc.text[block.start : block.start + len(block.text)] == block.text


def test_html_drops_boilerplate_and_splits_at_headings() -> None:
    doc = extract("web/honeybees.html", (SAMPLE_CORPUS / "web" / "honeybees.html").read_bytes())
    assert doc.format == "html"
    assert doc.title == "The life of honeybees"
    assert "console.log" not in doc.text and "Home" not in doc.text
    assert "Copyright" not in doc.text and "margin" not in doc.text
    headings = [b.heading for b in doc.blocks]
    assert "The waggle dance" in headings
    dance = doc.blocks[headings.index("The waggle dance")]
    assert "angle of the dance" in dance.text


def test_html_deeply_nested_does_not_hit_the_recursion_limit() -> None:
    markup = "<html><body>" + "<div>" * 5000 + "deep text" + "</div>" * 5000 + "</body></html>"
    assert "deep text" in extract("deep.html", markup.encode()).text


def test_pdf_keeps_page_numbers() -> None:
    doc = extract("reports/glaciers.pdf", (SAMPLE_CORPUS / "reports" / "glaciers.pdf").read_bytes())
    assert doc.format == "pdf" and doc.pages == 3
    assert [b.page for b in doc.blocks] == [1, 2, 3]
    assert "Milankovitch" in doc.blocks[2].text
    assert doc.title == "Glaciers and ice ages"


def test_gzip_markdown_is_decompressed_and_parsed_by_inner_extension() -> None:
    raw = (SAMPLE_CORPUS / "guides" / "git-branching.md.gz").read_bytes()
    doc = extract("guides/git-branching.md.gz", raw)
    assert doc.compressed and doc.format == "markdown"
    assert "Rebasing" in [b.heading for b in doc.blocks]


def test_gzip_bomb_is_refused_without_inflating_it() -> None:
    bomb = gzip.compress(b"\0" * (50 * 1024 * 1024))
    assert len(bomb) < 100_000
    reason = _raises("failed", "bomb.txt.gz", bomb, max_bytes=1024 * 1024)
    assert "limit" in reason
    with pytest.raises(ExtractionError):
        gunzip_bounded(bomb, 1024)


def test_multi_member_gzip_and_corrupt_gzip() -> None:
    two = gzip.compress(b"part one ") + gzip.compress(b"part two")
    assert extract("x.txt.gz", two).text == "part one part two"
    assert "gzip" in _raises("failed", "x.txt.gz", b"\x1f\x8b" + b"garbage" * 10)
    assert "not gzip" in _raises("failed", "x.txt.gz", b"plain text")


def test_bad_inputs_have_clear_reasons() -> None:
    assert "0 bytes" in _raises("empty", "e.txt", b"")
    assert "no text" in _raises("empty", "blank.md", b"   \n\n  ")
    assert "PNG" in _raises("unsupported", "logo.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 50)
    assert "ZIP" in _raises("unsupported", "blob", b"PK\x03\x04" + b"\0" * 50)
    assert "corrupt Word" in _raises("failed", "doc.docx", b"PK\x03\x04" + b"\0" * 50)
    assert "NUL" in _raises("unsupported", "data.txt", b"abc\0def")
    assert "UTF-8" in _raises("failed", "latin.txt", "café".encode("latin-1"))
    assert "content type" in _raises(
        "unsupported", "model.bin", b"\x01\x02\x03", content_type="application/x-thing"
    )
    assert "corrupt PDF" in _raises("failed", "t.pdf", b"%PDF-1.7\n1 0 obj\n<< /Type")


def test_declared_charset_is_honoured() -> None:
    doc = extract("latin.txt", "café crème".encode("latin-1"), "text/plain; charset=ISO-8859-1")
    assert doc.text == "café crème"


def test_encrypted_pdf_is_recorded_as_failed() -> None:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for page in PdfReader(SAMPLE_CORPUS / "reports" / "black-holes.pdf").pages:
        writer.add_page(page)
    writer.encrypt("secret", algorithm="AES-128")
    sink = io.BytesIO()
    writer.write(sink)
    assert "encrypted" in _raises("failed", "locked.pdf", sink.getvalue())


def test_pdf_magic_wins_over_a_misleading_extension() -> None:
    data = (SAMPLE_CORPUS / "reports" / "black-holes.pdf").read_bytes()
    assert extract("misnamed.txt", data).format == "pdf"


def test_html_headings_give_paths_and_a_trailing_heading_joins_the_last_section() -> None:
    page = (
        "<html><head><title>T</title></head><body><p>intro</p><h1>A</h1><p>x</p>"
        "<h2>B</h2><h3>C</h3><p>y</p><h2>D</h2></body></html>"
    )
    doc = extract("p.html", page.encode())
    assert [(b.heading, b.heading_path) for b in doc.blocks] == [
        ("T", ()),
        ("A", ("A",)),
        ("C", ("A", "B", "C")),
    ]
    assert doc.blocks[-1].text == "B\n\nC\n\ny\n\nD"


def test_headings_and_titles_are_bounded_for_payloads() -> None:
    doc = extract("h.md", ("# " + "long " * 1000 + "\n\nbody").encode())
    heading = doc.blocks[0].heading or ""
    assert len(heading) == 200 and heading.endswith("…")
    assert doc.blocks[0].text.startswith("# long long")  # the text itself is untouched
