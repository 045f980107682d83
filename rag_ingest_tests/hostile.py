"""Hostile (and a few good) documents, built in code: one or more per class of bad input.

:func:`hostile_corpus` maps S3 keys to ``(body, content type)``; :func:`expected_outcomes` gives
the status and a reason fragment each must end with when extracted under :data:`HOSTILE_LIMITS`
(the defaults, but a 20 s timeout and a 256 MiB worker cap so the timeout and memory cases
fire quickly). Bodies stay under ~2 MB; the exceptions are marked "size is the point" and are still
small on the wire (compressed) except ``bad/aaa.txt`` (2 MB of "a a a ...") and
``bad/gzip-members.txt.gz`` (1.7 MB of tiny gzip members).

A vanished object is not a body: delete a key between listing and fetching to get ``missing``.
"""

from __future__ import annotations

import functools
import gzip
import random
import string
import time
import zlib
from collections.abc import Callable
from typing import TypeVar

from rag_ingest.core.documents.limits import DocumentLimits, MiB

# The timeout leaves room for the slowest document (~3 s alone) on a loaded two-core machine.
HOSTILE_LIMITS = DocumentLimits(timeout_seconds=20.0, memory_bytes=256 * MiB)

Corpus = dict[str, tuple[bytes, str | None]]
T = TypeVar("T")

_FONT = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"


def build_pdf(objects: list[bytes]) -> bytes:
    """A PDF from object bodies (object 1 must be the catalog), with a correct xref table."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def pdf_stream(data: bytes, compress: bool = True) -> bytes:
    if compress:
        data = zlib.compress(data, 9)
        head = b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(data)
        return head + data + b"\nendstream"
    return b"<< /Length %d >>\nstream\n" % len(data) + data + b"\nendstream"


def pdf_pages(
    contents: list[bytes], font: bytes = _FONT, extra: list[bytes] | None = None
) -> bytes:
    """One page per content stream; ``contents`` entries that are equal share one stream."""
    streams: dict[bytes, int] = {}
    stream_objects: list[bytes] = []
    first_stream = 4 + len(contents)
    for content in contents:
        if content not in streams:
            streams[content] = first_stream + len(stream_objects)
            stream_objects.append(pdf_stream(content))
    kids = b" ".join(b"%d 0 R" % (4 + i) for i in range(len(contents)))
    pages = [
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % streams[c]
        for c in contents
    ]
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(contents)),
        font,
        *pages,
        *stream_objects,
        *(extra or []),
    ]
    return build_pdf(objects)


def _text_page(*lines: str) -> bytes:
    ops = [b"BT /F1 12 Tf 72 720 Td 14 TL"]
    for line in lines:
        escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        ops.append(b"(" + escaped.encode("latin-1") + b") Tj T*")
    ops.append(b"ET")
    return b"\n".join(ops)


def lone_surrogate_pdf() -> bytes:
    """A font map sends code 0x41 to U+D800, a lone surrogate pyarrow cannot encode."""
    cmap = (
        b"/CIDInit /ProcSet findresource begin 12 dict begin begincmap /CMapName /X def\n"
        b"1 begincodespacerange <00> <FF> endcodespacerange\n"
        b"2 beginbfchar <41> <D800> <42> <0042> endbfchar endcmap\n"
        b"CMapName currentdict /CMap defineresource pop end end"
    )
    # objects: catalog, pages, font, page, content stream, then the map (6)
    font = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /ToUnicode 6 0 R >>"
    return pdf_pages([b"BT /F1 12 Tf 72 700 Td (ABAB) Tj ET"], font, [pdf_stream(cmap, False)])


def text_bomb_pdf(ops: int = 4_000) -> bytes:
    """~4 MB of text from a ~9 KB file: one compressed stream of repeated Tj."""
    body = (b"(" + b"A" * 1000 + b") Tj\n") * ops
    return pdf_pages([b"BT /F1 12 Tf 72 700 Td\n" + body + b"ET"])


def text_bomb_pages_pdf(pages: int = 60) -> bytes:
    """Pages under the per-page limit that together pass the document's text budget."""
    body = (b"(" + b"B" * 1000 + b") Tj\n") * 200
    return pdf_pages([b"BT /F1 12 Tf 72 700 Td\n" + body + b"ET"] * pages)


def operator_flood_pdf(pages: int = 200, ops: int = 300_000) -> bytes:
    """~40 KB; every page parses 600k operators (~3 s each, ~10 min in all): only a timeout
    stops it."""
    return pdf_pages([b"q Q\n" * ops + b"BT /F1 12 Tf (x) Tj ET"] * pages)


def memory_bomb() -> bytes:
    """92 KB of gzip → 60 MB of Markdown in 10 million sections: every section costs hundreds
    of bytes of Python objects, so extraction needs more memory than any worker cap allows
    (it fails in ~2 s at 256 MiB, ~50 s at the default 2 GiB)."""
    return gzip.compress(b"# a\nb\n" * (10 * MiB), 9)


def good_pdf() -> bytes:
    return pdf_pages(
        [
            _text_page("Glacier report", "Ice sheets advance and retreat over millennia."),
            _text_page("Page two", "Milankovitch cycles pace the ice ages."),
        ]
    )


def _random_word_chars(n: int, seed: int = 7) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(n))


def _good() -> Corpus:
    guide = (
        "# Guide\n\nHow to install the tool.\n\n## Install\n\n### Linux\n\n"
        "Use the package manager: `apt install tool`.\n\n### macOS\n\nUse Homebrew.\n\n"
        "## Use\n\nRun `tool --help` for the options.\n"
    )
    page = (
        "<html><head><title>Bees</title></head><body><nav>Home</nav><h1>Honeybees</h1>"
        "<p>Bees dance to share where flowers are.</p><h2>The waggle dance</h2>"
        "<p>The angle of the dance points to the food.</p><footer>Copyright</footer></body></html>"
    )
    russian = "Съешь же ещё этих мягких французских булок, да выпей чаю. " * 8
    legacy = (
        '<html><head><meta charset="windows-1251"><title>Булки</title></head>'
        f"<body><h1>Русский текст</h1><p>{russian}</p></body></html>"
    )
    japanese = "日本語のテキストです。これはテストです。" * 8
    sjis = (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=shift_jis">'
        f"</head><body><p>{japanese}</p></body></html>"
    )
    french = "Le café crème est très apprécié à Paris, où les garçons servent des croissants. "
    return {
        "good/guide.md": (guide.encode(), "text/markdown"),
        "good/bees.html": (page.encode(), "text/html"),
        "good/report.pdf": (good_pdf(), "application/pdf"),
        "good/notes.txt": (b"Plain notes.\nSecond line of the notes.\n", None),
        "good/legacy-cp1251.html": (legacy.encode("cp1251"), "text/html"),
        "good/shift-jis.html": (sjis.encode("shift_jis"), "text/html"),
        "good/latin1-declared.txt": (french.encode("latin-1"), "text/plain; charset=ISO-8859-1"),
        "good/undeclared-cp1252.txt": ((french * 4).encode("cp1252"), "text/plain"),
        "good/xml-declared.xhtml": (
            b'<?xml version="1.0" encoding="ISO-8859-1"?><html><body><p>'
            + (french * 2).encode("latin-1")
            + b"</p></body></html>",
            None,
        ),
        "good/utf16-bom.txt": ("\ufeffUTF-16 text, with a BOM.".encode("utf-16-le"), None),
    }


def _bad() -> Corpus:
    rng = random.Random(1)
    many_sections = "".join(f"## Section {i}\n\nShort body {i}.\n\n" for i in range(50_000))
    return {
        # Isolation: text that passes extraction but could not be serialised.
        "bad/lone-surrogate.pdf": (lone_surrogate_pdf(), "application/pdf"),
        "bad/corrupt.pdf": (b"%PDF-1.7\n1 0 obj\n<< /Type", "application/pdf"),
        "bad/empty.txt": (b"", None),
        "bad/image.png": (b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "image/png"),
        "bad/nul.txt": (b"abc\0def", None),
        # Bounds: decompression and text caps (size is the point; small compressed).
        "bad/gzip-bomb.txt.gz": (gzip.compress(b"\0" * (100 * MiB), 9), None),
        "bad/gzip-members.txt.gz": (b"".join(gzip.compress(b"x") for _ in range(80_000)), None),
        "bad/text-bomb.pdf": (text_bomb_pdf(), "application/pdf"),
        "bad/text-bomb-pages.pdf": (text_bomb_pages_pdf(), "application/pdf"),
        # Bounds: wall clock and memory.
        "bad/operator-flood.pdf": (operator_flood_pdf(), "application/pdf"),
        "bad/memory.md.gz": (memory_bomb(), None),
        # Bounds: super-linear parsers (size is the point: ~1 MB each).
        "bad/long-heading.md": (("# a" + " #" * 500_000 + "x\n\nbody").encode(), None),
        "bad/many-sections.md": (many_sections.encode(), None),
        "bad/many-elements.html": (("<html><body>" + "<i>x</i>" * 190_000).encode(), None),
        "bad/deep.html": (("<div>" * 100_000 + "deep text").encode(), "text/html"),
        "bad/blank-lines.html": (("<pre>" + "\n \t" * 300_000 + "x</pre>").encode(), "text/html"),
        # Tokenization: unsplittable runs and unbounded whitespace (size is the point).
        "bad/aaa.txt": (b"a " * MiB, None),
        "bad/long-run.txt": (_random_word_chars(200_000).encode(), None),
        "bad/thai.txt": (("สวัสดีครับผมชื่อสมชาย" * 3000).encode(), None),
        "bad/whitespace.txt": (b"a" + b" " * MiB + b"b", None),
        "bad/controls.txt": (b"a" + b"\x01" * 100_000 + b"b", None),
        # Decoding.
        "bad/unknown-charset.txt": (b"text", "text/plain; charset=x-klingon"),
        "bad/unknown-meta.html": (b'<meta charset="klingon"><p>x</p>', "text/html"),
        "bad/undetectable.txt": (bytes(rng.randrange(128, 256) for _ in range(2000)), None),
        "bad/corrupt-utf8.txt": (("Hello wörld, mostly UTF-8. " * 20).encode() + b"\xa0", None),
    }


@functools.cache
def hostile_corpus() -> Corpus:
    """S3 key → (body, content type or None): every class of bad input plus good documents."""
    return {**_good(), **_bad()}


def expected_outcomes() -> dict[str, tuple[str, str | None]]:
    """Key → (status, fragment of the reason) under :data:`HOSTILE_LIMITS`."""
    ok: tuple[str, str | None] = ("ok", None)
    expected: dict[str, tuple[str, str | None]] = dict.fromkeys(_good_keys(), ok)
    expected.update(
        {
            "bad/lone-surrogate.pdf": ok,
            "bad/corrupt.pdf": ("failed", "corrupt PDF"),
            "bad/empty.txt": ("empty", "0 bytes"),
            "bad/image.png": ("unsupported", "PNG"),
            "bad/nul.txt": ("unsupported", "NUL"),
            "bad/gzip-bomb.txt.gz": ("failed", "gzip content expands beyond"),
            "bad/gzip-members.txt.gz": ok,
            "bad/text-bomb.pdf": ("failed", "yields more than"),
            "bad/text-bomb-pages.pdf": ("failed", "exceeds the 1,048,576-character limit"),
            "bad/operator-flood.pdf": ("failed", "timed out after 20 s"),
            "bad/memory.md.gz": ("failed", "out of memory"),
            "bad/long-heading.md": ok,
            "bad/many-sections.md": ok,
            "bad/many-elements.html": ok,
            "bad/deep.html": ok,
            "bad/blank-lines.html": ok,
            "bad/aaa.txt": ok,
            "bad/long-run.txt": ok,
            "bad/thai.txt": ok,
            "bad/whitespace.txt": ok,
            "bad/controls.txt": ok,
            "bad/unknown-charset.txt": ("failed", "unknown charset 'x-klingon'"),
            "bad/unknown-meta.html": ("failed", "unknown charset 'klingon'"),
            "bad/undetectable.txt": ("failed", "detection is not confident"),
            "bad/corrupt-utf8.txt": ("failed", "corrupt UTF-8"),
        }
    )
    return expected


def _good_keys() -> list[str]:
    return [key for key in hostile_corpus() if key.startswith("good/")]


def peak_rss_growth_mb(setup: str, work: str, timeout: float = 300) -> float:
    """Growth of peak RSS (VmHWM) while ``work`` runs, after ``setup``, in a fresh interpreter.

    Both are Python source run at module level; ``setup`` should build inputs and warm up the
    code under test, so only ``work``'s own peak counts.
    """
    import json
    import subprocess
    import sys
    import textwrap
    from pathlib import Path

    script = "\n".join(
        [
            "def _peak_kb():",
            "    status = open('/proc/self/status').read()",
            "    return int(status.split('VmHWM:')[1].split()[0])",
            textwrap.dedent(setup),
            "import gc as _gc",
            "_gc.collect()",
            # Reset VmHWM to the current RSS, so the setup's own peak does not mask work's.
            "open('/proc/self/clear_refs', 'w').write('5')",
            "_before = _peak_kb()",
            textwrap.dedent(work),
            "import json as _json",
            "print(_json.dumps((_peak_kb() - _before) / 1024))",
        ]
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
        check=True,
        timeout=timeout,
    )
    return float(json.loads(out.stdout.strip().splitlines()[-1]))


def growth_ratio(run: Callable[[T], object], small: T, large: T, repeat: int = 3) -> float:
    """Best-of-``repeat`` CPU time of ``run(large)`` over ``run(small)``: about k for linear
    work on a k-times larger input, k² for quadratic. CPU time of this thread, not the wall:
    a ratio of work done, which other processes on a loaded machine do not inflate."""

    def best(arg: T) -> float:
        times = []
        for _ in range(repeat):
            start = time.thread_time()
            run(arg)
            times.append(time.thread_time() - start)
        return min(times)

    floor = best(small)
    assert floor > 0, "the small input ran in no measurable CPU time: make it larger"
    return best(large) / floor
