"""Issue 21 L3: an upstream error that echoes the deployment's key never reaches a client or a log.

A loopback upstream answers every call with an error carrying the key in every field it could have
(message, type, code, param, status, nested details, a header-borne AWS exception name), whole, cut and
embedded in longer strings. Through the daemon, for each provider's error mapping (OpenAI, Anthropic,
Gemini, Cohere, Bedrock) and for in-band stream errors, neither the key nor any 12-character piece of it
appears in the client's answer (body and headers) or in any log record.
"""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import orjson
import pytest

from routerd.errors import BadRequestError
from routerd.providers.errors import MIN_SECRET_FRAGMENT, ErrorContext, redact, scrub
from routerd.testing import run_in_thread
from routerd.testing.server import RouterdServer

from .upstream import Act, RawUpstream, head

# not shaped like any known key format, so only the per-deployment scrubbing can catch it
KEY = "routerd-probe-Q7vX2mN9pL4kR8sT1wY6zB3cD5fG0hJ"
PIECES = [KEY[i : i + 12] for i in range(0, len(KEY) - 12 + 1, 5)]
MODELS = {
    "openai": "model: openai/gpt-4o-mini, api_base: '{base}/v1', api_key: " + KEY,
    "anthropic": "model: anthropic/claude-3-5-sonnet-20241022, api_base: '{base}', api_key: " + KEY,
    "gemini": "model: gemini/gemini-1.5-flash, api_base: '{base}', api_key: " + KEY,
    "cohere": "model: cohere/command-r-plus, api_base: '{base}', api_key: " + KEY,
    "bedrock": (
        "model: bedrock/anthropic.claude-3-haiku-20240307-v1:0, aws_access_key_id: AKIDPROBE,"
        " aws_secret_access_key: " + KEY + ", aws_region_name: us-east-1,"
        " aws_bedrock_runtime_endpoint: '{base}'"
    ),
}


def echoing_error() -> dict[str, object]:
    """An error body with the key in every field an upstream of any provider could fill."""
    return {
        "type": "error",
        "error": {
            "message": f"Incorrect API key provided: {KEY}. Also {KEY[:20]}... and x{KEY}y",
            "type": KEY,
            "code": f"bad_key_{KEY}",
            "param": KEY[5:30],
            "status": KEY,
            "details": [{"reason": KEY, "metadata": {"key": KEY}}],
            "innererror": {"code": KEY},
        },
        "message": KEY,
        "Message": f"key={KEY}",
        "detail": {"key": KEY},
        "__type": f"{KEY}:http://internal",
    }


def error_answer(status: str = "400 Bad Request") -> bytes:
    headers = {"Content-Type": "application/json", "x-amzn-errortype": f"Validation{KEY}:http://x"}
    return head(status, headers, orjson.dumps(echoing_error()))


def sse_answer(*events: bytes) -> bytes:
    body = b"".join(events)
    return head("200 OK", {"Content-Type": "text/event-stream"}, body)


OPENAI_CHUNK = orjson.dumps(
    {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": "hi"}, "finish_reason": None}],
    }
)
STREAMS = {
    # a chunk, then the in-band error: relayed inside the stream already begun
    "openai": sse_answer(
        b"data: " + OPENAI_CHUNK + b"\n\n", b"data: " + orjson.dumps(echoing_error()) + b"\n\n"
    ),
    "anthropic": sse_answer(b"event: error\ndata: " + orjson.dumps(echoing_error()) + b"\n\n"),
    "gemini": sse_answer(b"data: " + orjson.dumps(echoing_error()) + b"\n\n"),
}


def assert_no_key(text: str, where: str) -> None:
    assert KEY not in text, where
    for piece in PIECES:
        assert piece not in text, f"{where}: {piece!r}"


def write_config(directory: Path, provider: str, base: str) -> Path:
    path = directory / "config.yaml"
    path.write_text(
        f"""
model_list:
  - model_name: m
    litellm_params: {{{MODELS[provider].format(base=base)}}}
router_settings: {{num_retries: 0, allowed_fails: 100}}
""",
        encoding="utf-8",
    )
    return path


def call(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, provider: str, answer: bytes, stream: bool
) -> httpx.Response:
    upstream = RawUpstream(lambda number, request: Act(answer))
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    caplog.set_level(logging.DEBUG)
    with run_in_thread(upstream, start_timeout=10) as running:  # type: ignore[arg-type]
        config = write_config(tmp_path, provider, running.base_url)
        with RouterdServer.from_file(config) as server:
            response = httpx.post(f"{server.base_url}/v1/chat/completions", json=body, timeout=30)
        assert running.requests >= 1  # the echo was met
    return response


def assert_clean(response: httpx.Response, caplog: pytest.LogCaptureFixture) -> None:
    assert_no_key(response.text, "body")
    assert_no_key(str(list(response.headers.items())), "headers")
    assert caplog.records  # the log is looked at, not empty
    for record in caplog.records:
        rendered = record.getMessage() + repr(record.__dict__)
        assert_no_key(rendered, f"log record {record.name}")


@pytest.mark.parametrize("provider", sorted(MODELS))
def test_an_error_echoing_the_key_is_scrubbed_in_every_field(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, provider: str
) -> None:
    response = call(tmp_path, caplog, provider, error_answer(), stream=False)
    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert "***" in error["message"]  # the message is kept, with the key masked
    assert_clean(response, caplog)


@pytest.mark.parametrize("provider", sorted(STREAMS))
def test_an_in_band_stream_error_echoing_the_key_is_scrubbed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, provider: str
) -> None:
    response = call(tmp_path, caplog, provider, STREAMS[provider], stream=True)
    assert "error" in response.text
    assert_clean(response, caplog)


# --- the scrubbing itself -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        KEY,
        f"prefix{KEY}suffix",
        KEY[:MIN_SECRET_FRAGMENT],
        KEY[-MIN_SECRET_FRAGMENT:],
        f"{KEY[:15]}...{KEY[-15:]}",  # the shape OpenAI's 401 uses
        f"a {KEY[7:19]} b {KEY[20:33]} c",
    ],
)
def test_redact_masks_the_key_and_every_fragment_of_it(text: str) -> None:
    scrubbed = redact(text, (KEY,))
    assert "***" in scrubbed
    for start in range(len(KEY) - MIN_SECRET_FRAGMENT + 1):
        assert KEY[start : start + MIN_SECRET_FRAGMENT] not in scrubbed


def test_redact_keeps_ordinary_text_and_short_overlaps() -> None:
    text = "the model 'gpt-4o' is overloaded; try routerd later"
    assert redact(text, (KEY,)) == text  # "routerd" is 7 characters of the key: below the fragment
    assert redact("a" * 10, ("abc",)) == "a" * 10  # secrets under 4 characters are not masked


def test_scrub_reaches_nested_strings_and_bounds_them() -> None:
    value = {"a": [KEY, {"b": f"x{KEY}"}], KEY: 3, "n": None, "long": "z" * 5000}
    scrubbed = scrub(value, (KEY,), limit=100)
    assert_no_key(orjson.dumps(scrubbed).decode(), "scrubbed")
    assert scrubbed["n"] is None and len(scrubbed["long"]) == 100


def test_every_field_of_a_made_error_is_scrubbed() -> None:
    errors = ErrorContext(provider="openai", model="m", secrets=(KEY,))
    made = errors.make(BadRequestError, f"m {KEY}", code=f"c{KEY[3:20]}", param=KEY)
    assert_no_key(orjson.dumps(made.to_dict()).decode(), "made")
    parsed = errors.from_payload(echoing_error(), status=400)
    assert_no_key(orjson.dumps(parsed.to_dict()).decode() + str(parsed), "parsed")
