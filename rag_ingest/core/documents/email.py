"""Saved email (``.eml``, RFC 5322 / MIME) with the standard library's ``email`` package.

The plain-text body is preferred over the HTML one; quoted-printable and base64 bodies are
decoded and declared charsets honoured by ``email.policy.default``. The first block carries the
subject, sender and date (its heading is the subject); each attachment of a supported format is
extracted by the same dispatcher (one level deep: an attachment's own attachments are not
opened) and becomes blocks under the heading path ``(subject, attachment name)``.
"""

from __future__ import annotations

import email
import email.policy
from collections.abc import Callable
from email.message import EmailMessage

from rag_ingest.core.documents.model import (
    Extracted,
    ExtractionError,
    Part,
    TextBudget,
    assemble_blocks,
)

MAX_ATTACHMENTS = 20
# (name, bytes, content type) -> extracted attachment; raises ExtractionError.
AttachmentReader = Callable[[str, bytes, str], Extracted]


def _text_of(part: EmailMessage) -> str:
    try:
        content = part.get_content()
    except (LookupError, ValueError, AssertionError):
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    return content if isinstance(content, str) else ""


def extract_email(
    data: bytes, budget: TextBudget, read_attachment: AttachmentReader | None
) -> Extracted:
    message = email.message_from_bytes(data, policy=email.policy.default)
    if not isinstance(message, EmailMessage) or not (message.keys() or message.get_payload()):
        raise ExtractionError("failed", "not an email message")
    subject = str(message.get("subject", "") or "").strip()
    sender = str(message.get("from", "") or "").strip()
    date = str(message.get("date", "") or "").strip()
    header = "\n".join(
        f"{k}: {v}" for k, v in (("Subject", subject), ("From", sender), ("Date", date)) if v
    )
    heading = subject or "(no subject)"
    body = message.get_body(preferencelist=("plain", "html"))
    text = ""
    if body is not None:
        text = _text_of(body)  # type: ignore[arg-type]
        if body.get_content_subtype() == "html":
            from rag_ingest.core.documents.html import extract_html

            text = extract_html(text, budget).text
    budget.take(len(text) + len(header))
    parts: list[Part] = [(f"{header}\n\n{text}", None, heading, (heading,))]
    skipped: list[str] = []
    for n, attachment in enumerate(message.iter_attachments()):
        name = attachment.get_filename() or f"attachment-{n + 1}"
        if n >= MAX_ATTACHMENTS or read_attachment is None:
            skipped.append(f"{name}: more than {MAX_ATTACHMENTS} attachments")
            continue
        payload = attachment.get_payload(decode=True)
        if not isinstance(payload, bytes) or not payload:
            continue
        try:
            inner = read_attachment(name, payload, attachment.get_content_type())
        except ExtractionError as exc:
            skipped.append(f"{name}: {exc.reason}"[:200])
            continue
        for block in inner.blocks:
            path = (heading, f"Attachment: {name}", *block.heading_path)
            parts.append((f"Attachment {name}\n{block.text}", None, name, path))
    note = "attachments not extracted: " + "; ".join(skipped) if skipped else None
    return Extracted("email", assemble_blocks(parts), title=subject or None, note=note)
