"""Bytes → text in the encoding the source declares, else UTF-8, else a confident detection.

Precedence follows the HTML standard: a byte-order mark, then the object's ``Content-Type``
charset, then (HTML) a ``<meta charset>`` / ``http-equiv`` declaration or an XML declaration,
then UTF-8; undeclared text that is not UTF-8 goes to charset-normalizer and is accepted only
above a confidence floor. Every refusal is a :class:`DecodeError` whose reason names the cause.
"""

from __future__ import annotations

import codecs
import re
from typing import NamedTuple

# Legacy labels decoded the way browsers do (WHATWG Encoding Standard): "latin1" pages are
# really windows-1252, "gb2312" pages GBK, "shift_jis" pages Microsoft's cp932, and so on.
_WHATWG: dict[str, str] = {
    **dict.fromkeys(
        ("ascii", "us-ascii", "iso-8859-1", "iso8859-1", "iso_8859-1", "latin1", "latin-1", "l1"),
        "cp1252",
    ),
    **dict.fromkeys(("iso-8859-9", "iso8859-9", "latin5", "l5"), "cp1254"),
    **dict.fromkeys(("tis-620", "iso-8859-11", "iso8859-11", "windows-874"), "cp874"),
    **dict.fromkeys(("gb2312", "gbk", "x-gbk", "gb_2312-80", "chinese", "csgb2312"), "gb18030"),
    **dict.fromkeys(("big5", "x-x-big5", "csbig5", "cn-big5"), "big5hkscs"),
    **dict.fromkeys(
        ("shift_jis", "shift-jis", "sjis", "x-sjis", "ms_kanji", "windows-31j", "csshiftjis"),
        "cp932",
    ),
    **dict.fromkeys(("euc-kr", "ks_c_5601-1987", "windows-949", "cseuckr"), "cp949"),
}
_CHARSET_PARAM = re.compile(r"charset\s*=\s*[\"']?\s*([A-Za-z0-9._:-]+)", re.I)
# Bounded input (the first _PRESCAN bytes), so the lazy scans cannot go quadratic.
_PRESCAN = 4096
_META = re.compile(rb"<meta\s[^>]{0,1024}?charset\s*=\s*[\"']?\s*([A-Za-z0-9._:-]+)", re.I)
_XML_DECL = re.compile(rb"\s{0,64}<\?xml\s[^>]{0,256}?encoding\s*=\s*[\"']([A-Za-z0-9._:-]+)")
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# Detection floor: charset-normalizer's "chaos" (mess ratio) at most this, and its language
# "coherence" at least this. Random bytes score chaos 0 in some CJK codec but coherence 0;
# real text of a few hundred bytes scores coherence 0.25-0.6.
_MAX_CHAOS = 0.1
_MIN_COHERENCE = 0.2
_DETECT_SAMPLE = 64 * 1024
_SURROGATE = re.compile("[\ud800-\udfff]")
_BINARY = "binary content (NUL bytes in the first 8 KiB)"


class DecodeError(Exception):
    """The bytes cannot be decoded as declared or detected; ``reason`` says why."""

    def __init__(self, reason: str, status: str = "failed") -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status  # "unsupported" for binary content, else "failed"


class Decoded(NamedTuple):
    text: str
    encoding: str  # Python codec name
    source: str  # what decided it: "BOM", "Content-Type", "<meta>", "XML declaration", ...


def replace_surrogates(text: str) -> str:
    """Replace lone surrogates (which no UTF encoder accepts) with U+FFFD, keeping the length."""
    if text.isascii() or _SURROGATE.search(text) is None:
        return text
    return _SURROGATE.sub("\ufffd", text)


def content_type_charset(content_type: str | None) -> str | None:
    match = _CHARSET_PARAM.search(content_type or "")
    return match.group(1) if match else None


def _c1_passthrough(exc: UnicodeError) -> tuple[str, int]:
    # windows-1252 leaves five bytes undefined; browsers map them to the C1 control characters.
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    return chr(exc.object[exc.start]), exc.start + 1


codecs.register_error("rag_ingest_c1", _c1_passthrough)


def _codec(label: str, source: str) -> str:
    name = label.strip().lower()
    name = _WHATWG.get(name, name)
    try:
        return codecs.lookup(name).name
    except LookupError:
        raise DecodeError(f"unknown charset {label!r} (declared by the {source})") from None


def _strict(data: bytes, codec: str, label: str, source: str) -> str:
    errors = "rag_ingest_c1" if codec.startswith(("cp125", "cp874")) else "strict"
    try:
        return data.decode(codec, errors)
    except UnicodeDecodeError as exc:
        raise DecodeError(
            f"not valid {label} as declared by the {source} "
            f"(byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from exc


def _declared_in_markup(data: bytes, html: bool) -> tuple[str, str] | None:
    head = data[:_PRESCAN]
    xml = _XML_DECL.match(head)
    if xml:
        return xml.group(1).decode("ascii"), "XML declaration"
    if html:
        meta = _META.search(head)
        if meta:
            return meta.group(1).decode("ascii"), "<meta> tag"
    return None


def decode_bytes(data: bytes, content_type: str | None = None, html: bool = False) -> Decoded:
    """Decode an object's bytes as its source declares.

    Raises:
        DecodeError: an unknown declared charset, bytes invalid in the declared one, binary
            content, or undeclared non-UTF-8 bytes that detection cannot name confidently.
    """
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return Decoded(_strict(data[len(bom) :], codec, codec.upper(), "BOM"), codec, "BOM")
    label, source = content_type_charset(content_type), "Content-Type"
    if label is None:
        found = _declared_in_markup(data, html)
        if found:
            label, source = found
    if label is not None:
        codec = _codec(label, source)
        if codec.startswith(("utf-16", "utf-32")) and source != "Content-Type":
            # A declaration read as ASCII cannot be in UTF-16/32; the standard says UTF-8.
            codec = "utf-8"
        if not codec.startswith(("utf-16", "utf-32")) and b"\0" in data[:8192]:
            raise DecodeError(_BINARY, "unsupported")
        return Decoded(_strict(data, codec, label, source), codec, source)
    if b"\0" in data[:8192]:
        raise DecodeError(_BINARY, "unsupported")
    try:
        return Decoded(data.decode("utf-8"), "utf-8", "UTF-8 (undeclared)")
    except UnicodeDecodeError as exc:
        utf8_error = f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})"
    return _detect(data, utf8_error)


def _sample(data: bytes) -> bytes:
    if len(data) <= _DETECT_SAMPLE:
        return data
    # End after a byte below 0x40: never a trail byte of a multi-byte legacy encoding.
    cut = max(data.rfind(b"\n", 0, _DETECT_SAMPLE), data.rfind(b" ", 0, _DETECT_SAMPLE))
    return data[: cut + 1] if cut > _DETECT_SAMPLE // 2 else data[:_DETECT_SAMPLE]


def _detect(data: bytes, utf8_error: str) -> Decoded:
    sample = _sample(data)
    as_utf8 = sample.decode("utf-8", "replace")
    bad = as_utf8.count("\ufffd")
    good = len(as_utf8) - len(as_utf8.encode("ascii", "ignore")) - bad
    if good > bad:
        # Mostly valid multi-byte UTF-8 with a few broken bytes: a legacy guess would only
        # turn the valid characters into mojibake.
        raise DecodeError(f"{utf8_error}; the rest reads as UTF-8, so it is corrupt UTF-8")
    from charset_normalizer import from_bytes

    matches = list(from_bytes(sample))
    best = matches[0] if matches else None
    if best is not None:
        # Latin text decodes without mess in several Western code pages; among equally good
        # candidates take windows-1252, the Web's default for unlabelled Western text.
        for match in matches:
            if (
                match.encoding == "cp1252"
                and match.chaos <= best.chaos + 0.01
                and match.coherence >= best.coherence - 0.1
            ):
                best = match
                break
    if best is None or best.chaos > _MAX_CHAOS or best.coherence < _MIN_COHERENCE:
        guess = (
            f"best guess {best.encoding} at {best.chaos:.0%} mess, {best.coherence:.0%} coherence"
            if best is not None
            else "no candidate"
        )
        raise DecodeError(
            f"{utf8_error}, no charset declared, and detection is not confident ({guess}); "
            "declare one in the Content-Type"
        )
    codec = codecs.lookup(best.encoding).name
    try:
        return Decoded(data.decode(codec), codec, "detected")
    except UnicodeDecodeError as exc:
        raise DecodeError(
            f"{utf8_error}; detected {codec} from a sample but byte 0x{data[exc.start]:02x} at "
            f"offset {exc.start} is not valid {codec}"
        ) from exc
