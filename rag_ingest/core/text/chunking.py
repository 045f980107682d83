"""Token-aware chunking with overlap, counted by the embedding model's own tokenizer.

Guarantees, for any text:

- a chunk never holds more word pieces than the model reads (its window less the special
  tokens and the document prompt: ``ModelSpec.chunk_limit``), counted by the model's tokenizer
  on the chunk's own text, so nothing is silently truncated at embedding time;
- ``char_end - char_start <= max_chars`` and ``len(text) <= max_chars``: no run of whitespace or
  of unsplittable characters makes a chunk unbounded;
- ``text`` is ``Extracted.text[char_start:char_end]``, except that a word the tokenizer cannot
  read whole (over 100 characters: base64, minified code, unspaced scripts) gets a space at
  each place it was split (see :mod:`rag_ingest.core.text.tokens`), so its content is embedded
  instead of becoming one ``[UNK]``; whatever stays ``[UNK]`` is counted in
  ``unrepresented_chars``;
- work and memory are linear in the text: it is tokenized in slices, once (a chunk is
  re-tokenized only when it had to be cut inside a word).

Packing: consecutive blocks that each fit in one chunk (short sections) are merged while the
budget allows, on the same page and only when contiguous; the merged chunk keeps the first
block's heading and heading path. A longer block is split into overlapping windows whose cuts
prefer a paragraph break, then a line or sentence end, then a space; a word is cut only when
no boundary exists in the second half of a window. PDF pages are never merged, so every chunk
has exactly one page.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rag_ingest.core.documents.model import Block
from rag_ingest.core.text.encoder import MAX_SEQ_LENGTH, SPECIAL_TOKENS
from rag_ingest.core.text.model import ModelSpec, load_tokenizer
from rag_ingest.core.text.tokens import SLICE_CHARS, TokenStream

if TYPE_CHECKING:
    from tokenizers import Encoding, Tokenizer

# Bump when chunk boundaries or contents change for the same input: the pipeline fingerprint
# includes it, so a new chunker re-indexes. 2: packing, bounded chunk text, split long words.
CHUNKER_VERSION = 2
MAX_CHUNK_TOKENS = MAX_SEQ_LENGTH - SPECIAL_TOKENS
# One character can be three word pieces (a Hangul syllable decomposes into three jamo), so a
# window must hold a few; smaller chunks would not embed anything useful anyway.
MIN_CHUNK_TOKENS = 16
# Word pieces repeated between neighbouring windows, unless the budget is too small for it.
DEFAULT_OVERLAP = 32
# 254 word pieces of prose are ~1,100 characters and of code ~2,500; this binds only on runs of
# whitespace or other text that yields few tokens per character.
MAX_CHUNK_CHARS = 4096


@dataclass(frozen=True)
class Chunk:
    index: int
    text: str
    char_start: int
    char_end: int
    token_count: int
    page: int | None = None
    heading: str | None = None
    heading_path: tuple[str, ...] = ()
    unrepresented_chars: int = 0

    def extra_metadata(self) -> dict[str, object]:
        """Payload fields beyond the standard ones, present only when they say something."""
        extra: dict[str, object] = {}
        if self.heading_path:
            extra["heading_path"] = list(self.heading_path)
        if self.unrepresented_chars:
            extra["unrepresented_chars"] = self.unrepresented_chars
        return extra


@dataclass(frozen=True)
class _Piece:
    """A chunk before numbering, in block coordinates."""

    start: int
    end: int
    text: str
    tokens: int
    unknown: int


class _Chunker:
    def __init__(self, tok: Tokenizer, max_tokens: int, overlap: int, max_chars: int) -> None:
        self.tok = tok
        self.unk = tok.token_to_id(getattr(tok.model, "unk_token", "[UNK]"))
        self.max_word = int(getattr(tok.model, "max_input_chars_per_word", 100))
        self.max_tokens = max_tokens
        self.overlap = overlap
        self.max_chars = max_chars

    def stream(self, text: str, encoding: Encoding | None = None) -> TokenStream:
        return TokenStream(text, self.tok, self.max_word, encoding)

    def count(self, text: str) -> tuple[int, int]:
        """Word pieces of ``text`` and the characters under its ``[UNK]`` pieces."""
        enc = self.tok.encode(text, add_special_tokens=False)
        unknown = sum(
            e - s for t, (s, e) in zip(enc.ids, enc.offsets, strict=True) if t == self.unk
        )
        return len(enc.ids), unknown

    def _view_len(self, ts: TokenStream, i: int, e: int) -> int:
        start, end = ts.start(i), ts.end(e - 1)
        return end - start + ts.inserts_between(start, end)

    def _best_cut(self, ts: TokenStream, i: int, e: int, lowest: int) -> int:
        """Token index to end the window ``[i, e)`` at: the latest good boundary in its last
        quarter, else the latest sentence or line end in its second half, else the best seen."""
        size = e - i
        quarter = e - max(1, size // 4)
        half = max(i + max(1, size // 2), lowest)
        best, best_score = e, -1
        for j in range(e, half - 1, -1):
            score = ts.cut_score(j)
            if score > best_score:
                best, best_score = j, score
            if j <= quarter and best_score >= 3:
                break
        return best

    def windows(self, ts: TokenStream) -> Iterator[_Piece]:
        """Overlapping windows over one block's tokens."""
        i, prev_end = 0, 0
        while True:
            ts.fill(i)
            if i >= ts.loaded:
                return
            first = ts.start(i)
            ts.fill(i + self.max_tokens, first + self.max_chars)
            e = min(i + self.max_tokens, ts.loaded)
            e = max(i + 1, ts.first_end_after(first + self.max_chars, i, e))
            while e > i + 1 and self._view_len(ts, i, e) > self.max_chars:
                e -= 1
            if e <= prev_end and i < prev_end:
                i = prev_end  # the overlap alone fills the window: start after it instead
                continue
            last = e >= ts.loaded and ts.done
            if not last:
                e = self._best_cut(ts, i, e, max(prev_end + 1, i + 1))
            pieces, e = self._emit(ts, i, e, exact_end=last or ts.is_word_start(e))
            yield from pieces
            if e >= ts.loaded and ts.done:
                return
            prev_end = e
            # Overlap at most half the window's pieces and an eighth of its characters: wide
            # pieces (a 100-character [UNK]) would otherwise repeat most of a window.
            nxt = max(e - min(self.overlap, (e - i) // 2), i + 1)
            floor = ts.end(e - 1) - self.max_chars // 8
            # Forward to a word start, so no chunk opens mid-word.
            while nxt < e and (not ts.is_word_start(nxt) or ts.start(nxt) < floor):
                nxt += 1
            i = nxt
            ts.drop_before(i)

    def _emit(self, ts: TokenStream, i: int, e: int, exact_end: bool) -> tuple[list[_Piece], int]:
        """The chunk(s) of window ``[i, e)`` and the token index where they really end."""
        start, end = ts.start(i), ts.end(e - 1)
        text = ts.view(start, end)
        if exact_end and ts.is_word_start(i):
            # Cut at word boundaries: the text tokenizes to exactly these pieces.
            return [_Piece(start, end, text, e - i, ts.unknown_chars(i, e))], e
        # A cut inside a word re-tokenizes differently: count the text itself, shrink if over.
        tokens, unknown = self.count(text)
        while tokens > self.max_tokens and e > i + 1:
            e = max(i + 1, e - (tokens - self.max_tokens))
            end = ts.end(e - 1)
            text = ts.view(start, end)
            tokens, unknown = self.count(text)
        if tokens <= self.max_tokens:
            return [_Piece(start, end, text, tokens, unknown)], e
        return list(self._split_chars(ts, start, end)), e

    def _split_chars(self, ts: TokenStream, start: int, end: int) -> Iterator[_Piece]:
        # One word piece that alone re-tokenizes past a small max_tokens: take the longest
        # prefixes that fit (a character is at most three pieces), so no character is lost.
        while start < end:
            lo, hi = start + 1, end
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if self.count(ts.view(start, mid))[0] <= self.max_tokens:
                    lo = mid
                else:
                    hi = mid - 1
            tokens, unknown = self.count(ts.view(start, lo))
            yield _Piece(start, lo, ts.view(start, lo), tokens, unknown)
            start = lo


class _Pack:
    """Consecutive whole blocks waiting to become one chunk."""

    def __init__(self, out: list[tuple[Block, _Piece]]) -> None:
        self.out = out
        self.items: list[tuple[Block, _Piece]] = []
        self.tokens = 0
        self.chars = 0

    def add(self, block: Block, piece: _Piece, max_tokens: int, max_chars: int) -> bool:
        """Append ``block`` if it continues the pack within budget; else flush and refuse."""
        if self.items:
            last = self.items[-1][0]
            if (
                last.page == block.page
                and last.start + len(last.text) + 2 == block.start
                and self.tokens + piece.tokens <= max_tokens
                and self.chars + 2 + len(piece.text) <= max_chars
            ):
                self._append(block, piece)
                return True
        self.flush()
        return False

    def start(self, block: Block, piece: _Piece) -> None:
        self._append(block, piece)

    def _append(self, block: Block, piece: _Piece) -> None:
        self.chars += len(piece.text) + (2 if self.items else 0)
        self.tokens += piece.tokens
        self.items.append((block, piece))

    def flush(self) -> None:
        items = self.items
        if len(items) == 1:
            self.out.append(items[0])
        elif items:
            head, last = items[0][0], items[-1][0]
            text = "\n\n".join(p.text for _, p in items)
            unknown = sum(p.unknown for _, p in items)
            end = last.start + len(last.text) - head.start
            self.out.append((head, _Piece(0, end, text, self.tokens, unknown)))
        self.items = []
        self.tokens = self.chars = 0


def chunk_shape(spec: ModelSpec, max_tokens: int | None, overlap: int | None) -> tuple[int, int]:
    """The chunk budget and overlap for ``spec``'s model: given ones are checked against its
    limit, unset (None) ones follow it (the limit, and :data:`DEFAULT_OVERLAP` or less).

    Raises:
        ValueError: one line naming ``RAG_CHUNK_MAX_TOKENS``.
    """
    limit = spec.chunk_limit
    budget = limit if max_tokens is None else max_tokens
    if not MIN_CHUNK_TOKENS <= budget <= limit:
        raise ValueError(
            f"RAG_CHUNK_MAX_TOKENS must be in {MIN_CHUNK_TOKENS}..{limit} (the limit of "
            f"RAG_EMBED_MODEL {spec.name}), got {budget}"
        )
    return budget, min(DEFAULT_OVERLAP, budget // 2 - 1) if overlap is None else overlap


def chunk_blocks(
    blocks: Sequence[Block],
    max_tokens: int = MAX_CHUNK_TOKENS,
    overlap: int = 32,
    tokenizer: Tokenizer | None = None,
    max_chars: int = MAX_CHUNK_CHARS,
    encodings: Sequence[Encoding | None] | None = None,
    limit: int = MAX_CHUNK_TOKENS,
) -> list[Chunk]:
    """Split a document's blocks into chunks (see the module docstring for the guarantees).

    Args:
        blocks: the extracted document's blocks.
        max_tokens: word pieces per chunk, 16 up to ``limit``.
        overlap: word pieces repeated between neighbouring chunks of one block (at most half
            a window's pieces and an eighth of ``max_chars``).
        tokenizer: defaults to the embedding model's tokenizer.
        max_chars: characters per chunk, at least 256.
        encodings: per block, its text's encoding from :func:`encode_blocks` (or None): the
            same chunks, without tokenizing those blocks again.
        limit: the tokenizer's model's ``ModelSpec.chunk_limit`` (the default model's when
            the tokenizer is its).
    """
    if not MIN_CHUNK_TOKENS <= max_tokens <= limit:
        raise ValueError(f"max_tokens must be in {MIN_CHUNK_TOKENS}..{limit}, got {max_tokens}")
    if not 0 <= overlap < max(1, max_tokens // 2):
        raise ValueError(f"overlap must be in 0..{max_tokens // 2 - 1}, got {overlap}")
    if max_chars < 256:
        raise ValueError(f"max_chars must be at least 256, got {max_chars}")
    chunker = _Chunker(tokenizer or load_tokenizer(), max_tokens, overlap, max_chars)
    out: list[tuple[Block, _Piece]] = []
    pack = _Pack(out)
    for n, block in enumerate(blocks):
        ts = chunker.stream(block.text, encodings[n] if encodings else None)
        windows = chunker.windows(ts)
        first = next(windows, None)
        if first is None or (ts.done and first.end >= ts.end(ts.loaded - 1)):
            # The whole block is one chunk (or has no tokens): a candidate for packing.
            text = ts.view(0, len(block.text))
            if len(text) <= max_chars:
                tokens, unknown = (first.tokens, first.unknown) if first else (0, 0)
                piece = _Piece(0, len(block.text), text, tokens, unknown)
                if not pack.add(block, piece, max_tokens, max_chars) and first is not None:
                    pack.start(block, piece)
                continue
        pack.flush()
        if first is not None:
            out.append((block, first))
        out.extend((block, piece) for piece in windows)
    pack.flush()
    return [
        Chunk(
            index=n,
            text=piece.text,
            char_start=block.start + piece.start,
            char_end=block.start + piece.end,
            token_count=piece.tokens,
            page=block.page,
            heading=block.heading,
            heading_path=block.heading_path,
            unrepresented_chars=piece.unknown,
        )
        for n, (block, piece) in enumerate(out)
    ]


def encode_blocks(
    documents: Sequence[Sequence[Block]],
    tokenizer: Tokenizer | None = None,
    max_chars: int = 1 << 18,
) -> list[list[Encoding | None]]:
    """Encodings of the documents' short blocks (one slice each), in one batch call, which the
    tokenizer spreads over its threads; longer blocks, and any beyond ``max_chars`` of text in
    all (it bounds the memory held), get None and are tokenized slice by slice as usual."""
    tok = tokenizer or load_tokenizer()
    out: list[list[Encoding | None]] = [[None] * len(blocks) for blocks in documents]
    chosen: list[str] = []
    places: list[tuple[int, int]] = []
    spent = 0
    for d, blocks in enumerate(documents):
        for b, block in enumerate(blocks):
            size = len(block.text)
            if size <= SLICE_CHARS and spent + size <= max_chars:
                chosen.append(block.text)
                places.append((d, b))
                spent += size
    if chosen:
        encoded = tok.encode_batch(chosen, add_special_tokens=False)
        for (d, b), encoding in zip(places, encoded, strict=True):
            out[d][b] = encoding
    return out


def chunk_stats(chunks: Sequence[Chunk], max_tokens: int = MAX_CHUNK_TOKENS) -> dict[str, float]:
    """Per-document chunk metadata: count, token fill ratio (mean tokens / ``max_tokens``),
    largest chunk and unrepresented characters."""
    count = len(chunks)
    tokens = sum(c.token_count for c in chunks)
    return {
        "chunk_count": count,
        "token_fill_ratio": round(tokens / (count * max_tokens), 3) if count else 0.0,
        "max_chunk_tokens": max((c.token_count for c in chunks), default=0),
        "unrepresented_chars": sum(c.unrepresented_chars for c in chunks),
    }
