"""rag-ingest: keep a Qdrant collection in sync with documents in S3, orchestrated by Dagster.

Pure logic lives in :mod:`rag_ingest.core` (no Dagster import); the Dagster wiring lives in the
top-level modules and is loaded from :mod:`rag_ingest.definitions`.
"""
