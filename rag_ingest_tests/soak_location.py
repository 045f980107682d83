"""The code location the daemon soak test loads: the project's definitions from the environment,
with an embedder that fails while a flag file exists (an injected GPU outage)."""

import os
from typing import Any

import dagster as dg

from rag_ingest.core.config import Settings
from rag_ingest.defs.resources import build_resources
from rag_ingest.resources import LocalEmbedder
from rag_ingest.testing.harness import project_definitions

FAULT_FLAG_ENV = "RAG_SOAK_FAULT_FLAG"


class FlagEmbedder(LocalEmbedder):
    """The real local model, failing while the flag file exists."""

    flag_path: str

    def embed(self, texts: list[str]) -> Any:
        if os.path.exists(self.flag_path):
            raise RuntimeError("injected embedder outage")
        return super().embed(texts)


@dg.definitions
def defs() -> dg.Definitions:
    settings = Settings.from_env()
    resources = build_resources(settings)
    resources["embedder"] = FlagEmbedder(flag_path=os.environ[FAULT_FLAG_ENV])
    return project_definitions(settings, resources)
