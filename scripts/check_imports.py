"""The import rules of the house, checked over the source tree (run by ``make lint``).

- No import cycle between modules, counting imports inside functions too (a lazy import is
  still a dependency a reader has to follow).
- Imports point one way: ``defs`` → ``resources`` → ``core``; ``definitions``, ``testing``
  (local stand-ins and the harness) and the CLI sit on top, in that order (`make dev` starts the
  tests' local S3). ``modal_functions`` (the deployable app) may import core, never the reverse.
- Inside ``core`` the wings form layers (``CORE_WINGS``, lowest first): a wing imports only
  from wings below it or from itself; no wing cycle.
- ``core`` imports no Dagster; ``bench`` may import the project, never its tests; nothing in
  the package imports ``bench`` or the tests.

Prints each broken rule and exits 1, or prints a one-line summary and exits 0.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("rag_ingest", "modal_functions", "bench", "rag_ingest_tests", "scripts")

# Lowest first. A module directly under core/ is its own wing, named after the module.
CORE_WINGS: tuple[str, ...] = (
    "modal_names",
    "md_table",
    "keys",
    "records",
    "documents",
    "text",
    "storage",
    "registry",
    "planning",
    "vectorstore",
    "index",
    "pipeline",
    "cost",
    "refusals",
    "config",
)
# Top-level layers of the package, lowest first.
# ``testing`` (local stand-ins: moto, PostgreSQL, ports, the harness) sits under ``cli`` because
# `make dev` starts the same local S3 the tests use; nothing the pipeline runs imports it.
LAYERS: tuple[str, ...] = (
    "core",
    "resources",
    "defs",
    "definitions",
    "query",
    "testing",
    "cli",
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def iter_modules() -> Iterator[tuple[str, Path]]:
    for package in PACKAGES:
        base = ROOT / package
        for path in sorted(base.rglob("*.py")):
            yield module_name(path), path


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Project modules that ``name`` imports (``from pkg import mod`` resolves to the module)."""
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    # A package's own __init__ is imported by every module inside it: not an edge worth drawing.
    return {t for t in found if not name.startswith(t + ".")}


def external_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "rag_ingest" or len(parts) < 2:
        return None
    return parts[1] if parts[1] in LAYERS else None


def wing(module: str) -> str | None:
    parts = module.split(".")
    if parts[:2] != ["rag_ingest", "core"] or len(parts) < 3:
        return None
    return parts[2]


def problems() -> tuple[list[str], int, int]:
    modules = dict(iter_modules())
    known = set(modules)
    graph = {name: imports_of(name, path, known) for name, path in modules.items()}
    found: list[str] = []
    for cycle in find_cycles(graph):
        found.append("import cycle: " + " ↔ ".join(cycle))
    for name, targets in sorted(graph.items()):
        top = name.split(".")[0]
        for target in sorted(targets):
            target_top = target.split(".")[0]
            if target_top == "rag_ingest_tests" and top != "rag_ingest_tests":
                found.append(f"{name} imports the test package ({target})")
            if target_top == "bench" and top not in ("bench", "rag_ingest_tests"):
                found.append(f"{name} imports the benchmark ({target})")
            if top == "rag_ingest" and target_top == "modal_functions":
                found.append(f"{name} imports the deployable Modal app ({target})")
            if top == "modal_functions" and target_top == "rag_ingest" and wing(target) is None:
                found.append(f"the Modal app imports outside core ({name} → {target})")
            src, dst = layer(name), layer(target)
            if src and dst and LAYERS.index(dst) > LAYERS.index(src):
                found.append(f"upward import: {name} ({src}) → {target} ({dst})")
            src_wing, dst_wing = wing(name), wing(target)
            if src_wing and dst_wing and src_wing != dst_wing:
                unknown = [w for w in (src_wing, dst_wing) if w not in CORE_WINGS]
                if unknown:
                    found.append(f"core wing not placed in CORE_WINGS: {', '.join(unknown)}")
                elif CORE_WINGS.index(dst_wing) > CORE_WINGS.index(src_wing):
                    found.append(
                        f"upward import in core: {name} ({src_wing}) → {target} ({dst_wing})"
                    )
        in_core = wing(name) is not None or name == "rag_ingest.core"
        if in_core and "dagster" in external_imports(modules[name]):
            found.append(f"{name} imports Dagster (core is Dagster-free)")
    edges = sum(len(t) for t in graph.values())
    return sorted(set(found)), len(modules), edges


def main() -> int:
    found, modules, edges = problems()
    for line in found:
        print(line)
    if found:
        print(f"{len(found)} import rule(s) broken", file=sys.stderr)
        return 1
    print(f"imports: {modules} modules, {edges} arrows, no cycle, no upward import")
    return 0


if __name__ == "__main__":
    sys.exit(main())
