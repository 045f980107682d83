"""Pipeline: the per-document steps of a run and the run files that carry them between assets."""
