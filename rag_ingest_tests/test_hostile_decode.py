"""Text is decoded as its source declares it; undeclared legacy text is detected or refused."""

import codecs

import pytest

from rag_ingest.core.documents.decode import DecodeError, decode_bytes, replace_surrogates
from rag_ingest.core.documents.extract import extract
from rag_ingest.core.documents.model import ExtractionError

RUSSIAN = "Съешь же ещё этих мягких французских булок, да выпей чаю. " * 6
FRENCH = "Le café crème est très apprécié à Paris, où les garçons servent des croissants. " * 4


def _reason(data: bytes, content_type: str | None = None, html: bool = False) -> str:
    with pytest.raises(DecodeError) as info:
        decode_bytes(data, content_type, html)
    return info.value.reason


@pytest.mark.parametrize(
    ("bom", "codec"),
    [
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
        (codecs.BOM_UTF32_LE, "utf-32-le"),
        (codecs.BOM_UTF32_BE, "utf-32-be"),
    ],
)
def test_a_byte_order_mark_decides_and_beats_every_declaration(bom: bytes, codec: str) -> None:
    data = bom + "Grüße, мир".encode(codec)
    decoded = decode_bytes(data, "text/plain; charset=windows-1252")
    assert decoded.text == "Grüße, мир" and decoded.source == "BOM"


def test_the_content_type_charset_decides_before_markup_declarations() -> None:
    page = f'<meta charset="utf-8"><p>{RUSSIAN}</p>'.encode("cp1251")
    decoded = decode_bytes(page, "text/html; charset=windows-1251", html=True)
    assert RUSSIAN in decoded.text and decoded.source == "Content-Type"


def test_legacy_html_declaring_its_charset_is_extracted() -> None:
    meta = f'<html><head><meta charset="windows-1251"></head><body><p>{RUSSIAN}</p></body></html>'
    doc = extract("ru.html", meta.encode("cp1251"), "text/html")
    assert RUSSIAN.strip() in doc.text
    equiv = (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=shift_jis">'
        "</head><body><p>日本語のテキストです。</p></body></html>"
    )
    assert "日本語のテキストです。" in extract("ja.html", equiv.encode("shift_jis")).text


def test_an_xml_declaration_decides_for_xhtml() -> None:
    page = '<?xml version="1.0" encoding="ISO-8859-1"?><html><body><p>café</p></body></html>'
    assert extract("p.xhtml", page.encode("latin-1")).text == "café"


def test_latin1_labels_decode_as_windows_1252_like_browsers() -> None:
    data = b"\x93quoted\x94 \x81"  # 0x81 is undefined in windows-1252: kept as U+0081
    assert decode_bytes(data, "text/plain; charset=ISO-8859-1").text == "“quoted” \x81"


def test_an_unknown_declared_charset_is_named() -> None:
    assert "unknown charset 'x-klingon'" in _reason(b"abc", "text/plain; charset=x-klingon")
    assert "unknown charset 'klingon'" in _reason(b'<meta charset="klingon">x', html=True)
    with pytest.raises(ExtractionError) as info:
        extract("k.html", b'<meta charset="klingon"><p>x</p>')
    assert info.value.status == "failed" and "unknown charset 'klingon'" in info.value.reason


def test_bytes_invalid_in_the_declared_charset_are_refused_with_the_source() -> None:
    reason = _reason("café".encode("latin-1"), "text/plain; charset=utf-8")
    assert "not valid utf-8 as declared by the Content-Type" in reason
    assert "offset 3" in reason


def test_undeclared_legacy_text_is_detected_above_the_confidence_floor() -> None:
    ru = decode_bytes(RUSSIAN.encode("cp1251"))
    assert ru.text == RUSSIAN and ru.source == "detected"
    assert decode_bytes(FRENCH.encode("cp1252")).text == FRENCH


def test_undetectable_bytes_and_corrupt_utf8_get_clear_reasons() -> None:
    noise = bytes((i * 97 + 131) % 128 + 128 for i in range(2000))
    reason = _reason(noise)
    assert "not valid UTF-8" in reason and "detection is not confident" in reason
    corrupt = ("Grüße aus Köln, mostly UTF-8. " * 20).encode() + b"\xa0"
    assert "corrupt UTF-8" in _reason(corrupt)
    assert "UTF-8" in _reason("café".encode("latin-1"))  # four bytes: too little to guess


def test_binary_is_unsupported_unless_a_declared_utf16_explains_the_nuls() -> None:
    with pytest.raises(DecodeError) as info:
        decode_bytes(b"abc\0def")
    assert info.value.status == "unsupported"
    utf16 = "plain words".encode("utf-16-le")
    assert decode_bytes(utf16, "text/plain; charset=utf-16le").text == "plain words"


def test_lone_surrogates_become_replacement_characters_without_changing_length() -> None:
    assert replace_surrogates("a\ud800b\udfff") == "a\ufffdb\ufffd"
    text = "plain"
    assert replace_surrogates(text) is text
