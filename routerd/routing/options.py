"""Router-only fields of a client's request body.

Clients (and LiteLLM-style SDK calls) may put routing controls in the body: ``num_retries``,
``fallbacks``, ``disable_fallbacks``, ``context_window_fallbacks``, ``content_policy_fallbacks``,
``timeout``, plus ``metadata`` / ``tags`` and LiteLLM's ``mock_testing_*`` / ``mock_timeout`` switches. They are parsed
here and removed before any adapter sees the body; ``mock_response`` stays (the mock provider reads it).

The common case, a body with none of them, costs one set-disjointness check and no copy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from routerd.errors import BadRequestError

__all__ = [
    "DEFAULT_OPTIONS",
    "MOCK_ATTEMPT_FAILURES",
    "MOCK_FAILURES",
    "ROUTER_KEYS",
    "RequestOptions",
    "split_request",
]

# LiteLLM's switches to rehearse a fallback configuration without a failing upstream: the first group
# fails with this error class (by name in routerd.errors) before any deployment is called.
MOCK_FAILURES: Mapping[str, str] = {
    "mock_testing_fallbacks": "InternalServerError",
    "mock_testing_context_fallbacks": "ContextWindowExceededError",
    "mock_testing_content_policy_fallbacks": "ContentPolicyViolationError",
}

# LiteLLM's switches that make every deployment call fail as a real one would (so they are retried,
# counted and cooled down like real failures, then fall back): the error class by name.
MOCK_ATTEMPT_FAILURES: Mapping[str, str] = {
    "mock_testing_rate_limit_error": "RateLimitError",
    "mock_timeout": "Timeout",
}

ROUTER_KEYS = frozenset(
    {
        "num_retries",
        "fallbacks",
        "disable_fallbacks",
        "context_window_fallbacks",
        "content_policy_fallbacks",
        "timeout",
        "metadata",
        "tags",
        *MOCK_FAILURES,
        *MOCK_ATTEMPT_FAILURES,
    }
)


@dataclass(frozen=True, slots=True)
class RequestOptions:
    """Per-request overrides of the router policy. None means "not given"."""

    num_retries: int | None = None
    fallbacks: tuple[str, ...] | None = None
    context_window_fallbacks: tuple[str, ...] | None = None
    content_policy_fallbacks: tuple[str, ...] | None = None
    disable_fallbacks: bool = False
    timeout: float | None = None
    tags: tuple[str, ...] = ()
    mock_failure: str | None = None  # an error class name from MOCK_FAILURES
    mock_attempt_failure: str | None = None  # an error class name from MOCK_ATTEMPT_FAILURES
    # per-request fallbacks written as {"model": name, "messages": [...], ...}: what replaces the body's
    # fields when the call moves to that group (LiteLLM replaces the prompt with the entry's messages)
    fallback_bodies: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def body_for(self, group: str, body: dict[str, Any]) -> dict[str, Any]:
        """``body`` as sent to the fallback ``group``: the entry's fields replace the body's."""
        replaced = self.fallback_bodies.get(group)
        return {**body, **replaced} if replaced else body


DEFAULT_OPTIONS = RequestOptions()


def split_request(body: dict[str, Any]) -> tuple[dict[str, Any], RequestOptions]:
    """The body the adapter should see, and the routing options that were in it."""
    if ROUTER_KEYS.isdisjoint(body):
        return body, DEFAULT_OPTIONS
    options = RequestOptions(
        fallback_bodies=_fallback_bodies(body),
        num_retries=_count(body, "num_retries"),
        fallbacks=_groups(body, "fallbacks"),
        context_window_fallbacks=_groups(body, "context_window_fallbacks"),
        content_policy_fallbacks=_groups(body, "content_policy_fallbacks"),
        disable_fallbacks=_flag(body, "disable_fallbacks"),
        timeout=_timeout(body),
        tags=_tags(body),
        mock_failure=next((error for key, error in MOCK_FAILURES.items() if _flag(body, key)), None),
        mock_attempt_failure=next(
            (error for key, error in MOCK_ATTEMPT_FAILURES.items() if _flag(body, key)), None
        ),
    )
    return {k: v for k, v in body.items() if k not in ROUTER_KEYS}, options


def _invalid(key: str, expected: str) -> BadRequestError:
    return BadRequestError(f"'{key}' must be {expected}", param=key)


def _count(body: Mapping[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _invalid(key, "a non-negative integer")
    return value


def _flag(body: Mapping[str, Any], key: str) -> bool:
    value = body.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _invalid(key, "a boolean")
    return value


def _timeout(body: Mapping[str, Any]) -> float | None:
    value = body.get("timeout")
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise _invalid("timeout", "a positive number of seconds")
    return float(value)


def _groups(body: Mapping[str, Any], key: str) -> tuple[str, ...] | None:
    # LiteLLM accepts a list of model names, or of {"model": name, ...} objects for per-request fallbacks;
    # only the model name is used here.
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, list):
        raise _invalid(key, "a list of model names")
    names = []
    for item in value:
        name = item.get("model") if isinstance(item, Mapping) else item
        if not isinstance(name, str) or not name:
            raise _invalid(key, "a list of model names")
        names.append(name)
    return tuple(names)


def _fallback_bodies(body: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``{group: fields}`` of fallback entries that carry more than a model name."""
    out: dict[str, dict[str, Any]] = {}
    for key in ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks"):
        value = body.get(key)
        if not isinstance(value, list):
            continue
        for item in value:
            if not isinstance(item, Mapping) or not isinstance(item.get("model"), str):
                continue
            fields = {k: v for k, v in item.items() if k != "model" and k not in ROUTER_KEYS}
            if "messages" in fields:
                if not isinstance(fields["messages"], list):
                    raise _invalid(key, "a list whose entries' 'messages' are lists of messages")
                if not fields["messages"]:
                    del fields["messages"]  # nothing to replace the prompt with
            if fields:
                out.setdefault(item["model"], fields)
    return out


def _tags(body: Mapping[str, Any]) -> tuple[str, ...]:
    value = body.get("tags")
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(tag, str) for tag in value):
        raise _invalid("tags", "a list of strings")
    return tuple(value)
