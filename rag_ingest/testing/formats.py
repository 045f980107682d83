"""Documents of every supported office/data format, built in code with a phrase only each holds.

Used by the format tests and by ``scripts/make_sample_corpus.py``; hostile variants live beside
the good ones so tests and the sample share one way of building them.
"""

from __future__ import annotations

import io
import json
import zipfile
from email.message import EmailMessage
from typing import Any


def docx_bytes(heading: str, sub: str, body: str, table: list[list[str]]) -> bytes:
    import docx

    document = docx.Document()
    document.core_properties.title = heading
    document.add_heading(heading, level=1)
    document.add_heading(sub, level=2)
    document.add_paragraph(body)
    grid = document.add_table(rows=len(table), cols=len(table[0]))
    for r, row in enumerate(table):
        for c, value in enumerate(row):
            grid.cell(r, c).text = value
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def pptx_bytes(slides: list[tuple[str, str, str]]) -> bytes:
    """``(title, body, speaker notes)`` per slide."""
    import pptx

    deck = pptx.Presentation()
    for title, body, notes in slides:
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        shapes: Any = slide.shapes  # the layout has a title and a body placeholder
        shapes.title.text = title
        placeholders: Any = slide.placeholders
        placeholders[1].text = body
        notes_frame: Any = slide.notes_slide.notes_text_frame
        notes_frame.text = notes
    out = io.BytesIO()
    deck.save(out)
    return out.getvalue()


def xlsx_bytes(sheets: dict[str, list[list[object]]]) -> bytes:
    import openpyxl

    book = openpyxl.Workbook(write_only=True)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def eml_bytes(subject: str, sender: str, plain: str, html: str, attach: dict[str, bytes]) -> bytes:
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = sender
    message["To"] = "team@example.com"
    message["Date"] = "Thu, 03 Dec 2026 10:00:00 +0000"
    message.set_content(plain, charset="utf-8", cte="quoted-printable")
    message.add_alternative(html, subtype="html")
    for name, data in attach.items():
        maintype, subtype = ("text", "csv") if name.endswith(".csv") else ("application", "zip")
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return message.as_bytes()


def epub_bytes(title: str, chapters: list[tuple[str, str]]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as book:
        book.writestr("mimetype", "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        book.writestr(
            "META-INF/container.xml",
            '<?xml version="1.0"?><container version="1.0" '
            'xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles>'
            '<rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>'
            "</rootfiles></container>",
        )
        items = "".join(
            f'<item id="c{i}" href="c{i}.xhtml" media-type="application/xhtml+xml"/>'
            for i in range(len(chapters))
        )
        spine = "".join(f'<itemref idref="c{i}"/>' for i in range(len(chapters)))
        book.writestr(
            "OEBPS/content.opf",
            '<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0">'
            '<metadata xmlns:dc="http://purl.org/dc/elements/1.1/">'
            f"<dc:title>{title}</dc:title></metadata><manifest>{items}</manifest>"
            f"<spine>{spine}</spine></package>",
        )
        for i, (heading, text) in enumerate(chapters):
            book.writestr(
                f"OEBPS/c{i}.xhtml",
                f"<html><head><title>{heading}</title></head><body><h1>{heading}</h1>"
                f"<p>{text}</p></body></html>",
            )
    return out.getvalue()


def json_bytes(value: object) -> bytes:
    return json.dumps(value).encode()


def zip_bomb_docx(inflated: int) -> bytes:
    """A docx-shaped zip whose one member inflates to ``inflated`` bytes of zeros."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        with z.open("word/document.xml", "w", force_zip64=True) as member:
            block = b"\0" * (1 << 20)
            for _ in range(inflated >> 20):
                member.write(block)
    return out.getvalue()


def many_members_docx(count: int) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        for i in range(count):
            z.writestr(f"word/m{i}.xml", "<a/>")
    return out.getvalue()


def entity_xlsx(good: bytes) -> bytes:
    """``good`` with a billion-laughs DTD and an external entity in its first sheet."""
    dtd = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
        b'<!ENTITY ext SYSTEM "file:///etc/passwd">]>'
    )
    src = zipfile.ZipFile(io.BytesIO(good))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "xl/worksheets/sheet1.xml":
                data = dtd + (data.split(b"?>", 1)[1] if data.startswith(b"<?xml") else data)
            z.writestr(info.filename, data)
    return out.getvalue()


def nested_zip_docx(good: bytes, depth: int) -> bytes:
    """A docx holding an archive that holds an archive ... ``depth`` deep."""
    inner = b"x" * 1024
    for level in range(depth):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr(f"level{level}.zip" if level else "payload.bin", inner)
        inner = buf.getvalue()
    src = zipfile.ZipFile(io.BytesIO(good))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for info in src.infolist():
            z.writestr(info.filename, src.read(info.filename))
        z.writestr("word/embeddings/nested.zip", inner)
    return out.getvalue()
