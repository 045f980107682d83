"""Ingestion: shard partitions, the four assets, their checks, sensors and the ingest job."""
