"""Per-document resource limits: what one S3 object may cost, whatever its bytes are.

Every bound on the per-document path derives from these numbers (see the "Bounds" section of
``docs/architecture.md``): the fetch refuses objects above ``max_object_bytes`` unread, the
decompressors stop at ``max_decompressed_bytes``, every extractor stops at ``max_text_chars``
(PDFs also at ``max_pdf_text_ratio`` characters per byte of the file), and the extraction worker
is killed after ``timeout_seconds`` or fails its document at ``memory_bytes`` of address space.
"""

from __future__ import annotations

from dataclasses import dataclass

MiB = 1024 * 1024


@dataclass(frozen=True)
class DocumentLimits:
    """Limits of one document's fetch and extraction.

    Attributes:
        max_object_bytes: objects above this are refused from their Content-Length, unread.
        max_decompressed_bytes: gzip output above this fails the document.
        max_text_chars: extracted text above this fails the document (every format). Its default
            equals ``max_object_bytes``: a plain text object that may be fetched always fits.
        max_pdf_text_ratio: a PDF may yield at most this many characters per byte of the file
            (at least 1 Mi characters): normal PDFs yield fewer than 5; a few KB of repeated or
            nested content streams can expand to megabytes of text.
        timeout_seconds: wall clock of one document's extraction; the worker is killed after it.
        memory_bytes: address-space limit (``RLIMIT_AS``) of each extraction worker.
    """

    max_object_bytes: int = 64 * MiB
    max_decompressed_bytes: int = 64 * MiB
    max_text_chars: int = 64 * MiB
    max_pdf_text_ratio: float = 100.0
    timeout_seconds: float = 120.0
    memory_bytes: int = 2 * 1024 * MiB

    def __post_init__(self) -> None:
        for name in ("max_object_bytes", "max_decompressed_bytes", "max_text_chars"):
            if getattr(self, name) <= 0:
                raise ValueError(f"DocumentLimits.{name} must be positive")
        if self.timeout_seconds <= 0 or self.max_pdf_text_ratio <= 0:
            raise ValueError("DocumentLimits.timeout_seconds and max_pdf_text_ratio must be > 0")
        if self.memory_bytes < 256 * MiB:
            # Below this the interpreter and the parsers' libraries do not even load.
            raise ValueError("DocumentLimits.memory_bytes must be at least 256 MiB")

    def pdf_text_chars(self, pdf_bytes: int) -> int:
        """The text budget of a PDF file of ``pdf_bytes`` bytes."""
        return min(self.max_text_chars, max(MiB, int(self.max_pdf_text_ratio * pdf_bytes)))
