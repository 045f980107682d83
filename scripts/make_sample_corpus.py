"""Writes sample_corpus/: the small mixed-format corpus `make dev` uploads to its local S3.

Run once by hand (needs reportlab, a dev dependency) when the texts change; the output is
committed so nobody needs to run it.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

# The texts live in a data file beside this script; code and prose change for different reasons.
TOPICS: dict[str, tuple[str, list[tuple[str, str]]]] = {
    name: (topic["title"], [(s["heading"], s["text"]) for s in topic["sections"]])
    for name, topic in json.loads(
        (Path(__file__).with_name("sample_topics.json")).read_text()
    ).items()
}

PDF_TOPICS = ("black-holes", "roman-aqueducts", "glaciers")
HTML_TOPICS = ("honeybees", "coffee-brewing", "octopus", "tides")
TXT_TOPICS = ("composting", "photosynthesis", "origami")
GZ_TOPICS = ("marathon-training", "git-branching")


def markdown(title: str, sections: list[tuple[str, str]]) -> str:
    body = "\n\n".join(f"## {h}\n\n{p}" for h, p in sections)
    return f"# {title}\n\n{body}\n"


def html(title: str, sections: list[tuple[str, str]]) -> str:
    body = "".join(f"<h2>{h}</h2>\n<p>{p}</p>\n" for h, p in sections)
    return (
        f"<!doctype html><html><head><title>{title}</title><style>p{{margin:0}}</style>"
        f"<script>console.log('not content')</script></head><body>"
        f"<nav><a href='/'>Home</a> | <a href='/about'>About</a></nav>"
        f"<article><h1>{title}</h1>\n{body}</article><footer>Copyright sample</footer></body></html>"
    )


def pdf(path: Path, title: str, sections: list[tuple[str, str]]) -> None:
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import Flowable, PageBreak, Paragraph, SimpleDocTemplate

    styles = getSampleStyleSheet()
    story: list[Flowable] = [Paragraph(title, styles["Title"])]
    for i, (heading, text) in enumerate(sections):
        if i:
            story.append(PageBreak())
        story += [Paragraph(heading, styles["Heading2"]), Paragraph(text, styles["BodyText"])]
    SimpleDocTemplate(str(path), pagesize=A4, title=title).build(story)


def main(out: Path) -> None:
    for name, (title, sections) in TOPICS.items():
        if name in PDF_TOPICS:
            target = out / "reports" / f"{name}.pdf"
            target.parent.mkdir(parents=True, exist_ok=True)
            pdf(target, title, sections)
            continue
        if name in HTML_TOPICS:
            target, content = out / "web" / f"{name}.html", html(title, sections)
        elif name in TXT_TOPICS:
            plain = f"{title}\n\n" + "\n\n".join(p for _, p in sections) + "\n"
            target, content = out / "notes" / f"{name}.txt", plain
        else:
            target, content = out / "guides" / f"{name}.md", markdown(title, sections)
        target.parent.mkdir(parents=True, exist_ok=True)
        if name in GZ_TOPICS:
            target = target.with_name(target.name + ".gz")
            target.write_bytes(gzip.compress(content.encode(), mtime=0))
        else:
            target.write_text(content, encoding="utf-8")
    # Real-world names: spaces, commas, unicode; and input the pipeline must refuse politely.
    odd = out / "guides" / "Notes, drafts & ideas — café.md"
    odd.write_text(markdown("Café notes", [("Espresso", TOPICS["coffee-brewing"][1][0][1])]))
    (out / "broken").mkdir(exist_ok=True)
    (out / "broken" / "empty.txt").write_bytes(b"")
    (out / "broken" / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    (out / "broken" / "latin1.txt").write_bytes("Caf\xe9 cr\xe8me".encode("latin-1"))
    (out / "broken" / "truncated.pdf").write_bytes(b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog")
    office(out / "office")


def office(out: Path) -> None:
    """One small file of each office/data format, each with facts only it holds."""
    from rag_ingest.testing import formats as f

    out.mkdir(parents=True, exist_ok=True)
    (out / "field-station-report.docx").write_bytes(
        f.docx_bytes(
            "Field station report",
            "Glacier survey",
            "The survey team measured the Taku glacier retreating forty metres over the summer.",
            [["Station", "Snowfall (cm)"], ["North ridge", "412"], ["Lake camp", "268"]],
        )
    )
    (out / "quarterly-review.pptx").write_bytes(
        f.pptx_bytes(
            [
                ("Quarterly review", "Highlights of the third quarter", "Welcome everyone."),
                (
                    "Tea exports",
                    "Darjeeling tea exports grew by a fifth",
                    "Mention the monsoon delayed the first flush harvest.",
                ),
            ]
        )
    )
    (out / "bird-counts.xlsx").write_bytes(
        f.xlsx_bytes(
            {
                "Counts": [["Species", "Count"], ["Atlantic puffin", 340], ["Arctic tern", 1210]],
                "Sites": [["Site", "Habitat"], ["Skomer island", "sea cliffs and burrows"]],
            }
        )
    )
    (out / "lighthouses.csv").write_text(
        "name,country,height_m\nHook Head,Ireland,35\nTour de Cordouan,France,68\n",
        encoding="utf-8",
    )
    (out / "telescope-config.json").write_bytes(
        f.json_bytes({"telescope": {"mirror": "segmented beryllium", "aperture_m": 6.5}})
    )
    (out / "orchard-update.eml").write_bytes(
        f.eml_bytes(
            "Orchard update",
            "Grower <grower@example.com>",
            "The cider apple harvest starts next week; Kingston Black trees look strong.",
            "<p>The cider apple harvest starts next week.</p>",
            {"pickers.csv": b"picker,rows\nMaya,12\nTom,9\n"},
        )
    )
    (out / "river-guide.epub").write_bytes(
        f.epub_bytes(
            "A short river guide",
            [("Source", "The Danube rises in the Black Forest at Donaueschingen.")],
        )
    )


if __name__ == "__main__":
    main(Path(__file__).resolve().parent.parent / "sample_corpus")
