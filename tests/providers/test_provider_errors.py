"""Translation of upstream error answers (stored example payloads) into routerd's error classes."""

from __future__ import annotations

import orjson
import pytest

from routerd import errors
from routerd.providers.errors import MAX_MESSAGE_CHARS, ErrorContext, parse_retry_after, redact

WALL = 1_700_000_000.0  # 2023-11-14T22:13:20Z
CTX = ErrorContext(
    provider="openai",
    model="gpt-4o",
    deployment_id="dep-1",
    secrets=("sk-live-secret-0123456789",),
    wall_clock=lambda: WALL,
)

OPENAI_429 = {
    "error": {
        "message": "Rate limit reached for gpt-4o in organization org-x on requests per min (RPM): Limit 500.",
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    }
}
OPENAI_CONTEXT = {
    "error": {
        "message": "This model's maximum context length is 128000 tokens. However, your messages resulted in "
        "130000 tokens. Please reduce the length of the messages.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "context_length_exceeded",
    }
}
OPENAI_401 = {
    "error": {
        "message": "Incorrect API key provided: sk-live-***********6789. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_api_key",
    }
}
AZURE_CONTENT_FILTER = {
    "error": {
        "message": "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.",
        "type": None,
        "param": "prompt",
        "code": "content_filter",
        "status": 400,
        "innererror": {
            "code": "ResponsibleAIPolicyViolation",
            "content_filter_result": {"violence": {"filtered": True, "severity": "medium"}},
        },
    }
}
AZURE_429 = {
    "error": {
        "code": "429",
        "message": "Requests ... have exceeded call rate limit. Please retry after 7 seconds.",
    }
}
VLLM_400 = {
    "object": "error",
    "message": "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens.",
    "type": "BadRequestError",
    "param": None,
    "code": 400,
}


def translate(status: int, payload: object, headers: dict[str, str] | None = None) -> errors.OpenAIError:
    content = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    return CTX.from_response(status, headers or {}, content)


@pytest.mark.parametrize(
    ("status", "cls", "our_status"),
    [
        (400, errors.BadRequestError, 400),
        (401, errors.AuthenticationError, 401),
        (403, errors.PermissionDeniedError, 403),
        (404, errors.NotFoundError, 404),
        (408, errors.Timeout, 504),
        (409, errors.BadRequestError, 400),
        (413, errors.RequestTooLargeError, 413),
        (422, errors.UnprocessableEntityError, 422),
        (429, errors.RateLimitError, 429),
        (500, errors.BadGatewayError, 502),
        (502, errors.BadGatewayError, 502),
        (503, errors.ServiceUnavailableError, 503),
        (504, errors.Timeout, 504),
    ],
)
def test_status_picks_the_class(status: int, cls: type[errors.OpenAIError], our_status: int) -> None:
    error = translate(status, {"error": {"message": "boom", "type": "x"}})
    assert type(error) is cls
    assert error.status_code == our_status
    assert error.upstream_status == status
    assert error.message == "boom"


def test_openai_rate_limit_keeps_message_code_and_context() -> None:
    error = translate(429, OPENAI_429, {"retry-after": "20", "x-request-id": "req_1"})
    assert isinstance(error, errors.RateLimitError)
    assert error.retryable and error.cools_down
    assert error.code == "rate_limit_exceeded"
    assert error.retry_after == 20.0
    assert error.message.startswith("Rate limit reached for gpt-4o")
    assert (error.llm_provider, error.model, error.deployment_id) == ("openai", "gpt-4o", "dep-1")
    assert error.response_headers() == {"retry-after": "20"}


def test_context_length_code_becomes_context_window_error() -> None:
    error = translate(400, OPENAI_CONTEXT)
    assert isinstance(error, errors.ContextWindowExceededError)
    assert error.param == "messages"
    assert error.code == "context_length_exceeded"


def test_vllm_context_message_without_code_becomes_context_window_error() -> None:
    error = translate(400, VLLM_400)
    assert isinstance(error, errors.ContextWindowExceededError)
    assert "maximum context length is 4096" in error.message


def test_plain_400_stays_a_bad_request() -> None:
    error = translate(400, {"error": {"message": "Invalid value for 'temperature'", "param": "temperature"}})
    assert type(error) is errors.BadRequestError
    assert error.param == "temperature"


@pytest.mark.parametrize("code", ["content_policy_violation", "content_filter"])
def test_content_policy_codes(code: str) -> None:
    error = translate(400, {"error": {"message": "no", "code": code}})
    assert isinstance(error, errors.ContentPolicyViolationError)
    assert error.code == code


def test_azure_content_filter_with_innererror() -> None:
    error = translate(400, AZURE_CONTENT_FILTER)
    assert isinstance(error, errors.ContentPolicyViolationError)
    assert error.param == "prompt"
    assert "content management policy" in error.message


def test_azure_innererror_alone_is_enough() -> None:
    payload = {"error": {"message": "filtered", "innererror": {"code": "ResponsibleAIPolicyViolation"}}}
    assert isinstance(translate(400, payload), errors.ContentPolicyViolationError)


def test_azure_429_prefers_retry_after_ms_and_drops_numeric_code() -> None:
    error = translate(429, AZURE_429, {"retry-after": "7", "retry-after-ms": "6500"})
    assert isinstance(error, errors.RateLimitError)
    assert error.retry_after == 6.5
    assert error.code == "rate_limit_exceeded"  # Azure's "429" says nothing the status does not


def test_non_json_html_body_is_reduced_to_words() -> None:
    page = (
        b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1>nginx</body></html>"
    )
    error = translate(502, page)
    assert isinstance(error, errors.BadGatewayError)
    assert "<" not in error.message
    assert "502 Bad Gateway" in error.message and "nginx" in error.message


def test_empty_body_gets_a_message() -> None:
    error = translate(503, b"")
    assert isinstance(error, errors.ServiceUnavailableError)
    assert error.message == "upstream answered HTTP 503 with an empty body"


def test_fastapi_detail_body() -> None:
    error = translate(422, {"detail": [{"loc": ["body", "messages"], "msg": "field required"}]})
    assert isinstance(error, errors.UnprocessableEntityError)
    assert "field required" in error.message


def test_error_as_plain_string() -> None:
    error = translate(500, {"error": "model crashed"})
    assert error.message == "model crashed"


def test_messages_are_bounded() -> None:
    error = translate(500, {"error": {"message": "x" * 50_000}})
    assert len(error.message) == MAX_MESSAGE_CHARS
    assert error.message.endswith("...")
    assert len(translate(500, b"y " * 50_000).message) <= MAX_MESSAGE_CHARS


def test_keys_echoed_by_the_upstream_are_redacted() -> None:
    error = translate(401, OPENAI_401)
    assert isinstance(error, errors.AuthenticationError)
    assert "sk-live" not in error.message and "6789" not in error.message
    assert "***" in error.message
    # the deployment's own key, verbatim anywhere in a message
    echoed = translate(400, {"error": {"message": "bad key sk-live-secret-0123456789 given"}})
    assert "secret" not in echoed.message
    assert "sk-live-secret-0123456789" not in str(echoed)


def test_redact_patterns() -> None:
    assert redact("key AIzaSyA1234567890abcdefXYZ end") == "key *** end"
    assert redact("Authorization: Bearer abcdefghijklmnop") == "Authorization: ***"
    assert redact("hunter22 here", ("hunter22",)) == "*** here"
    assert redact("a risk-free network") == "a risk-free network"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"retry-after": "5"}, 5.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after-ms": "junk", "retry-after": "9"}, 9.0),
        ({"retry-after": "Tue, 14 Nov 2023 22:13:50 GMT"}, 30.0),
        ({"retry-after": "Tue, 14 Nov 2023 22:00:00 GMT"}, 0.0),  # in the past: retry now
        ({"retry-after": "soon"}, None),
        ({"retry-after": "-3"}, None),
        ({"retry-after": "nan"}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers, now=WALL) == expected


def test_http_date_retry_after_uses_the_injected_wall_clock() -> None:
    error = translate(429, OPENAI_429, {"retry-after": "Tue, 14 Nov 2023 22:14:20 GMT"})
    assert error.retry_after == 60.0


@pytest.mark.parametrize(
    ("payload", "cls"),
    [
        ({"error": {"message": "overloaded", "type": "server_error"}}, errors.BadGatewayError),
        ({"error": {"message": "slow down", "type": "rate_limit_error"}}, errors.RateLimitError),
        ({"error": {"message": "bad", "type": "BadRequestError", "code": 400}}, errors.BadRequestError),
        ({"error": {"message": "busy", "code": "503"}}, errors.ServiceUnavailableError),
        (
            {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
            errors.ServiceUnavailableError,
        ),
        ({"error": {"message": "mystery"}}, errors.BadGatewayError),
    ],
)
def test_in_band_errors_take_their_status_from_code_or_type(payload: dict[str, object], cls: type) -> None:
    error = CTX.from_payload(payload)
    assert type(error) is cls
    assert error.llm_provider == "openai"


def test_annotate_fills_only_what_is_missing() -> None:
    transport_error = errors.Timeout("upstream did not answer in time")
    CTX.annotate(transport_error)
    assert (transport_error.llm_provider, transport_error.model, transport_error.deployment_id) == (
        "openai",
        "gpt-4o",
        "dep-1",
    )
    other = errors.RateLimitError("x", llm_provider="azure", model="m")
    CTX.annotate(other)
    assert (other.llm_provider, other.model) == ("azure", "m")


def test_stream_cut_is_a_retryable_connection_error() -> None:
    error = CTX.stream_cut(3)
    assert isinstance(error, errors.APIConnectionError)
    assert error.retryable
    assert "3 chunk" in error.message
