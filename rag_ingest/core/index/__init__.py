"""Index: the versions behind the alias, their fingerprints, search, audits and health."""
