"""Refused settings on one line each, naming the variable, in this project's words."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from pydantic import ValidationError

T = TypeVar("T")

__all__ = ["SettingsError", "refusing"]


class SettingsError(ValueError):
    """A refused setting, on one line, naming its environment variable."""


# pydantic's own refusals, in the words this module always used.
_REFUSALS = {
    "int_parsing": "must be an integer, got {input!r}",
    "int_from_float": "must be an integer, got {input!r}",
    "float_parsing": "must be a number, got {input!r}",
    "bool_parsing": "must be true or false, got {input!r}",
    "greater_than_equal": "must be at least {ge}, got {input}",
    "greater_than": "must be above {gt}, got {input}",
    "less_than_equal": "must be at most {le}, got {input}",
    "literal_error": "must be {expected}, got {input!r}",
}


def refusing(build: Callable[[], T], env_name: Callable[[str], str]) -> T:
    """``build()``, with a ValidationError turned into one SettingsError line; ``env_name``
    names the variable of a field."""
    try:
        return build()
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            ctx = error.get("ctx", {})
            if error["type"] == "value_error":  # ours: the message names its variable
                lines.append(str(ctx["error"]))
                continue
            template = _REFUSALS.get(error["type"], "{msg}, got {input!r}")
            name = env_name(str(error["loc"][0])) if error["loc"] else "settings"
            lines.append(f"{name} {template.format(msg=error['msg'], input=error['input'], **ctx)}")
        raise SettingsError("; ".join(lines)) from None
