"""Dagster resources: the S3 source, the registry, intermediate storage, Qdrant, embedders."""

from rag_ingest.resources.embedders import Embedder, EmbedStats, LocalEmbedder
from rag_ingest.resources.registry import DocumentRegistry
from rag_ingest.resources.s3 import S3Source
from rag_ingest.resources.storage import IntermediateStore
from rag_ingest.resources.vectors import VectorStoreResource

__all__ = [
    "DocumentRegistry",
    "EmbedStats",
    "Embedder",
    "IntermediateStore",
    "LocalEmbedder",
    "S3Source",
    "VectorStoreResource",
]
