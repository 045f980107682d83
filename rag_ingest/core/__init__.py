"""Pure logic: keys, extraction, chunking, encoding, registry, storage, Qdrant writes."""
