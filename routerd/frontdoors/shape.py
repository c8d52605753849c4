"""Small checks of a client's JSON shape, shared by the front doors.

Each check raises the front door's own 400 class (``error``) naming the offending field, so a client
learns exactly which part of its request is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from routerd.errors import BadRequestError
from routerd.frontdoors.limits import MAX_SCHEMA_DEPTH, MAX_SHORT_STRING

ErrorClass = type[BadRequestError]


def need_mapping(value: Any, where: str, error: ErrorClass) -> Mapping[str, Any]:
    """``value`` if it is a JSON object."""
    if type(value) is dict:  # what a parsed body holds: skips the slower abstract-class check
        return value
    if not isinstance(value, Mapping):
        raise error(f"{where} must be an object", param=where)
    return value


def need_list(
    value: Any, where: str, limit: int, error: ErrorClass, *, allow_empty: bool = True
) -> list[Any]:
    """``value`` if it is a JSON array of at most ``limit`` entries."""
    if not isinstance(value, list):
        raise error(f"{where} must be an array", param=where)
    if not value and not allow_empty:
        raise error(f"{where} must not be empty", param=where)
    if len(value) > limit:
        raise error(f"{where} has {len(value)} entries; at most {limit} are accepted", param=where)
    return value


def need_str(value: Any, where: str, error: ErrorClass, *, allow_empty: bool = True) -> str:
    """``value`` if it is a string."""
    if not isinstance(value, str):
        raise error(f"{where} must be a string", param=where)
    if not value and not allow_empty:
        raise error(f"{where} must not be empty", param=where)
    return value


def need_short(value: Any, where: str, error: ErrorClass) -> str:
    """``value`` if it is a non-empty string of at most ``MAX_SHORT_STRING`` characters (names, ids)."""
    text = need_str(value, where, error, allow_empty=False)
    if len(text) > MAX_SHORT_STRING:
        raise error(f"{where} is longer than {MAX_SHORT_STRING} characters", param=where)
    return text


def need_bool(value: Any, where: str, error: ErrorClass) -> bool:
    """``value`` if it is a boolean (None counts as false: the field was left out)."""
    if value is None:
        return False
    if not isinstance(value, bool):
        raise error(f"{where} must be a boolean", param=where)
    return value


def need_number(value: Any, where: str, error: ErrorClass, low: float, high: float) -> float:
    """``value`` if it is a number in [low, high] (booleans are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise error(f"{where} must be a number", param=where)
    if not low <= value <= high:
        raise error(f"{where} must be between {low:g} and {high:g}", param=where)
    return value


def need_int(value: Any, where: str, error: ErrorClass, *, low: int = 1) -> int:
    """``value`` if it is an integer of at least ``low``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise error(f"{where} must be an integer", param=where)
    if value < low:
        raise error(f"{where} must be at least {low}", param=where)
    return value


def check_depth(value: Any, where: str, error: ErrorClass, limit: int = MAX_SCHEMA_DEPTH) -> None:
    """Refuse JSON nested deeper than ``limit`` (iteratively: the check itself must not recurse)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            raise error(f"{where} is nested deeper than {limit} levels", param=where)
        if isinstance(node, Mapping):
            stack.extend((child, depth + 1) for child in node.values())
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node)


def reject_unknown(body: Mapping[str, Any], known: frozenset[str], where: str, error: ErrorClass) -> None:
    """Refuse fields outside ``known``, naming the first (sorted, so the answer is stable)."""
    if known.issuperset(body):
        return
    unknown = sorted(key for key in body if key not in known)
    if unknown:
        name = f"{where}.{unknown[0]}" if where else unknown[0]
        raise error(f"unknown field {name!r}: extra inputs are not permitted", param=name)
