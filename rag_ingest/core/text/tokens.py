"""A block's word pieces, tokenized slice by slice, with over-long words split so they count.

The model's WordPiece tokenizer turns any word longer than ``max_input_chars_per_word`` (100)
into one ``[UNK]``: a 200,000-character run of base64, minified code or unspaced script would be
one token and its content unsearchable. Such words are split here into pieces of at most that
length, and the chunk text gets a space at each split (:attr:`TokenStream.inserts`), so the
model, which reads the chunk text, sees the same pieces this stream counted. A piece that is
still one ``[UNK]`` (e.g. Hangul, which Unicode decomposition lengthens) is halved while that
makes some of it readable; what stays ``[UNK]`` is reported as unrepresented.

Slices end where the tokenizer splits anyway (whitespace, punctuation, CJK), so tokenizing
slice by slice gives the same pieces as tokenizing the whole text; where a slice finds no such
place (one word of thousands of characters) it ends mid-word and a space is inserted there too.
Memory is one slice's encoding plus the tokens a caller still holds (see :meth:`drop_before`).
"""

from __future__ import annotations

import itertools
import unicodedata
from array import array
from bisect import bisect_left, bisect_right
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from tokenizers import Encoding, Tokenizer

SLICE_CHARS = 16 * 1024
# A slice ends after a separator found within this many characters of its nominal end.
_SCAN_CHARS = 512
_MIN_PIECE = 16
# ids, offsets and word ids of one encoded piece of text
_Encoded = tuple[list[int], list[tuple[int, int]], list[int | None]]
_SENTENCE_END = frozenset(".!?;:\u3002")
_ASCII_SEPARATORS = frozenset(
    " \t\n\r" + "".join(chr(c) for c in range(33, 127) if not chr(c).isalnum())
)
_SENTENCE_END_CODES = np.array(sorted(ord(c) for c in _SENTENCE_END), dtype=np.uint32)


def _is_cjk(cp: int) -> bool:
    # The ranges BERT's normalizer pads with spaces (each ideograph is its own word).
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2CEAF
        or 0xF900 <= cp <= 0xFAFF
        or 0x2F800 <= cp <= 0x2FA1F
    )


def _is_separator(char: str) -> bool:
    """True where BERT's pre-tokenizer always splits: whitespace, punctuation, CJK."""
    if char in _ASCII_SEPARATORS:
        return True
    if ord(char) < 128:
        return False
    category = unicodedata.category(char)
    return category == "Zs" or category[0] == "P" or _is_cjk(ord(char))


class TokenStream:
    """Word pieces of ``text`` as absolute indexes; loaded on demand by :meth:`fill`.

    Per token: ``start``/``end`` offsets in ``text``, whether it begins a word (a cut before it
    keeps words whole, so the cut text tokenizes to exactly these pieces), whether it is
    ``[UNK]``, and the quality of a cut just before it (0 mid-word, 1 between adjacent words,
    2 at a space, 3 at a line or sentence end, 4 at a paragraph break).
    """

    def __init__(
        self,
        text: str,
        tokenizer: Tokenizer,
        max_word_chars: int = 100,
        encoding: Encoding | None = None,
    ) -> None:
        """``encoding``: the tokenizer's encoding of the whole ``text`` (without special
        tokens), when the caller batch-encoded it; used only if the text is one slice."""
        self.text = text
        self._whole = encoding if len(text) <= SLICE_CHARS else None
        self._tok = tokenizer
        self._unk = tokenizer.token_to_id(getattr(tokenizer.model, "unk_token", "[UNK]"))
        self._max_word = max_word_chars
        self._pos = 0
        self.base = 0
        self.starts = array("q")
        self.ends = array("q")
        self.word = bytearray()
        self.unk = bytearray()
        self.score = bytearray()
        self.inserts = array("q")
        self._prev_end = -1

    # -- access -----------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self._pos >= len(self.text)

    @property
    def loaded(self) -> int:
        """One past the highest token index loaded so far."""
        return self.base + len(self.starts)

    def start(self, k: int) -> int:
        return self.starts[k - self.base]

    def end(self, k: int) -> int:
        return self.ends[k - self.base]

    def is_word_start(self, k: int) -> bool:
        return bool(self.word[k - self.base])

    def cut_score(self, k: int) -> int:
        return self.score[k - self.base]

    def first_end_after(self, limit: int, lo: int, hi: int) -> int:
        """Smallest k in [lo, hi) whose end is beyond ``limit`` (``hi`` if none)."""
        return self.base + bisect_right(self.ends, limit, lo - self.base, hi - self.base)

    def unknown_chars(self, lo: int, hi: int) -> int:
        b = self.base
        return sum(self.ends[k] - self.starts[k] for k in range(lo - b, hi - b) if self.unk[k])

    def inserts_between(self, start: int, end: int) -> int:
        return bisect_left(self.inserts, end) - bisect_right(self.inserts, start)

    def view(self, start: int, end: int) -> str:
        """``text[start:end]`` with a space at every split of an over-long word."""
        lo, hi = bisect_right(self.inserts, start), bisect_left(self.inserts, end)
        if lo >= hi:
            return self.text[start:end]
        cuts = [start, *self.inserts[lo:hi], end]
        return " ".join(self.text[a:b] for a, b in itertools.pairwise(cuts))

    # -- loading ----------------------------------------------------------------------------

    def fill(self, index: int, char_limit: int | None = None) -> None:
        """Load slices until token ``index`` is loaded, or one starting beyond ``char_limit``."""
        while not self.done and self.loaded <= index:
            if char_limit is not None and self.starts and self.starts[-1] > char_limit:
                return
            self._load_slice()

    def drop_before(self, index: int) -> None:
        """Forget tokens before ``index`` (in bulk, so the cost stays linear)."""
        drop = index - self.base
        if drop >= 4096 and drop > len(self.starts) // 2:
            for column in (self.starts, self.ends, self.word, self.unk, self.score):
                del column[:drop]
            self.base = index

    def _slice_end(self) -> tuple[int, bool]:
        text, start = self.text, self._pos
        end = start + SLICE_CHARS
        if end >= len(text):
            return len(text), False
        half = start + SLICE_CHARS // 2
        space = max(text.rfind(" ", half, end), text.rfind("\n", half, end))
        if space >= 0:
            return space + 1, False
        for p in range(end - 1, max(half, end - _SCAN_CHARS) - 1, -1):
            if _is_separator(text[p]):
                return p + 1, False
        return end, True  # inside a word of >= _SCAN_CHARS characters: split it here

    def _load_slice(self) -> None:
        start = self._pos
        end, split = self._slice_end()
        self._add_encoding(start, end)
        if split:
            self.inserts.append(end)
        self._pos = end

    def _encode(self, start: int, end: int) -> _Encoded:
        if self._whole is not None and start == 0 and end == len(self.text):
            enc, self._whole = self._whole, None
        else:
            enc = self._tok.encode(self.text[start:end], add_special_tokens=False)
        return enc.ids, enc.offsets, enc.word_ids

    def _add_encoding(self, start: int, end: int) -> None:
        ids, offsets, word_ids = self._encode(start, end)
        if not ids:
            return
        spans = np.asarray(offsets, dtype=np.int64).reshape(len(ids), 2)
        if (spans[:, 1] - spans[:, 0] > self._max_word).any() or None in word_ids:
            self._add_tokens(start, (ids, offsets, word_ids))
        else:
            self._add_columns(start, end, ids, spans + start, word_ids)

    def _add_tokens(self, start: int, encoded: _Encoded) -> None:
        """One token at a time: the general case, with over-long words split."""
        ids, offsets, word_ids = encoded
        for k, token in enumerate(ids):
            s, e = offsets[k]
            if e - s > self._max_word:
                # An [UNK] for a word over the limit, or a short word padded by characters
                # the normalizer deletes (controls): either way too wide for a bounded chunk.
                self._split_word(start + s, start + e)
                continue
            first = k == 0 or word_ids[k] != word_ids[k - 1]
            self._add(start + s, start + e, first, token == self._unk)

    def _add_columns(
        self, start: int, end: int, ids: list[int], spans: np.ndarray, word_ids: list[int | None]
    ) -> None:
        """The same columns as :meth:`_add_tokens` for a slice without over-long words,
        computed on whole arrays: this loop is most of the chunker's time on ordinary text."""
        n = len(ids)
        starts, ends = spans[:, 0], spans[:, 1]
        words = np.asarray(word_ids, dtype=np.int64)
        first = np.ones(n, dtype=bool)
        first[1:] = words[1:] != words[:-1]
        prev = np.empty(n, dtype=np.int64)
        prev[0] = self._prev_end
        prev[1:] = ends[:-1]
        # Character classes of the slice and the character before it; the first token's gap
        # may reach into the previous slice, so it is scored by _score below.
        lo = max(0, start - 1)
        codes = np.frombuffer(
            self.text[lo:end].encode("utf-32-le", "surrogatepass"), dtype=np.uint32
        )
        newline = codes == 10
        lines = np.zeros(len(codes) + 1, dtype=np.int64)
        np.cumsum(newline, out=lines[1:])
        breaks = np.zeros(len(codes) + 1, dtype=np.int64)
        np.cumsum(newline[:-1] & newline[1:], out=breaks[1 : len(codes)])
        breaks[len(codes)] = breaks[len(codes) - 1]
        gap_lo = np.clip(prev - lo, 0, len(codes))
        # "\n\n" found in text[prev:start] begins at p with prev <= p <= start - 2.
        blank = breaks[np.maximum(starts - 1 - lo, gap_lo)] - breaks[gap_lo] > 0
        line = lines[starts - lo] - lines[gap_lo] > 0
        sentence = np.isin(codes[np.clip(prev - 1 - lo, 0, len(codes) - 1)], _SENTENCE_END_CODES)
        score = np.full(n, 2, dtype=np.uint8)
        score[line | sentence] = 3
        score[blank] = 4
        score[starts <= prev] = 1
        score[~first | (prev <= 0)] = 0
        score[0] = self._score(int(starts[0]), bool(first[0]))
        self.starts.frombytes(starts.tobytes())
        self.ends.frombytes(ends.tobytes())
        self.word.extend((first | (prev < 0)).tobytes())
        self.unk.extend((np.asarray(ids, dtype=np.int64) == self._unk).tobytes())
        self.score.extend(score.tobytes())
        self._prev_end = int(ends[-1])

    def _split_word(self, start: int, end: int) -> None:
        for piece in range(start, end, self._max_word):
            parts, _ = self._readable_parts(piece, min(piece + self._max_word, end))
            for part_start, encoding in parts:
                if part_start > start:
                    self.inserts.append(part_start)
                self._add_tokens(part_start, encoding)

    def _readable_parts(self, start: int, end: int) -> tuple[list[tuple[int, _Encoded]], bool]:
        """Halves of ``[start, end)`` that the model reads, if halving helps at any depth
        (100 Hangul syllables are 300 jamo once decomposed; 25 fit); else the whole.
        Returns ``(start, encoding)`` of each part and whether any part is readable."""
        encoded = self._encode(start, end)
        if not all(t == self._unk for t in encoded[0]):
            return [(start, encoded)], True
        if end - start < 2 * _MIN_PIECE:
            return [(start, encoded)], False
        mid = (start + end) // 2
        left, left_read = self._readable_parts(start, mid)
        right, right_read = self._readable_parts(mid, end)
        if left_read or right_read:
            return left + right, True
        return [(start, encoded)], False

    def _score(self, start: int, word_start: bool) -> int:
        """Quality of a cut just before a token starting at ``start`` (see the class)."""
        prev = self._prev_end
        if not word_start or prev <= 0:
            return 0
        if start <= prev:
            return 1
        if self.text.find("\n\n", prev, start) >= 0:
            return 4
        if self.text.find("\n", prev, start) >= 0 or self.text[prev - 1] in _SENTENCE_END:
            return 3
        return 2

    def _add(self, start: int, end: int, word_start: bool, unknown: bool) -> None:
        self.starts.append(start)
        self.ends.append(end)
        self.word.append(word_start or self._prev_end < 0)
        self.unk.append(unknown)
        self.score.append(self._score(start, word_start))
        self._prev_end = end
