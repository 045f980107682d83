"""Chunks are bounded and represent their text whatever the text; small sections are packed."""

import functools
import itertools
import random
import string
from typing import Any

import pytest

from rag_ingest.core.documents.extract import extract
from rag_ingest.core.documents.model import Block, Extracted, assemble_blocks
from rag_ingest.core.text.chunking import (
    CHUNKER_VERSION,
    MAX_CHUNK_CHARS,
    MAX_CHUNK_TOKENS,
    Chunk,
    chunk_blocks,
    chunk_stats,
)
from rag_ingest.core.text.encoder import load_tokenizer
from rag_ingest_tests.hostile import peak_rss_growth_mb


@functools.cache
def _count(text: str) -> int:
    return len(load_tokenizer().encode(text, add_special_tokens=False).ids)


def _unk(text: str) -> int:
    enc = load_tokenizer().encode(text, add_special_tokens=False)
    return enc.tokens.count("[UNK]")


def _matches(span: str, text: str) -> bool:
    """``text`` is ``span`` with spaces inserted (at split points of over-long words)."""
    i = 0
    for char in text:
        if i < len(span) and span[i] == char:
            i += 1
        elif char != " ":
            return False
    return i == len(span)


def _check(doc_text: str, chunks: list[Chunk], max_tokens: int, max_chars: int) -> None:
    for n, chunk in enumerate(chunks):
        assert chunk.index == n
        assert chunk.token_count == _count(chunk.text) <= max_tokens, chunk
        assert len(chunk.text) <= max_chars and chunk.char_end - chunk.char_start <= max_chars
        assert _matches(doc_text[chunk.char_start : chunk.char_end], chunk.text)


def _doc(*texts: str) -> Extracted:
    return Extracted("text", assemble_blocks([(t, None, None, ()) for t in texts]))


def test_chunker_version_is_bumped() -> None:
    assert CHUNKER_VERSION == 2


def test_a_long_unspaced_run_is_split_into_readable_bounded_chunks() -> None:
    run = "".join(random.Random(3).choice(string.ascii_letters) for _ in range(200_000))
    chunks = chunk_blocks(_doc(run).blocks)
    _check(run, chunks, MAX_CHUNK_TOKENS, MAX_CHUNK_CHARS)
    assert len(chunks) > 200  # formerly one chunk of a single [UNK]
    assert all(_unk(c.text) == 0 and c.unrepresented_chars == 0 for c in chunks)
    # every character is in some chunk
    assert chunks[0].char_start == 0 and chunks[-1].char_end == len(run)
    assert all(b.char_start <= a.char_end for a, b in itertools.pairwise(chunks))


@pytest.mark.parametrize(
    "text",
    [
        "https://example.com/" + "/".join("segment" + str(i) for i in range(3000)),
        "function(a){return a+1};" * 4000,
        "QUJD" * 30_000 + "==",
        "日本語のテキストです。" * 5000,
        "한국어문장" * 5000,
    ],
    ids=["url", "minified", "base64", "japanese", "hangul-run"],
)
def test_unspaced_text_of_every_kind_stays_bounded_and_exactly_counted(text: str) -> None:
    chunks = chunk_blocks(_doc(text).blocks)
    _check(text, chunks, MAX_CHUNK_TOKENS, MAX_CHUNK_CHARS)
    assert sum(c.unrepresented_chars for c in chunks) == 0


def test_what_the_model_cannot_read_is_counted_and_reported() -> None:
    thai = "สวัสดีครับผมชื่อสมชาย" * 500
    chunks = chunk_blocks(_doc(thai).blocks)
    _check(thai, chunks, MAX_CHUNK_TOKENS, MAX_CHUNK_CHARS)
    assert all(c.unrepresented_chars > 0 for c in chunks)
    assert chunks[0].extra_metadata() == {"unrepresented_chars": chunks[0].unrepresented_chars}
    emoji = chunk_blocks(_doc("plain words and 😀😀 here").blocks)[0]
    assert emoji.unrepresented_chars == 2 and emoji.extra_metadata()["unrepresented_chars"] == 2


def test_whitespace_and_control_runs_do_not_make_a_chunk_unbounded() -> None:
    for text in ("a" + " " * 1_000_000 + "b", "a" + "\x01" * 100_000 + "b", "x\n" * 300_000):
        chunks = chunk_blocks(_doc(text).blocks)
        _check(text, chunks, MAX_CHUNK_TOKENS, MAX_CHUNK_CHARS)
    small = chunk_blocks(_doc("word " * 5000).blocks, max_chars=300)
    assert small and all(len(c.text) <= 300 for c in small)


def test_tokenization_work_is_linear_in_the_text() -> None:
    # Count the characters handed to the tokenizer: the former chunker re-tokenized every chunk
    # (and shrinking ones repeatedly); this one tokenizes each character about once.
    class Counting:
        def __init__(self) -> None:
            self.inner = load_tokenizer()
            self.model = self.inner.model
            self.chars = 0

        def encode(self, text: str, **kwargs: Any) -> Any:
            self.chars += len(text)
            return self.inner.encode(text, **kwargs)

        def token_to_id(self, token: str) -> int | None:
            return self.inner.token_to_id(token)

    def ratio(text: str) -> float:
        tok = Counting()
        chunk_blocks(_doc(text).blocks, tokenizer=tok)  # type: ignore[arg-type]
        return tok.chars / len(text)

    for unit, n in (("a ", 50_000), ("Sentence of prose, with words. ", 3_000), ("x", 25_000)):
        small, large = ratio(unit * n), ratio(unit * 4 * n)
        # prose: once; a run over 100 characters: twice (found as one [UNK], then its pieces)
        assert small <= 2.1 and large <= 1.1 * small, (unit, small, large)


def test_chunking_memory_does_not_grow_with_the_block() -> None:
    # Tokenizing 2 MB of "a a a ..." in one call cost +660 MB; slices keep it flat.
    growth = peak_rss_growth_mb(
        setup="""
            from rag_ingest.core.text.chunking import chunk_blocks
            from rag_ingest.core.documents.model import Block
            text = "a " * (1024 * 1024)
            chunk_blocks([Block("warm up the tokenizer", 0)])
        """,
        work="chunks = chunk_blocks([Block(text, 0)])",
    )
    print(f"2 MB of 'a a a': peak RSS +{growth:.0f} MB")
    assert growth < 60


def test_fifty_thousand_short_sections_are_packed_to_the_budget() -> None:
    md = "".join(f"## Section {i}\n\nShort body {i}.\n\n" for i in range(50_000))
    doc = extract("many.md", md.encode())
    chunks = chunk_blocks(doc.blocks)
    stats = chunk_stats(chunks)
    assert len(doc.blocks) == 50_000
    assert stats["chunk_count"] < 2_500 and stats["token_fill_ratio"] > 0.9, stats
    first = chunks[0]
    assert first.heading == "Section 0" and first.heading_path == ("Section 0",)
    assert first.text.startswith("## Section 0\n\nShort body 0.\n\n## Section 1")
    for chunk in chunks[:50]:
        assert chunk.token_count == _count(chunk.text) <= MAX_CHUNK_TOKENS
        assert doc.text[chunk.char_start : chunk.char_end] == chunk.text


def test_packing_keeps_pages_and_headings_and_no_heading_stands_alone() -> None:
    md = "# Guide\n\n## Install\n\n### Linux\n\nUse apt.\n\n### macOS\n\nUse brew.\n\n## End"
    doc = extract("guide.md", md.encode())
    chunks = chunk_blocks(doc.blocks)
    assert len(chunks) == 1 and chunks[0].text == doc.text
    assert chunks[0].heading == "Linux"
    assert chunks[0].extra_metadata() == {"heading_path": ["Guide", "Install", "Linux"]}
    pages = [Block("Page one.", 0, page=1), Block("Page two.", 11, page=2)]
    assert [c.page for c in chunk_blocks(pages)] == [1, 2]
    long_body = "Body sentence of the section. " * 400
    doc = extract("l.md", f"# Lonely heading\n\n## Big\n\n{long_body}".encode())
    chunks = chunk_blocks(doc.blocks)
    assert all(c.text.strip() not in ("# Lonely heading", "## Big") for c in chunks)
    assert chunks[0].text.startswith("# Lonely heading\n\n## Big\n\nBody")


def test_chunk_stats_report_count_and_fill() -> None:
    chunks = chunk_blocks(_doc("word " * 600).blocks)
    stats = chunk_stats(chunks, MAX_CHUNK_TOKENS)
    assert stats["chunk_count"] == len(chunks) == 3
    mean = sum(c.token_count for c in chunks) / len(chunks)
    assert stats["token_fill_ratio"] == round(mean / MAX_CHUNK_TOKENS, 3)
    assert chunk_stats([]) == {
        "chunk_count": 0,
        "token_fill_ratio": 0.0,
        "max_chunk_tokens": 0,
        "unrepresented_chars": 0,
    }


_ALPHABET = [
    "word ",
    "Hello, world. ",
    "\n\n",
    "\n",
    "a" * 150,
    "สวัสดีครับ",
    "한국어문장" * 30,
    "中文字符测试",
    "😀",
    "\x01",
    "\x0b",
    " " * 50,
    "İ",
    "\ufffd",
    "QUJD" * 40,
    "https://ex.com/a?b=c&d=",
]


@pytest.mark.parametrize("seed", range(12))
def test_random_mixtures_keep_every_guarantee(seed: int) -> None:
    rng = random.Random(seed)
    texts = ["".join(rng.choice(_ALPHABET) for _ in range(rng.randint(1, 150))) for _ in range(4)]
    doc = _doc(*texts)
    max_tokens = rng.choice([16, 24, 64, 254])
    overlap = rng.randint(0, max_tokens // 2 - 1)
    max_chars = rng.choice([256, 1000, 4096])
    chunks = chunk_blocks(doc.blocks, max_tokens=max_tokens, overlap=overlap, max_chars=max_chars)
    _check(doc.text, chunks, max_tokens, max_chars)
    covered = bytearray(len(doc.text))
    for chunk in chunks:
        covered[chunk.char_start : chunk.char_end] = b"\1" * (chunk.char_end - chunk.char_start)
    missed = {doc.text[k] for k in range(len(doc.text)) if not covered[k]}
    assert all(ch.isspace() or _count(ch) == 0 for ch in missed), missed
