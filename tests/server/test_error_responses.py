"""Errors become OpenAI-shaped HTTP answers in one place."""

from __future__ import annotations

import orjson

from routerd.errors import AuthenticationError, RateLimitError
from routerd.server.errors import error_response, sse_error_event


def _body(response: object) -> dict[str, dict[str, object]]:
    return orjson.loads(response.body)  # type: ignore[attr-defined,no-any-return]


def test_client_key_rejected_reads_as_such() -> None:
    response = error_response(AuthenticationError("invalid or missing API key"))
    assert response.status_code == 401
    assert _body(response)["error"]["code"] == "invalid_api_key"


def test_upstream_refusing_the_gateway_credentials_says_whose_credentials() -> None:
    exc = AuthenticationError(
        "Incorrect API key provided", llm_provider="openai", deployment_id="gpt4-east", upstream_status=401
    )
    response = error_response(exc)
    error = _body(response)["error"]
    assert response.status_code == 401
    assert error["code"] == "upstream_authentication_error"
    assert error["message"] == (
        "upstream openai refused the credentials routerd has for deployment gpt4-east: Incorrect API key provided"
    )


def test_retry_after_and_extra_headers() -> None:
    response = error_response(RateLimitError("slow down", retry_after=1.2), {"x-request-id": "r1"})
    assert response.status_code == 429
    assert response.headers["retry-after"] == "2"
    assert response.headers["x-request-id"] == "r1"


def test_unexpected_exceptions_reveal_nothing() -> None:
    response = error_response(KeyError("sk-secret-internal-detail"))
    assert response.status_code == 500
    assert b"sk-secret" not in response.body
    assert _body(response)["error"]["type"] == "api_error"


def test_stream_error_event_carries_the_status() -> None:
    event = sse_error_event(RateLimitError("slow down"))
    assert event.startswith(b"data: ") and event.endswith(b"\n\n")
    assert orjson.loads(event[6:])["error"]["status_code"] == 429
