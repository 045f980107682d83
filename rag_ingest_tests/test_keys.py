import pytest

from rag_ingest.core.keys import (
    MAX_DOCUMENT_ID_LENGTH,
    document_id,
    is_document_id,
    point_id,
    source_uri,
)

AWKWARD = [
    "docs/guide/intro.md",
    "reports/Q3 2026, final (v2).pdf",
    "notes/café/naïve résumé.txt",
    "../../etc/passwd",
    "a/../b/./c..d...e.txt",
    "/leading/slash.md",
    "...",
    "日本語/ドキュメント.html",
    "x" * 1024,
    "with\ttab and\nnewline.txt",
    "[bracketed]~tilde~,comma.md",
]


@pytest.mark.parametrize("key", AWKWARD)
def test_document_ids_are_safe_and_bounded(key: str) -> None:
    pk = document_id("bucket", key)
    assert is_document_id(pk), pk
    assert len(pk) <= MAX_DOCUMENT_ID_LENGTH
    for bad in ("/", " ", ",", "..", "[", "]", "\\", "\n", "\t"):
        assert bad not in pk
    assert not pk.startswith(".")


def test_document_id_is_deterministic_and_keeps_a_readable_tail() -> None:
    assert document_id("b", "docs/guide/intro.md") == document_id("b", "docs/guide/intro.md")
    assert document_id("b", "docs/guide/intro.md").startswith("docs-guide-intro.md~")


def test_keys_differing_only_after_64_characters_get_different_partitions() -> None:
    base = "p/" + "a" * 70
    keys = {document_id("b", base + suffix) for suffix in ("1.md", "2.md", "3.md")}
    assert len(keys) == 3
    # and the difference is inside the first 64 characters (MySQL's unique index width)
    assert len({k[:64] for k in keys}) == 3


def test_bucket_is_part_of_the_identity() -> None:
    assert document_id("one", "k.md") != document_id("two", "k.md")
    assert source_uri("b", "a b/c.md") == "s3://b/a b/c.md"


def test_point_ids_are_deterministic_uuids_per_version_and_chunk() -> None:
    a = point_id("doc~0123456789abcdef", "etag1", 0)
    assert a == point_id("doc~0123456789abcdef", "etag1", 0)
    assert a != point_id("doc~0123456789abcdef", "etag1", 1)
    assert a != point_id("doc~0123456789abcdef", "etag2", 0)
    assert len(a) == 36 and a.count("-") == 4
