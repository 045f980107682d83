"""Helpers every domain's checks and materializations use to shape their metadata."""

from collections.abc import Sequence
from typing import Any

import dagster as dg

# Items of a list shown in a check's metadata (lists can be 100k long).
EXAMPLES = 20
ERROR, WARN = dg.AssetCheckSeverity.ERROR, dg.AssetCheckSeverity.WARN


def examples_json(items: Sequence[str]) -> dg.MetadataValue:
    """The first :data:`EXAMPLES` items, as JSON metadata."""
    return dg.MetadataValue.json(list(items[:EXAMPLES]))


def result(
    name: str, passed: bool, severity: dg.AssetCheckSeverity, **metadata: Any
) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(check_name=name, passed=passed, severity=severity, metadata=metadata)
