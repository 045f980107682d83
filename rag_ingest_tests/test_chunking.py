import itertools

import pytest

from rag_ingest.core.documents.extract import extract
from rag_ingest.core.documents.model import Block
from rag_ingest.core.text.chunking import MAX_CHUNK_TOKENS, chunk_blocks
from rag_ingest.core.text.encoder import load_tokenizer


def _count(text: str) -> int:
    return len(load_tokenizer().encode(text, add_special_tokens=False).ids)


def _long_markdown() -> str:
    body = " ".join(
        f"Paragraph sentence {i} explains how embeddings, tokenizers and vector indexes interact."
        + ("\n\n" if i % 7 == 6 else "")
        for i in range(300)
    )
    return f"# Manual\n\nIntro.\n\n## Deep section\n\n{body}\n\n## Tail\n\nThe end."


def test_no_chunk_exceeds_the_model_window_and_offsets_point_into_the_text() -> None:
    doc = extract("manual.md", _long_markdown().encode())
    chunks = chunk_blocks(doc.blocks)
    assert len(chunks) > 10
    for i, chunk in enumerate(chunks):
        assert chunk.index == i
        assert chunk.token_count == _count(chunk.text) <= MAX_CHUNK_TOKENS
        assert doc.text[chunk.char_start : chunk.char_end] == chunk.text
    # a long section fills chunks close to the limit rather than making many tiny ones
    deep = [c for c in chunks if c.heading == "Deep section"]
    assert sum(c.token_count for c in deep[:-1]) / len(deep[:-1]) > 0.8 * MAX_CHUNK_TOKENS


def test_neighbouring_chunks_overlap_and_cuts_prefer_boundaries() -> None:
    doc = extract("manual.md", _long_markdown().encode())
    deep = [c for c in chunk_blocks(doc.blocks, overlap=32) if c.heading == "Deep section"]
    for left, right in itertools.pairwise(deep):
        assert right.char_start < left.char_end  # overlap
        assert doc.text[left.char_end - 1] in ".!?;:" or doc.text[left.char_end] in " \n"
    no_overlap = [c for c in chunk_blocks(doc.blocks, overlap=0) if c.heading == "Deep section"]
    for left, right in itertools.pairwise(no_overlap):
        assert right.char_start >= left.char_end


def test_headings_and_pages_are_kept_and_chunks_stay_inside_blocks() -> None:
    blocks = [
        Block("First page text. " * 200, 0, page=1, heading=None),
        Block("Second page.", 3402, page=2, heading="Results"),
    ]
    chunks = chunk_blocks(blocks)
    assert {c.page for c in chunks} == {1, 2}
    assert chunks[-1].heading == "Results" and chunks[-1].text == "Second page."
    assert chunks[-1].char_start == 3402


def test_a_word_longer_than_the_window_is_cut_without_exceeding_it() -> None:
    blob = "x" * 5000 + " tail"
    chunks = chunk_blocks([Block(blob, 0)])
    assert "".join(c.text for c in chunks).replace(" ", "").startswith("x" * 100)
    assert all(_count(c.text) <= MAX_CHUNK_TOKENS for c in chunks)
    assert chunks[-1].text.endswith("tail")


@pytest.mark.parametrize(("max_tokens", "overlap"), [(0, 0), (300, 0), (100, 50), (100, -1)])
def test_invalid_settings_are_refused(max_tokens: int, overlap: int) -> None:
    with pytest.raises(ValueError):
        chunk_blocks([Block("text", 0)], max_tokens=max_tokens, overlap=overlap)
