"""Maintenance: re-ingest chosen documents."""
