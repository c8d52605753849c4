"""Checks of OpenAI request bodies: required fields and the types of the fields routerd knows.

Only what is needed to answer a clear 400 that names the field: unknown fields pass through untouched to
the provider (OpenAI adds parameters faster than any gateway), and value ranges are the provider's call.
This runs on every request, so it walks the body's keys once and builds nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from routerd.errors import BadRequestError
from routerd.jsonkind import json_kind

Check = Callable[[Any], bool]


def _is_str(v: Any) -> bool:
    return isinstance(v, str)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _is_bool(v: Any) -> bool:
    return isinstance(v, bool)


def _is_dict(v: Any) -> bool:
    return isinstance(v, dict)


def _is_list(v: Any) -> bool:
    return isinstance(v, list)


def _is_str_or_dict(v: Any) -> bool:
    return isinstance(v, str | dict)


def _is_stop(v: Any) -> bool:
    return isinstance(v, str) or (isinstance(v, list) and all(isinstance(s, str) for s in v))


def _is_positive_int(v: Any) -> bool:
    return _is_int(v) and v >= 1


def _is_prompt(v: Any) -> bool:
    # a string, a list of strings, a list of token ids, or a list of token-id lists
    if isinstance(v, str):
        return True
    if not isinstance(v, list):
        return False
    return (
        all(isinstance(x, str) for x in v)
        or all(_is_int(x) for x in v)
        or all(isinstance(x, list) and all(_is_int(t) for t in x) for x in v)
    )


_DESCRIBE: dict[Check, str] = {
    _is_str: "a string",
    _is_int: "an integer",
    _is_number: "a number",
    _is_bool: "a boolean",
    _is_dict: "an object",
    _is_list: "an array",
    _is_str_or_dict: "a string or an object",
    _is_stop: "a string or an array of strings",
    _is_positive_int: "an integer >= 1",
    _is_prompt: "a string, an array of strings, or an array of token ids",
}

# Fields every endpoint shares, then each endpoint's own. Router-level keys (num_retries, fallbacks, ...)
# are checked here too so a typo'd type fails before any upstream is called.
_COMMON: dict[str, Check] = {
    "model": _is_str,
    "user": _is_str,
    "stream": _is_bool,
    "timeout": _is_number,
    "num_retries": _is_int,
    "fallbacks": _is_list,
    "disable_fallbacks": _is_bool,
    "metadata": _is_dict,
    "tags": _is_list,
}
_SAMPLING: dict[str, Check] = {
    "temperature": _is_number,
    "top_p": _is_number,
    "n": _is_positive_int,
    "stop": _is_stop,
    "max_tokens": _is_int,
    "presence_penalty": _is_number,
    "frequency_penalty": _is_number,
    "logit_bias": _is_dict,
    "seed": _is_int,
    "stream_options": _is_dict,
}
CHAT_FIELDS: dict[str, Check] = {
    **_COMMON,
    **_SAMPLING,
    "messages": _is_list,
    "max_completion_tokens": _is_int,
    "tools": _is_list,
    "tool_choice": _is_str_or_dict,
    "parallel_tool_calls": _is_bool,
    "functions": _is_list,
    "function_call": _is_str_or_dict,
    "response_format": _is_dict,
    "logprobs": _is_bool,
    "top_logprobs": _is_int,
    "reasoning_effort": _is_str,
    "modalities": _is_list,
    "audio": _is_dict,
    "prediction": _is_dict,
    "store": _is_bool,
    "service_tier": _is_str,
}
COMPLETION_FIELDS: dict[str, Check] = {
    **_COMMON,
    **_SAMPLING,
    "prompt": _is_prompt,
    "echo": _is_bool,
    "suffix": _is_str,
    "best_of": _is_positive_int,
    "logprobs": _is_int,
}
EMBEDDING_FIELDS: dict[str, Check] = {
    **_COMMON,
    "input": _is_prompt,
    "encoding_format": _is_str,
    "dimensions": _is_positive_int,
}

# /v1/moderations: ``input`` is a string, strings, or image/text parts (checked by the upstream)
MODERATION_FIELDS: dict[str, Check] = {"model": _is_str, "user": _is_str, "timeout": _is_number}
# /v1/images/generations: the other fields (size, quality, style, response_format...) pass through
IMAGE_FIELDS: dict[str, Check] = {**MODERATION_FIELDS, "prompt": _is_str, "n": _is_positive_int}
# /v1/rerank (Cohere's shape): documents are strings or objects; top_n and the rest pass through
RERANK_FIELDS: dict[str, Check] = {
    **MODERATION_FIELDS,
    "query": _is_str,
    "documents": _is_list,
    "top_n": _is_positive_int,
}

_REQUIRED = {
    "chat": ("model", "messages"),
    "completions": ("model", "prompt"),
    "embeddings": ("model", "input"),
    "moderations": ("model", "input"),
    "images": ("model", "prompt"),
    "rerank": ("model", "query", "documents"),
}
_FIELDS = {
    "chat": CHAT_FIELDS,
    "completions": COMPLETION_FIELDS,
    "embeddings": EMBEDDING_FIELDS,
    "moderations": MODERATION_FIELDS,
    "images": IMAGE_FIELDS,
    "rerank": RERANK_FIELDS,
}
_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


def validate_body(endpoint: str, body: Any) -> dict[str, Any]:
    """Return ``body`` if it is a well-typed request for ``endpoint``; raise a 400 naming the field."""
    if not isinstance(body, dict):
        raise BadRequestError("request body must be a JSON object", code="invalid_request_body")
    for name in _REQUIRED[endpoint]:
        if body.get(name) is None:
            raise BadRequestError(
                f"missing required field '{name}'", param=name, code="missing_required_parameter"
            )
    fields = _FIELDS[endpoint]
    for name, value in body.items():
        check = fields.get(name)
        if check is not None and value is not None and not check(value):
            raise BadRequestError(
                f"'{name}' must be {_DESCRIBE[check]}, got {json_kind(value)}",
                param=name,
                code="invalid_type",
            )
    model = body["model"]
    if not model:
        raise BadRequestError("'model' must not be empty", param="model", code="invalid_value")
    if not model.isprintable():
        # a wildcard deployment would carry the name upstream (URLs, headers): refuse it before routing
        raise BadRequestError(
            "'model' must not contain control characters", param="model", code="invalid_value"
        )
    if endpoint == "chat":
        _validate_messages(body["messages"])
    return body


def _validate_messages(messages: list[Any]) -> None:
    if not messages:
        raise BadRequestError(
            "'messages' must contain at least one message", param="messages", code="invalid_value"
        )
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise BadRequestError(f"'{where}' must be an object", param=where, code="invalid_type")
        role = message.get("role")
        if role not in _ROLES:
            raise BadRequestError(
                f"'{where}.role' must be one of {', '.join(sorted(_ROLES))}, got {role!r}",
                param=f"{where}.role",
                code="invalid_value",
            )
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            raise BadRequestError(
                f"'{where}.content' must be a string or an array of content parts, got {json_kind(content)}",
                param=f"{where}.content",
                code="invalid_type",
            )
