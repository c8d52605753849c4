"""A cheap shape check of what an upstream answered with 200, at the adapter boundary.

An upstream (or a proxy in front of it) can answer 200 with a body that is not the answer it should
be: ``{}``, ``"choices": "nope"``, ``"usage": {"prompt_tokens": "x"}``. Relayed, such a body crashes
whoever reads it (the server's accounting, the client's SDK) after the router counted a success.
:func:`malformed` looks only at the fields routerd and OpenAI clients rely on -- a handful of type
checks per choice, so the hot path pays well under a microsecond -- and names the first problem; the
router then treats the answer as an upstream error (retry, failover, breaker accounting).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["malformed"]

_TOKEN_FIELDS = ("prompt_tokens", "completion_tokens", "total_tokens")


def malformed(endpoint: str, body: Any) -> str | None:
    """What is wrong with an upstream answer for ``endpoint`` ("chat", "completions", "embeddings"); None if fine."""
    if not isinstance(body, Mapping):
        return f"the answer is a {type(body).__name__}, not a JSON object"
    problem = _usage(body.get("usage"))
    if problem is not None:
        return problem
    if endpoint in ("speech", "transcriptions"):
        return None  # audio bytes, or text in the format the client asked for: the adapter checked them
    if endpoint in ("moderations", "rerank"):
        results = body.get("results")
        if not isinstance(results, list):
            return "'results' is missing or not a list"
        return None if all(isinstance(item, Mapping) for item in results) else "'results' holds a non-object"
    if endpoint in ("embeddings", "images", "image_edits"):
        data = body.get("data")
        if not isinstance(data, list):
            return "'data' is missing or not a list"
        return None if all(isinstance(item, Mapping) for item in data) else "'data' holds a non-object"
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices:
        return "'choices' is missing, empty or not a list"
    part = "message" if endpoint == "chat" else None
    for choice in choices:
        if not isinstance(choice, Mapping):
            return "'choices' holds a non-object"
        if part is not None and not isinstance(choice.get(part), Mapping):
            return "a choice has no 'message' object"
        if part is None and not isinstance(choice.get("text", ""), str | None):
            return "a choice's 'text' is not a string"
    return None


def _usage(usage: Any) -> str | None:
    if usage is None:
        return None
    if not isinstance(usage, Mapping):
        return "'usage' is not an object"
    for name in _TOKEN_FIELDS:
        value = usage.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            return f"'usage.{name}' is not an integer"
    return None
