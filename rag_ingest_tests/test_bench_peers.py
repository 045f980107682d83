"""The peers benchmark at a tiny size: the three systems run for real (moto S3, Dagster runs,
the real MiniLM, Qdrant Edge and qdrant-client local mode) and what each embeds is what its
approach implies. Wall times are measured by the benchmark, never asserted here."""

from pathlib import Path

from bench.peer_docs import build_corpus, count_chunks, edit_paragraph
from bench.peers import run_peers

# A small budget, so a few-kilobyte description is a "long" document of many chunks.
MAX_TOKENS, OVERLAP = 64, 16
SHORT_CHARS = (300, 1200)


def test_an_edit_re_embeds_one_paragraph_not_the_document(s3_endpoint: str, tmp_path: Path) -> None:
    result = run_peers(
        tmp_path,
        s3_endpoint,
        short_docs=3,
        long_min_chunks=15,
        max_tokens=MAX_TOKENS,
        overlap=OVERLAP,
        short_chars=SHORT_CHARS,
        say=lambda _: None,
    )
    (figures,) = result.repeats
    project = {phase: figures[phase]["project"] for phase in figures}
    llama = {phase: figures[phase]["llamaindex"] for phase in figures}
    seed = {phase: figures[phase]["seed"] for phase in figures}
    assert result.documents == 4 and result.long_chunks >= 15

    # Cold: every chunk once, by this project and by the seed (the same chunker).
    assert project["cold"].texts_embedded == seed["cold"].texts_embedded == result.chunks
    assert project["cold"].points == result.chunks and llama["cold"].texts_embedded > 0
    assert llama["cold"].points == llama["cold"].texts_embedded
    assert seed["cold"].embed_calls == result.documents  # one call per document

    # Unchanged: no texts for this project or LlamaIndex; the seed embeds everything again.
    assert project["unchanged"].texts_embedded == 0 and project["unchanged"].runs == 0
    assert llama["unchanged"].texts_embedded == 0
    assert seed["unchanged"].texts_embedded == result.chunks

    # One short document changed: this project embeds only its new chunk texts, never more
    # than LlamaIndex's re-embedding of the whole document.
    assert len(result.changed) == 1
    assert 1 <= project["changed"].texts_embedded <= llama["changed"].texts_embedded
    # Its run covers the changed document's shard: the rest of its chunks come from the cache.
    (key,) = result.changed
    corpus = build_corpus(3, 15, MAX_TOKENS, OVERLAP, SHORT_CHARS)
    now = count_chunks(key, edit_paragraph(corpus.documents[key]), MAX_TOKENS, OVERLAP)
    assert project["changed"].cache_hits == now - project["changed"].texts_embedded

    # The edit of the long document: fewer texts than LlamaIndex, which re-embeds all of it.
    assert 1 <= project["edit"].texts_embedded < llama["edit"].texts_embedded
    assert llama["edit"].texts_embedded >= result.long_chunks // 2
    assert seed["edit"].texts_embedded == seed["edit"].points
    # Both stores of the project's chunks hold one point per current chunk, none stale.
    assert project["edit"].points == seed["edit"].points


def test_the_edit_adds_one_sentence_to_one_paragraph() -> None:
    corpus = build_corpus(3, 15, MAX_TOKENS, OVERLAP, SHORT_CHARS)
    before = corpus.documents[corpus.long_key].decode().split("\n\n")
    after = edit_paragraph(corpus.documents[corpus.long_key]).decode().split("\n\n")
    assert len(before) == len(after)
    changed = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
    assert len(changed) == 1 and after[changed[0]].startswith(before[changed[0]].rstrip())
