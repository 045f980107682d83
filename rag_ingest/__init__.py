"""rag-ingest: keep a Qdrant collection in sync with documents in S3, orchestrated by Dagster.

Pure logic lives in :mod:`rag_ingest.core` (no Dagster import, in wings named for what they
hold), the Dagster resources in :mod:`rag_ingest.resources`, the definitions by domain in
:mod:`rag_ingest.defs` (loaded from :mod:`rag_ingest.definitions`), the ``rag-ingest`` command in
:mod:`rag_ingest.cli`. ``docs/architecture.md`` has the map and the import rule.
"""
