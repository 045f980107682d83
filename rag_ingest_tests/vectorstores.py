"""Shared by the vector-store tests: documents with random unit vectors, a child process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np

from rag_ingest.core.keys import document_id
from rag_ingest.core.records import DocumentInfo
from rag_ingest.core.text.chunking import Chunk
from rag_ingest.core.vectorstore import DocumentPoints

REPO = Path(__file__).resolve().parent.parent
DIM = 16
BUCKET = "docs-bucket"


def make_doc(
    key: str,
    etag: str = "v1",
    chunks: int = 3,
    rng: np.random.Generator | None = None,
    dim: int = DIM,
) -> DocumentPoints:
    """One document version under ``BUCKET`` with ``chunks`` chunks and unit vectors."""
    rng = rng or np.random.default_rng(zlib.crc32(f"{key}\0{etag}".encode()))
    info = DocumentInfo(
        doc_id=document_id(BUCKET, key),
        bucket=BUCKET,
        key=key,
        etag=etag,
        size=1000,
        last_modified="2025-01-01T00:00:00+00:00",
        format="markdown",
        title=f"Title of {key}",
    )
    parts = [
        Chunk(
            index=i,
            text=f"{key} {etag} chunk {i}",
            char_start=100 * i,
            char_end=100 * i + 90,
            token_count=20,
            page=i + 1,
            heading=f"Section {i}",
        )
        for i in range(chunks)
    ]
    vectors = rng.standard_normal((chunks, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return DocumentPoints(info, parts, vectors if chunks else np.zeros((0, 0), np.float32))


def run_child(
    engine: str, path: Path, body: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``body`` in a fresh interpreter with ``engine``/``path`` and the store API bound."""
    script = textwrap.dedent(
        f"""
        import sys, time
        from rag_ingest.core.vectorstore import open_vector_store, StoreLocked
        engine, path = {engine!r}, {str(path)!r}
        """
    ) + textwrap.dedent(body)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=timeout
    )
