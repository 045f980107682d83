"""Pure logic, no Dagster: one wing per subsystem (docs/architecture.md, "Layout")."""
