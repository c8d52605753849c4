"""Shape checks for the parts of a client's request that the request translators walk.

The server checks the top-level fields of a request (routerd/server/validation.py); the Anthropic and
Gemini translators then walk nested client JSON (tool calls, content parts, tools). Whatever shape
they find there is the client's doing, so a wrong one must be a 400 naming the field, never an
AttributeError that surfaces as a 500 (issue 21, L7).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from routerd.errors import BadRequestError
from routerd.jsonkind import json_kind

__all__ = ["client_object", "client_objects", "translating_client_input"]


def client_object(value: Any, where: str) -> Mapping[str, Any]:
    """``value`` if it is a JSON object; ``{}`` for null/absent; else a 400 naming ``where``."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise BadRequestError(
            f"'{where}' must be an object, got {json_kind(value)}", param=where, code="invalid_type"
        )
    return value


def client_objects(value: Any, where: str) -> list[Mapping[str, Any]]:
    """``value`` if it is an array of JSON objects; ``[]`` for null/absent; else a 400 naming the item."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadRequestError(
            f"'{where}' must be an array, got {json_kind(value)}", param=where, code="invalid_type"
        )
    return [client_object(item, f"{where}[{index}]") for index, item in enumerate(value)]


@contextlib.contextmanager
def translating_client_input(provider: str) -> Iterator[None]:
    """A backstop around a request translator: a shape it did not check is still the client's 400.

    The explicit checks above name the field; this catches what they miss (a string where an object
    was expected deeper down) so that no client body can turn into a 500.
    """
    try:
        yield
    except (AttributeError, TypeError, KeyError, IndexError) as exc:
        raise BadRequestError(
            f"the request has a field of the wrong type for {provider} ({type(exc).__name__}: {exc})",
            code="invalid_type",
        ) from None
