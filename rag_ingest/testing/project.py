"""A throwaway copy of the project, for tests that run `make dev`, `dg dev` or the README's
snippets as a user would: in the project folder with nothing exported, so everything lands in
the copy's own ``documents/``, ``data/`` and ``dagster_home/`` and never in the checkout's."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from rag_ingest.testing import REPO

# What `make dev` and `dg dev` need from a checkout (the README is read for its snippets).
PROJECT_FILES = ("rag_ingest", "sample_corpus", "workspace.yaml", "pyproject.toml", "README.md")


def copy_project(project: Path) -> Path:
    """Copy the checkout's package, sample corpus, workspace, project file, README and
    ``dagster_home/dagster.yaml`` (not its history) into ``project``; returns it."""
    project.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, project / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, project / name)
    (project / "dagster_home").mkdir()
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", project / "dagster_home" / "dagster.yaml")
    return project


def clean_env(project: Path) -> dict[str, str]:
    """A new terminal's environment in ``project``: nothing of the project's exported (no
    ``RAG_*``, ``AWS_*``, ``DAGSTER_*``), and the copy, not the checkout, importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "AWS_", "DAGSTER_"))}
    env["PYTHONPATH"] = str(project)
    return env
