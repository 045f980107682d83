"""Benchmarks of rag-ingest: ``python -m bench.run`` measures the pipeline against its peers."""
