"""A test that leaves a disposed instance's state storage behind does not break the next one.

dagster 1.13.27 keeps the current definitions-state storage in a context variable that
``DagsterInstance.__exit__`` does not reset; the conftest's autouse fixture does. These two
tests run in this order (pytest keeps a module's order): the first leaves exactly that state,
the second loads definitions, which fails with "undefined DagsterInstance weakref" without
the fixture.
"""

import gc
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.defs_state.base import _current_storage

from rag_ingest.core.config import Settings
from rag_ingest.definitions import build_definitions


def test_leaves_a_disposed_instance_s_storage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    instance = dg.DagsterInstance.get()
    storage = instance.defs_state_storage
    assert storage is not None
    _current_storage.set(storage)  # what `with instance:` does, never undone by its exit
    instance.dispose()
    del instance
    gc.collect()
    assert storage._instance_weakref() is None  # type: ignore[attr-defined]


def test_the_next_test_loads_definitions() -> None:
    defs = build_definitions(Settings(bucket="b", prefixes=("a-b/", "a_b/")))
    dg.Definitions.validate_loadable(defs)
