"""What the collection must hold: generated documents and the oracle the sync tests compare with."""

import random
from typing import Any

from rag_ingest.core.documents.extract import extract
from rag_ingest.core.documents.model import ExtractionError
from rag_ingest.core.keys import document_id
from rag_ingest.core.storage.s3 import list_objects
from rag_ingest.core.text.chunking import chunk_blocks
from rag_ingest.core.text.model import load_tokenizer

WORDS = [
    "river",
    "mountain",
    "glacier",
    "honey",
    "bread",
    "chess",
    "ocean",
    "tide",
    "forest",
    "desert",
    "volcano",
    "comet",
    "library",
    "engine",
    "garden",
    "lantern",
    "harbor",
    "meadow",
    "orbit",
    "puzzle",
]


def text(rng: random.Random, paragraphs: int) -> str:
    body = "\n\n".join(
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 120))) + "."
        for _ in range(paragraphs)
    )
    return f"# Doc {rng.randint(0, 10**6)}\n\n{body}\n"


def expected_versions(client: Any, bucket: str, settings: Any = None) -> set[tuple[str, str, int]]:
    """What the collection must hold: every chunk of every valid object now in S3 (chunked
    with ``settings``' chunk sizes and model's tokenizer when given, else the defaults)."""
    sizes = (
        {
            "max_tokens": settings.chunk_max_tokens,
            "overlap": settings.chunk_overlap_tokens,
            "tokenizer": load_tokenizer(settings.model_spec.path),
            "limit": settings.model_spec.chunk_limit,
        }
        if settings is not None
        else {}
    )
    triples = set()
    for obj in list_objects(client, bucket, ""):
        data = client.get_object(Bucket=bucket, Key=obj.key)["Body"].read()
        try:
            blocks = extract(obj.key, data).blocks
        except ExtractionError:
            continue
        doc_id = document_id(bucket, obj.key)
        triples |= {(doc_id, obj.etag, c.index) for c in chunk_blocks(blocks, **sizes)}
    return triples
