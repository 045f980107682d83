"""Token-aware chunking with overlap, counted by the embedding model's own tokenizer.

A chunk never holds more word pieces than the model reads (``MAX_SEQ_LENGTH`` minus the two
special tokens), so nothing is silently truncated at embedding time. Chunks stay inside one block
(one PDF page, one Markdown/HTML section) so each keeps its page number and heading. Cuts prefer a
paragraph break, then a line break or sentence end, then any space; a word is cut only when no
boundary exists in the second half of the window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rag_ingest.core.encoder import MAX_SEQ_LENGTH, SPECIAL_TOKENS, load_tokenizer
from rag_ingest.core.extract import Block

if TYPE_CHECKING:
    from tokenizers import Tokenizer

MAX_CHUNK_TOKENS = MAX_SEQ_LENGTH - SPECIAL_TOKENS
# Bump whenever chunk boundaries or texts change for the same input: it is part of the
# pipeline fingerprint, so a new chunker re-indexes into a collection of its own.
CHUNKER_VERSION = 1
_SENTENCE_END = (".", "!", "?", ";", ":", "\u3002")


@dataclass(frozen=True)
class Chunk:
    index: int
    text: str
    char_start: int
    char_end: int
    token_count: int
    page: int | None = None
    heading: str | None = None

    def extra_metadata(self) -> dict[str, object]:
        """Payload fields beyond the standard ones (none yet)."""
        return {}


def _break_score(text: str, prev_end: int, next_start: int) -> int:
    """How good a cut is between a token ending at ``prev_end`` and one starting at
    ``next_start``."""
    gap = text[prev_end:next_start]
    if "\n\n" in gap:
        return 4
    if "\n" in gap:
        return 3
    if gap and text[prev_end - 1 : prev_end] in _SENTENCE_END:
        return 3
    if gap:
        return 2
    return 0


def _best_cut(
    text: str, offsets: list[tuple[int, int]], start: int, end: int, max_tokens: int
) -> int:
    """Token index to end a full window at: the latest good boundary in its last quarter, else
    the latest sentence or line end in its second half, else the best boundary seen."""
    quarter = end - max(1, max_tokens // 4)
    half = start + max(1, max_tokens // 2)
    best, best_score = end, -1
    for j in range(end, max(half, start + 1) - 1, -1):
        score = _break_score(text, offsets[j - 1][1], offsets[j][0])
        if score > best_score:
            best, best_score = j, score
        if j <= quarter and best_score >= 3:
            break
    return best


def _split_block(
    block: Block, tokenizer: Tokenizer, max_tokens: int, overlap: int
) -> list[tuple[int, int]]:
    """Token windows of one block as block-relative (char_start, char_end)."""
    offsets = tokenizer.encode(block.text, add_special_tokens=False).offsets
    n = len(offsets)
    windows: list[tuple[int, int]] = []
    i = 0
    while i < n:
        end = min(i + max_tokens, n)
        if end < n:
            end = _best_cut(block.text, offsets, i, end, max_tokens)
        windows.append((offsets[i][0], offsets[end - 1][1]))
        if end >= n:
            break
        # Step back `overlap` tokens, then forward to a word start so no chunk opens mid-word.
        nxt = max(end - overlap, i + 1)
        while nxt < end and offsets[nxt][0] == offsets[nxt - 1][1]:
            nxt += 1
        i = nxt
    return windows


def chunk_blocks(
    blocks: Sequence[Block],
    max_tokens: int = MAX_CHUNK_TOKENS,
    overlap: int = 32,
    tokenizer: Tokenizer | None = None,
) -> list[Chunk]:
    """Split a document's blocks into chunks.

    Args:
        blocks: the extracted document's blocks.
        max_tokens: word pieces per chunk, at most the model's window less special tokens.
        overlap: word pieces repeated between neighbouring chunks of one block.
        tokenizer: defaults to the embedding model's tokenizer.
    """
    if not 0 < max_tokens <= MAX_CHUNK_TOKENS:
        raise ValueError(f"max_tokens must be in 1..{MAX_CHUNK_TOKENS}, got {max_tokens}")
    if not 0 <= overlap < max_tokens // 2:
        raise ValueError(f"overlap must be in 0..{max_tokens // 2 - 1}, got {overlap}")
    tok = tokenizer or load_tokenizer()
    chunks: list[Chunk] = []
    for block in blocks:
        for start, end in _split_block(block, tok, max_tokens, overlap):
            text = block.text[start:end]
            # The count is of the chunk's own text: a cut inside a word can re-tokenize differently.
            recount = len(tok.encode(text, add_special_tokens=False).ids)
            while recount > max_tokens:
                end -= max(1, (end - start) // 50)
                text = block.text[start:end]
                recount = len(tok.encode(text, add_special_tokens=False).ids)
            chunks.append(
                Chunk(
                    index=len(chunks),
                    text=text,
                    char_start=block.start + start,
                    char_end=block.start + end,
                    token_count=recount,
                    page=block.page,
                    heading=block.heading,
                )
            )
    return chunks
