"""Definitions by domain, loaded with ``dg.load_from_defs_folder`` (see ``definitions.py``)."""
