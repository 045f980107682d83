"""Planning: which documents need work, in which shards, and how that work is split into runs."""
