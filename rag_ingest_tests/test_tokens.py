"""The chunker's fast paths against its reference paths.

Slices without over-long words are loaded with array operations (``_add_columns``); the
general loop (``_add_tokens``) is the reference: both must give the same columns for any text,
including gaps that cross slice boundaries, blank lines, sentence ends and a first token at
offset 0. Blocks batch-encoded ahead (``encode_blocks``) must chunk exactly as blocks
tokenized one at a time.
"""

import copy
import random

import pytest

from rag_ingest.core.documents.model import Block
from rag_ingest.core.pipeline.steps import chunk_document, chunk_documents
from rag_ingest.core.records import DocumentInfo
from rag_ingest.core.text import tokens
from rag_ingest.core.text.chunking import chunk_blocks, encode_blocks
from rag_ingest.core.text.encoder import load_tokenizer
from rag_ingest.core.text.tokens import TokenStream


class ScalarStream(TokenStream):
    """Every slice through the general loop."""

    def _add_encoding(self, start: int, end: int) -> None:
        self._add_tokens(start, self._encode(start, end))


PIECES = [
    "word", "Words", "naïve", "café", "x", "12", "3.14", "e-mail", "don't", "東京", "語",
    "한국어", "🙂", "ﬁ", "Ⅻ", "a\u0301", "\u00ad", "\u200b", "\x07", "\t", "  ", "\n", "\n\n",
    "\n\n\n", " \n ", ".", "!", "?", ";", ":", "。", ",", "(", ")", "--", "...", "“q”",
]  # fmt: skip


def _text(rng: random.Random, n: int) -> str:
    out = []
    for _ in range(n):
        piece = rng.choice(PIECES)
        out.append(piece)
        if rng.random() < 0.7:
            out.append(" ")
    return "".join(out)


def _columns(stream: TokenStream) -> tuple[object, ...]:
    stream.fill(10**9)
    return (
        list(stream.starts),
        list(stream.ends),
        bytes(stream.word),
        bytes(stream.unk),
        bytes(stream.score),
        list(stream.inserts),
    )


@pytest.fixture(scope="module")
def tokenizer():  # type: ignore[no-untyped-def]
    return load_tokenizer()


@pytest.mark.parametrize("seed", range(40))
def test_columns_equal_the_general_loop(tokenizer, seed: int, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(seed)
    # Small slices put many boundaries (and cross-slice gaps) in each text.
    monkeypatch.setattr(tokens, "SLICE_CHARS", rng.choice([64, 200, 1024, 16 * 1024]))
    text = _text(rng, rng.randint(1, 3000))
    if seed % 5 == 0:
        text = "\n\n" + text  # leading gap: the first token does not start at 0
    if seed % 7 == 0:
        text += " " + "q" * 150 + " end"  # one over-long word: that slice takes the loop
    assert _columns(TokenStream(text, tokenizer)) == _columns(ScalarStream(text, tokenizer))


def test_columns_path_is_taken_and_scores_cuts(tokenizer) -> None:  # type: ignore[no-untyped-def]
    text = "One two.\n\nThree four\nfive tokenization"
    stream = TokenStream(text, tokenizer)
    calls: list[int] = []
    original = stream._add_columns

    def spy(*args: object) -> None:
        calls.append(1)
        original(*args)  # type: ignore[arg-type]

    stream._add_columns = spy  # type: ignore[method-assign]
    stream.fill(100)
    assert calls, "ordinary text must take the column path"
    pieces = [text[s:e] for s, e in zip(stream.starts, stream.ends, strict=True)]
    score = dict(zip(pieces, stream.score, strict=True))
    assert score["One"] == 0  # nothing before the first token
    assert score["Three"] == 4  # after a blank line
    assert score["five"] == 3  # after a line end
    assert score["four"] == 2  # after a space
    assert score["."] == 1  # punctuation is its own word, adjacent to the previous one
    assert pieces[-2:] == ["token", "ization"]
    assert stream.score[len(pieces) - 1] == 0  # inside a word


def _documents(rng: random.Random) -> list[list[Block]]:
    docs = []
    for _ in range(12):
        blocks, at = [], 0
        for _ in range(rng.randint(0, 6)):
            size = rng.choice([1, 40, 400, 3000])
            text = _text(rng, size // 4 + 1)
            blocks.append(Block(text, at, page=None, heading=None))
            at += len(text) + 2
        docs.append(blocks)
    big = _text(rng, 3000)
    while len(big) <= tokens.SLICE_CHARS:
        big += " " + _text(rng, 1000)
    docs[2].append(Block(big, 10**6))  # over one slice: never batch-encoded
    return docs


def test_batched_encodings_give_the_same_chunks(tokenizer) -> None:  # type: ignore[no-untyped-def]
    docs = _documents(random.Random(3))
    for budget in (1 << 20, 5000):  # a small budget leaves later blocks to the lazy path
        encodings = encode_blocks(docs, tokenizer, max_chars=budget)
        assert [len(e) for e in encodings] == [len(b) for b in docs]
        assert any(e is None for row in encodings for e in row)
        assert any(e is not None for row in encodings for e in row)
        for blocks, encoded in zip(docs, encodings, strict=True):
            alone = chunk_blocks(blocks, tokenizer=tokenizer)
            assert chunk_blocks(blocks, tokenizer=tokenizer, encodings=encoded) == alone


def test_chunk_documents_equals_one_at_a_time() -> None:
    docs = _documents(random.Random(5))
    infos = [
        DocumentInfo(f"d{n}", "b", f"k{n}", "e", 1, "2026-01-01T00:00:00+00:00")
        for n in range(len(docs))
    ]
    infos[1].status, infos[1].reason = "failed", "corrupt"
    together = chunk_documents(list(zip(infos, docs, strict=True)), 254, 32)
    for info, blocks, chunks in zip(infos, docs, together, strict=True):
        assert chunks == chunk_document(copy.copy(info), blocks, 254, 32)
    assert together[1] == []
    assert sum(len(c) for c in together) > len(docs)
