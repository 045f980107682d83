"""BM25 sparse vectors, computed exactly as fastembed's ``Qdrant/bm25`` computes them.

Why not fastembed itself: its ``Qdrant/bm25`` "model" is a folder of stopword files on the
Hugging Face hub (unreachable from the places this runs), and fastembed pins
``huggingface-hub<2`` and pulls onnxruntime, which conflict with or weigh on this project's pins.
The algorithm is a few lines over the two libraries fastembed itself uses for it (``mmh3`` for the
token ids, ``py-rust-stemmers`` for the Snowball stemmer), so the tokens cannot drift from it;
``rag_ingest_tests/test_sparse.py`` proves equality with fastembed's ``Bm25`` on real paragraphs.

Document weights are the BM25 term-frequency part, ``tf*(k+1) / (tf + k*(1-b+b*|d|/avg_len))``;
query weights are 1.0 per distinct token. The IDF part is left to Qdrant's ``Modifier.IDF`` on the
sparse vector, so it always reflects the collection actually searched.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from importlib.metadata import version

import mmh3

# A compiled module without type stubs.
from py_rust_stemmers import SnowballStemmer  # pyright: ignore[reportAttributeAccessIssue]

# The name fastembed, langchain-qdrant's FastEmbedSparse and LlamaIndex know this encoder by.
MODEL_NAME = "Qdrant/bm25"
K = 1.2
B = 0.75
AVG_LEN = 256.0
TOKEN_MAX_LENGTH = 40

# ``english.txt`` of the hub repo ``Qdrant/bm25``: NLTK's English stopword list as it stood
# before NLTK added the contractions (he'd, we're, ...), i.e. the PostgreSQL Snowball list NLTK
# ships. A changed list changes tokens, hence the version in :func:`encoder_id`.
ENGLISH_STOPWORDS: frozenset[str] = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "ain",
        "all",
        "am",
        "an",
        "and",
        "any",
        "are",
        "aren",
        "aren't",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "couldn",
        "couldn't",
        "d",
        "did",
        "didn",
        "didn't",
        "do",
        "does",
        "doesn",
        "doesn't",
        "doing",
        "don",
        "don't",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "hadn",
        "hadn't",
        "has",
        "hasn",
        "hasn't",
        "have",
        "haven",
        "haven't",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "isn",
        "isn't",
        "it",
        "it's",
        "its",
        "itself",
        "just",
        "ll",
        "m",
        "ma",
        "me",
        "mightn",
        "mightn't",
        "more",
        "most",
        "mustn",
        "mustn't",
        "my",
        "myself",
        "needn",
        "needn't",
        "no",
        "nor",
        "not",
        "now",
        "o",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "re",
        "s",
        "same",
        "shan",
        "shan't",
        "she",
        "she's",
        "should",
        "should've",
        "shouldn",
        "shouldn't",
        "so",
        "some",
        "such",
        "t",
        "than",
        "that",
        "that'll",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "ve",
        "very",
        "was",
        "wasn",
        "wasn't",
        "we",
        "were",
        "weren",
        "weren't",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "won",
        "won't",
        "wouldn",
        "wouldn't",
        "y",
        "you",
        "you'd",
        "you'll",
        "you're",
        "you've",
        "your",
        "yours",
        "yourself",
        "yourselves",
    ]
)
STOPWORDS_REVISION = "nltk-english-179"

_NON_WORD_OR_SPACE = re.compile(r"[^\w\s]", flags=re.UNICODE)
_NON_WORD = re.compile(r"[^\w]")
_SPACES = re.compile(r"\s+")


def _is_punctuation(token: str) -> bool:
    # fastembed drops a token that is a single Unicode punctuation character (only "_" survives
    # its tokenizer). It builds the set of every such character at load; asking each token's
    # category is the same test without that scan of all of Unicode in every run.
    return len(token) == 1 and unicodedata.category(token).startswith("P")


def _token_id(stem: str) -> int:
    return abs(mmh3.hash(stem))


@dataclass(frozen=True)
class SparseVector:
    """Sorted, distinct token ids with their weights (Qdrant's ``SparseVector`` shape)."""

    indices: list[int]
    values: list[float]


def encoder_id() -> str:
    """What changes the tokens or weights: the fingerprint records it."""
    return (
        f"{MODEL_NAME};k={K};b={B};avg_len={AVG_LEN};max={TOKEN_MAX_LENGTH};"
        f"stop={STOPWORDS_REVISION};stemmer=py-rust-stemmers=={version('py_rust_stemmers')};"
        f"mmh3=={version('mmh3')}"
    )


class Bm25Encoder:
    """fastembed's ``Bm25(model_name="Qdrant/bm25")`` with its defaults, offline."""

    def __init__(self) -> None:
        self._stemmer = SnowballStemmer("english")
        # Stems and hashes repeat across chunks; memoizing them is most of the encoder's speed.
        self._stems: dict[str, str] = {}

    def _stem(self, token: str) -> str:
        """The token's stem, or "" when fastembed drops the token."""
        stem = self._stems.get(token)
        if stem is not None:
            return stem
        stem = ""
        if (
            not _is_punctuation(token)
            and token not in ENGLISH_STOPWORDS
            and len(token) <= TOKEN_MAX_LENGTH
        ):
            stem = self._stemmer.stem_word(token)
        if len(self._stems) < 1_000_000:
            self._stems[token] = stem
        return stem

    def _stems_of(self, text: str) -> list[str]:
        # The same three passes as fastembed (remove_non_alphanumeric, then SimpleTokenizer):
        # lowercasing between them can create characters the second pass removes.
        text = _NON_WORD_OR_SPACE.sub(" ", text)
        text = _NON_WORD.sub(" ", text.lower())
        tokens = _SPACES.sub(" ", text).strip().split()
        stems = (self._stem(token) for token in tokens)
        return [stem for stem in stems if stem]

    def embed_document(self, text: str) -> SparseVector:
        stems = self._stems_of(text)
        norm = K * (1 - B + B * len(stems) / AVG_LEN)
        # Keyed by id as fastembed does, so two stems that hash alike resolve the same way.
        weights = {
            _token_id(stem): count * (K + 1) / (count + norm)
            for stem, count in Counter(stems).items()
        }
        indices = sorted(weights)
        return SparseVector(indices=indices, values=[weights[i] for i in indices])

    def embed_documents(self, texts: list[str]) -> list[SparseVector]:
        return [self.embed_document(text) for text in texts]

    def embed_query(self, text: str) -> SparseVector:
        indices = sorted({_token_id(stem) for stem in self._stems_of(text)})
        return SparseVector(indices=indices, values=[1.0] * len(indices))
