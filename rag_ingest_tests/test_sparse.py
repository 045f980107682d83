"""The BM25 encoder equals fastembed's ``Qdrant/bm25`` token for token on real paragraphs."""

from __future__ import annotations

import email
import sys
from importlib.metadata import distributions
from pathlib import Path

import pytest

from rag_ingest.core.text.sparse import ENGLISH_STOPWORDS, MODEL_NAME, Bm25Encoder


def _paragraphs(limit: int) -> list[str]:
    """Paragraphs of the long descriptions of the packages installed here: real, varied prose,
    code, tables and identifiers, none of it written for this test."""
    seen: set[str] = set()
    out: list[str] = []
    for dist in sorted(distributions(), key=lambda d: d.metadata["Name"] or ""):
        text = dist.read_text("METADATA") or ""
        body = email.message_from_string(text).get_payload()
        if not isinstance(body, str):
            continue
        for para in body.split("\n\n"):
            para = para.strip()
            if len(para) >= 40 and para not in seen:
                seen.add(para)
                out.append(para)
                if len(out) >= limit:
                    return out
    return out


@pytest.fixture(scope="module")
def fastembed_bm25(tmp_path_factory: pytest.TempPathFactory):
    # fastembed is a test-only install (pip install --no-deps fastembed==0.9.1, see pyproject);
    # its model folder is only english.txt, written from the encoder's list: the hub is not
    # reachable here, and the list's content is checked separately below.
    from fastembed.sparse.bm25 import Bm25

    folder = tmp_path_factory.mktemp("bm25")
    (folder / "english.txt").write_text("\n".join(sorted(ENGLISH_STOPWORDS)) + "\n")
    (folder / "config.json").write_text("{}")
    return Bm25(MODEL_NAME, specific_model_path=str(folder), local_files_only=True)


def test_stopwords_are_nltk_english_without_the_contractions_added_later() -> None:
    # llama-index ships NLTK's current English list (198 words); Qdrant/bm25's is the older 179.
    nltk_list = Path(sys.prefix).glob(
        "lib/python*/site-packages/llama_index/core/_static/nltk_cache/corpora/stopwords/english"
    )
    current = set(next(nltk_list).read_text().split())
    added_later = set(
        [
            "he'd",
            "he'll",
            "he's",
            "i'd",
            "i'll",
            "i'm",
            "i've",
            "it'd",
            "it'll",
            "she'd",
            "she'll",
            "they'd",
            "they'll",
            "they're",
            "they've",
            "we'd",
            "we'll",
            "we're",
            "we've",
        ]
    )
    assert len(ENGLISH_STOPWORDS) == 179
    assert current - added_later == ENGLISH_STOPWORDS


def test_documents_and_queries_equal_fastembed_on_real_paragraphs(fastembed_bm25) -> None:
    paragraphs = _paragraphs(3000)
    assert len(paragraphs) >= 1000
    ours = Bm25Encoder()
    theirs = list(fastembed_bm25.embed(paragraphs, batch_size=64))
    queries = list(fastembed_bm25.query_embed(paragraphs))
    for text, doc, query in zip(paragraphs, theirs, queries, strict=True):
        order = doc.indices.argsort()
        mine = ours.embed_document(text)
        assert mine.indices == doc.indices[order].tolist(), text
        assert mine.values == pytest.approx(doc.values[order].tolist(), rel=1e-12), text
        assert ours.embed_query(text).indices == sorted(query.indices.tolist()), text


def test_underscores_and_case_follow_fastembed(fastembed_bm25) -> None:
    text = "RAG_SPARSE_VECTOR_NAME set, the Running runners ran _ __init__ ÉCOLE école"
    doc = next(iter(fastembed_bm25.embed([text])))
    mine = Bm25Encoder().embed_document(text)
    assert mine.indices == sorted(doc.indices.tolist())
    assert len(mine.indices) == 7
