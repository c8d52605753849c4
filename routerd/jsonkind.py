"""Naming the JSON type of a value in error messages ("got a string")."""

from __future__ import annotations

from typing import Any


def json_kind(value: Any) -> str:
    """``"a string"``, ``"a number"``, ``"an array"``... for a value parsed from JSON."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
