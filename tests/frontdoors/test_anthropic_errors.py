"""Anthropic's error shape for every status routerd answers with."""

from __future__ import annotations

import logging

import orjson
import pytest
from anthropic.types import ErrorResponse

from routerd.errors import (
    APIError,
    AuthenticationError,
    BadGatewayError,
    NotFoundError,
    OpenAIError,
    PermissionDeniedError,
    RateLimitError,
    RequestTooLargeError,
    ServiceUnavailableError,
    Timeout,
    UnprocessableEntityError,
)
from routerd.frontdoors.anthropic_errors import (
    AnthropicRequestError,
    anthropic_error,
    error_event,
    error_type_for_status,
)


@pytest.mark.parametrize(
    ("exc", "status", "error_type"),
    [
        (AnthropicRequestError("bad", param="messages"), 400, "invalid_request_error"),
        (AuthenticationError("no key"), 401, "authentication_error"),
        (PermissionDeniedError("no"), 403, "permission_error"),
        (NotFoundError("no model"), 404, "not_found_error"),
        (RequestTooLargeError("big"), 413, "request_too_large"),
        (UnprocessableEntityError("odd"), 422, "invalid_request_error"),
        (RateLimitError("slow"), 429, "rate_limit_error"),
        (APIError("boom"), 500, "api_error"),
        (BadGatewayError("upstream"), 502, "api_error"),
        (ServiceUnavailableError("busy"), 503, "overloaded_error"),
        (Timeout("late"), 504, "timeout_error"),
        (APIError("overloaded", status_code=529), 529, "overloaded_error"),
    ],
)
def test_status_to_error_type(exc: OpenAIError, status: int, error_type: str) -> None:
    got_status, body = anthropic_error(exc)
    assert got_status == status
    assert body["type"] == "error" and body["error"]["type"] == error_type
    if error_type != "request_too_large":  # documented by Anthropic, not modelled by its SDK
        ErrorResponse.model_validate(body)


def test_param_is_named_in_the_message() -> None:
    _, body = anthropic_error(AnthropicRequestError("must be an array", param="messages"))
    assert body["error"]["message"] == "messages: must be an array"


def test_unexpected_exceptions_reveal_nothing(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        status, body = anthropic_error(KeyError("secret-internal-detail"))
    assert status == 500 and body["error"]["type"] == "api_error"
    assert "secret-internal-detail" not in orjson.dumps(body).decode()


def test_unknown_statuses_fall_back_by_class() -> None:
    assert error_type_for_status(418) == "invalid_request_error"
    assert error_type_for_status(599) == "api_error"


def test_error_event_bytes() -> None:
    event = error_event(ServiceUnavailableError("busy"))
    assert event.startswith(b"event: error\ndata: ") and event.endswith(b"\n\n")
    ErrorResponse.model_validate(orjson.loads(event.split(b"data: ", 1)[1]))
