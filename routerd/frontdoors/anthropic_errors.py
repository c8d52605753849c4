"""Errors in Anthropic's wire shape: ``{"type": "error", "error": {"type": ..., "message": ...}}``.

Requests that do not fit the Messages API raise :class:`AnthropicRequestError`, a routerd
:class:`~routerd.errors.BadRequestError` (so the rest of routerd handles it as any 400) that also
carries Anthropic's error type. :func:`anthropic_error` renders any exception for an Anthropic
client: the status stays what routerd decided, the type follows Anthropic's status table.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import orjson

from routerd.errors import BadRequestError, InternalServerError, OpenAIError

log = logging.getLogger("routerd.frontdoors")

JSON = dict[str, Any]

#: Anthropic's error type for each HTTP status it documents.
ERROR_TYPES: Mapping[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    # routerd's 503 means every deployment is busy or cooling down: what Anthropic calls overloaded
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


class AnthropicRequestError(BadRequestError):
    """A request that does not fit Anthropic's Messages API; ``param`` names the field."""

    anthropic_type = "invalid_request_error"


def error_type_for_status(status: int) -> str:
    """Anthropic's error type for ``status``; other 4xx are invalid requests, other 5xx api errors."""
    known = ERROR_TYPES.get(status)
    if known is not None:
        return known
    return "invalid_request_error" if 400 <= status < 500 else "api_error"


def anthropic_error(exc: BaseException) -> tuple[int, JSON]:
    """(status, body) of the Anthropic error answer for ``exc``.

    Unexpected exceptions become a 500 that reveals nothing internal, as on the OpenAI routes. The
    field named by ``param`` is prefixed to the message, since Anthropic's shape has no field for it.
    """
    if not isinstance(exc, OpenAIError):
        log.exception("unhandled error", exc_info=exc)
        exc = InternalServerError("routerd hit an internal error; see its log for details")
    error_type = getattr(exc, "anthropic_type", None) or error_type_for_status(exc.status_code)
    message = f"{exc.param}: {exc.message}" if exc.param else exc.message
    return exc.status_code, error_body(error_type, message)


def error_body(error_type: str, message: str) -> JSON:
    """Anthropic's error document."""
    return {"type": "error", "error": {"type": error_type, "message": message}}


def error_event(exc: BaseException) -> bytes:
    """The in-band ``event: error`` of a stream that fails after its first byte."""
    _, body = anthropic_error(exc)
    return b"event: error\ndata: " + orjson.dumps(body) + b"\n\n"
