"""Speed per MB and peak memory of each format's extractor (and of the alternatives weighed).

Each measurement runs in a fresh interpreter so its peak RSS (``ru_maxrss``) is its own; the
baseline is the same interpreter after importing the extractor and its library, so the figure
is what parsing the file adds. Files are generated in code (``rag_ingest.testing.formats``).
Usage: ``python -m bench.formats [--mb 4] [--out bench/results/formats.md]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rag_ingest.testing import formats as f

_CHILD = r"""
import json, resource, sys, time
kind, path = sys.argv[1], sys.argv[2]
data = open(path, "rb").read()
from rag_ingest.core.documents.extract import extract
import docx, pptx, openpyxl, defusedxml  # noqa: the libraries' import is not the file's cost
def run():
    if kind == "xlsx-full":  # openpyxl's normal (not read-only) mode, for comparison
        import io
        book = openpyxl.load_workbook(io.BytesIO(data), data_only=True)
        rows = (r for s in book.worksheets for r in s.iter_rows(values_only=True))
        return sum(len(str(c)) for r in rows for c in r)
    return len(extract(path, data).text)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
chars = run()
secs = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"secs": secs, "chars": chars, "peak_kb": peak, "base_kb": base}))
"""

WORDS = [
    "the",
    "quarterly",
    "figures",
    "for",
    "northern",
    "stations",
    "show",
    "steady",
    "growth",
    "in",
    "every",
    "region",
]


def _sentence(i: int) -> str:
    return " ".join(WORDS[(i + j) % len(WORDS)] for j in range(12)) + f" {i}."


def build(kind: str, mb: int) -> bytes:
    n = mb * 6000  # rows/paragraphs of roughly 170 bytes of text
    if kind == "docx":
        import docx

        document = docx.Document()
        for i in range(n // 10):
            if i % 50 == 0:
                document.add_heading(f"Section {i}", level=1)
            document.add_paragraph(" ".join(_sentence(i * 10 + k) for k in range(10)))
        import io

        out = io.BytesIO()
        document.save(out)
        return out.getvalue()
    if kind == "pptx":
        slides = [(f"Slide {i}", _sentence(i) * 5, _sentence(i + 1)) for i in range(mb * 150)]
        return f.pptx_bytes(slides)
    if kind in ("xlsx", "xlsx-full"):
        rows: list[list[object]] = [["id", "text", "value"]]
        rows += [[i, _sentence(i), i * 3] for i in range(n)]
        return f.xlsx_bytes({"Data": rows})
    if kind == "csv":
        return (
            "id,text,value\n" + "".join(f"{i},{_sentence(i)},{i * 3}\n" for i in range(n))
        ).encode()
    if kind == "json":
        return json.dumps({"records": [{"id": i, "text": _sentence(i)} for i in range(n)]}).encode()
    if kind == "eml":
        return f.eml_bytes(
            "Bench", "a@example.com", "\n".join(_sentence(i) for i in range(n)), "<p>x</p>", {}
        )
    if kind == "epub":
        chapters = [
            (f"Chapter {c}", " ".join(_sentence(c * 600 + i) for i in range(600)))
            for c in range(n // 600)
        ]
        return f.epub_bytes("Bench", chapters)
    raise ValueError(kind)


SUFFIX = {"xlsx-full": "xlsx", "eml": "eml"}


def measure(kind: str, mb: int, repeats: int) -> dict[str, object]:
    data = build(kind, mb)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"bench.{SUFFIX.get(kind, kind)}"
        path.write_bytes(data)
        best: dict[str, float] | None = None
        for _ in range(repeats):
            out = subprocess.run(
                [sys.executable, "-c", _CHILD, kind, str(path)],
                capture_output=True,
                text=True,
                check=True,
                env=os.environ,
            )
            got = json.loads(out.stdout.strip().splitlines()[-1])
            if best is None or got["secs"] < best["secs"]:
                best = got
    assert best is not None
    size_mb = len(data) / 2**20
    return {
        "kind": kind,
        "file_mb": round(size_mb, 2),
        "text_mb": round(best["chars"] / 2**20, 2),
        "secs": round(best["secs"], 3),
        "mb_per_s": round(size_mb / best["secs"], 2),
        "peak_added_mb": round((best["peak_kb"] - best["base_kb"]) / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=4, help="text size scale (about MB of text)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--kinds", default="docx,pptx,xlsx,xlsx-full,csv,json,eml,epub")
    args = parser.parse_args()
    load = os.getloadavg()
    started = time.time()
    rows = [measure(k, args.mb, args.repeats) for k in args.kinds.split(",")]
    print(json.dumps({"load": load, "secs": time.time() - started, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
