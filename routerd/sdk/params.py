"""Turning SDK arguments into a request body, a timeout and headers.

Conventions (LiteLLM's, which users bring along):

* OpenAI parameters given as ``None`` are left out of the body; ``**kwargs`` the SDK does not know
  are provider-specific parameters and pass through in the body (``extra_body`` is merged in too).
* ``response_format`` may be a pydantic model class: it becomes OpenAI's strict ``json_schema``
  response format (:func:`response_format_param`).
* ``timeout`` may be seconds (a number or numeric string) or an ``httpx.Timeout``.
* ``mock_response`` may be an exception instance (raised as is, without any call) or the name of an
  error class (``"routerd.RateLimitError"``, ``"litellm.RateLimitError"``), to rehearse error handling.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import httpx

import routerd.errors as _errors
from routerd.errors import APIError, BadRequestError, OpenAIError

__all__ = [
    "IGNORED_KWARGS",
    "headers_param",
    "mock_exception",
    "response_format_param",
    "timeout_seconds",
]

#: LiteLLM bookkeeping arguments with no meaning here; dropped so they never reach an upstream body.
IGNORED_KWARGS = frozenset(
    {
        "logger_fn",
        "verbose",
        "litellm_call_id",
        "litellm_logging_obj",
        "litellm_metadata",
        "litellm_trace_id",
        "litellm_session_id",
        "proxy_server_request",
        "preset_cache_key",
        "model_info",
        "no-log",
        "client",
        "acompletion",
        "aembedding",
        "atext_completion",
        "input_cost_per_second",
        "output_cost_per_second",
    }
)


def timeout_seconds(value: Any, param: str = "timeout") -> float | None:
    """Seconds from a number, a numeric string or an ``httpx.Timeout`` (its read timeout, the longest
    wait for an answer, else the longest of its other limits); None when no limit is given."""
    if value is None:
        return None
    if isinstance(value, httpx.Timeout):
        parts = [value.read, value.connect, value.write, value.pool]
        given = [p for p in parts if p is not None]
        if not given:
            return None
        return float(value.read) if value.read is not None else float(max(given))
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise BadRequestError(
                f"{param} must be a number of seconds, got {value!r}", param=param
            ) from None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise BadRequestError(f"{param} must be a positive number of seconds, got {value!r}", param=param)
    return float(value)


def response_format_param(value: Any) -> Any:
    """``response_format`` for the body: a pydantic model class becomes a strict ``json_schema``."""
    if isinstance(value, type):
        from pydantic import BaseModel

        if issubclass(value, BaseModel):
            return {
                "type": "json_schema",
                "json_schema": {
                    "name": value.__name__,
                    "schema": strict_schema(value.model_json_schema()),
                    "strict": True,
                },
            }
        raise BadRequestError(
            f"response_format must be a dict or a pydantic model class, not {value.__name__}",
            param="response_format",
        )
    return value


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON schema adjusted to OpenAI's strict structured outputs.

    Strict mode wants every object closed (``additionalProperties: false``) with all of its properties
    listed in ``required``, and accepts no ``default``; optional fields stay expressible as a union
    with null, which pydantic already emits for ``X | None``.
    """
    strict: dict[str, Any] = _strict(schema)
    return strict


def _strict(node: Any) -> Any:
    if isinstance(node, list):
        return [_strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _strict(value) for key, value in node.items() if key != "default"}
    if out.get("type") == "object" and isinstance(out.get("properties"), dict):
        out["additionalProperties"] = False
        out["required"] = list(out["properties"])
    if "$ref" in out and len(out) > 1:
        # a $ref with siblings (e.g. a description) is not accepted; keep the reference
        out = {"$ref": out["$ref"]}
    return out


def headers_param(extra_headers: Any, headers: Any) -> dict[str, str] | None:
    """The headers to forward upstream: ``headers`` then ``extra_headers`` (which wins)."""
    merged: dict[str, str] = {}
    for value, name in ((headers, "headers"), (extra_headers, "extra_headers")):
        if value is None:
            continue
        if not isinstance(value, Mapping):
            raise BadRequestError(f"{name} must be a mapping of header names to values", param=name)
        merged.update({str(k): str(v) for k, v in value.items() if v is not None})
    return merged or None


def mock_exception(mock_response: Any, model: str) -> BaseException | None:
    """The exception a ``mock_response`` asks for, or None when it is an answer.

    An ``openai``/routerd error is raised as given; any other exception becomes an :class:`APIError`
    with its message and its ``status_code`` (500 when it has none), as LiteLLM's mock does.
    """
    if isinstance(mock_response, BaseException):
        # openai's own errors are checked by module, so this needs no ``import openai``
        from_openai = type(mock_response).__module__.split(".")[0] == "openai"
        if isinstance(mock_response, OpenAIError) or from_openai or not isinstance(mock_response, Exception):
            return mock_response
        status = getattr(mock_response, "status_code", None)
        error = APIError(
            str(mock_response) or type(mock_response).__name__,
            model=model,
            llm_provider="mock",
            status_code=status if isinstance(status, int) else 500,
        )
        error.__cause__ = mock_response
        return error
    if isinstance(mock_response, str) and mock_response.startswith(("routerd.", "litellm.")):
        name = mock_response.split(".", 1)[1]
        cls = getattr(_errors, name, None)
        if isinstance(cls, type) and issubclass(cls, OpenAIError):
            return cls(f"mock_response asked for {name}", model=model, llm_provider="mock")
    return None
