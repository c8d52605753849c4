"""Issue 3, done when: each error surfaces through the official ``openai`` client as the matching
exception class, with the right status, OpenAI's error shape, and nothing secret in it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from routerd.testing import FakeOpenAI, Reply
from routerd.testing.server import RouterdServer

from .support import (
    BODY_LIMIT_MB,
    MASTER_KEY,
    OPENAI_KEY,
    UPSTREAM_KEYS,
    capture_logs,
    client_for,
    user,
    wait_for,
)

AUTH = {"authorization": f"Bearer {MASTER_KEY}"}

# the "leave this field out" sentinel: openai.omit from openai 2 on, NOT_GIVEN in openai 1
OMIT = getattr(openai, "omit", None) or openai.NOT_GIVEN


def error_of(exc: openai.APIStatusError) -> dict[str, object]:
    """The ``error`` object of an error response (the client keeps it as ``body``)."""
    assert isinstance(exc.body, dict), exc.body
    return exc.body


# -- requests routerd refuses itself ----------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/chat/completions", "/v1/embeddings"])
def test_malformed_json_is_a_400(gateway: RouterdServer, path: str) -> None:
    response = httpx.post(
        gateway.base_url + path,
        content=b'{"model": "mock-chat", "messages": [',
        headers={**AUTH, "content-type": "application/json"},
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "invalid_json"
    assert "not valid JSON" in error["message"]
    assert set(error) >= {"message", "type", "param", "code"}


def test_missing_field_is_a_400_naming_it(gateway: RouterdServer) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client_for(gateway).chat.completions.create(model="mock-chat", messages=OMIT)

    assert caught.value.status_code == 400
    error = error_of(caught.value)
    assert error["param"] == "messages"
    assert "messages" in str(error["message"])
    assert error["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"temperature": "hot"}, "temperature"),
        ({"n": 0}, "n"),
        ({"stream": "yes"}, "stream"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
        ({"messages": "hi"}, "messages"),
    ],
)
def test_mistyped_field_is_a_400_naming_it(
    gateway: RouterdServer, extra: dict[str, object], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client_for(gateway).chat.completions.create(model="mock-chat", messages=user("hi"), extra_body=extra)

    error = error_of(caught.value)
    assert caught.value.status_code == 400
    assert error["param"] == param
    assert param in str(error["message"])


def test_missing_input_of_embeddings_and_mistyped_prompt_of_completions(gateway: RouterdServer) -> None:
    client = client_for(gateway)

    with pytest.raises(openai.BadRequestError) as missing:
        client.embeddings.create(model="mock-embed", input=OMIT)
    with pytest.raises(openai.BadRequestError) as mistyped:
        client.completions.create(model="mock-chat", prompt=OMIT, extra_body={"prompt": {"a": 1}})

    assert error_of(missing.value)["param"] == "input"
    assert error_of(mistyped.value)["param"] == "prompt"


def test_unknown_model_is_a_404_that_says_how_to_list_models(gateway: RouterdServer) -> None:
    client = client_for(gateway)

    with pytest.raises(openai.NotFoundError) as chat:
        client.chat.completions.create(model="gpt-7-ultra", messages=user("hi"))
    with pytest.raises(openai.NotFoundError) as retrieve:
        client.models.retrieve("gpt-7-ultra")

    for caught in (chat, retrieve):
        assert caught.value.status_code == 404
        message = str(error_of(caught.value)["message"])
        assert "gpt-7-ultra" in message
        assert "/v1/models" in message


@pytest.mark.parametrize("key", ["sk-not-the-master-key", MASTER_KEY + "x", MASTER_KEY[:-1]])
def test_bad_key_is_a_401(gateway: RouterdServer, key: str) -> None:
    client = client_for(gateway, api_key=key)

    with pytest.raises(openai.AuthenticationError) as chat:
        client.chat.completions.create(model="mock-chat", messages=user("hi"))
    with pytest.raises(openai.AuthenticationError):
        client.models.list()

    assert chat.value.status_code == 401
    assert key not in str(error_of(chat.value))  # the rejected key is not echoed back


def test_missing_key_is_a_401(gateway: RouterdServer) -> None:
    response = httpx.post(
        gateway.base_url + "/v1/chat/completions", json={"model": "mock-chat", "messages": user("hi")}
    )

    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"


def test_body_over_the_limit_is_a_413(gateway: RouterdServer) -> None:
    too_big = "x" * int(BODY_LIMIT_MB * 1024 * 1024 + 1024)

    with pytest.raises(openai.APIStatusError) as caught:
        client_for(gateway).chat.completions.create(model="mock-chat", messages=user(too_big))

    assert caught.value.status_code == 413
    assert error_of(caught.value)["type"] == "invalid_request_error"


def test_chunked_body_over_the_limit_is_a_413(gateway: RouterdServer) -> None:
    # No content-length to refuse up front: the limit is enforced while reading.
    def body() -> Iterator[bytes]:
        yield b'{"model": "mock-chat", "messages": [{"role": "user", "content": "'
        for _ in range(64):
            yield b"x" * 1024
        yield b'"}]}'

    response = httpx.post(
        gateway.base_url + "/v1/chat/completions",
        content=body(),
        headers={**AUTH, "content-type": "application/json"},
    )

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


# -- upstream failures --------------------------------------------------------------------------------


def test_upstream_429_is_passed_on_with_its_retry_after(
    gateway: RouterdServer, fake_openai: FakeOpenAI
) -> None:
    fake_openai.enqueue(Reply.error(429, "Rate limit reached for requests", retry_after=7))

    with pytest.raises(openai.RateLimitError) as caught:
        client_for(gateway).chat.completions.create(model="gpt-4o-mini", messages=user("hi"))

    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "7"
    assert caught.value.response.headers["x-routerd-model-id"] == "openai-chat"
    assert "Rate limit reached" in str(error_of(caught.value)["message"])
    assert len(fake_openai.requests) == 1  # no retries configured: the 429 surfaces at once


@pytest.mark.parametrize(("upstream", "expected"), [(500, 502), (502, 502), (503, 503)])
def test_upstream_5xx_is_a_502_or_503(
    gateway: RouterdServer, fake_openai: FakeOpenAI, upstream: int, expected: int
) -> None:
    fake_openai.enqueue(Reply.error(upstream, "The server had an error while processing your request"))

    with pytest.raises(openai.InternalServerError) as caught:
        client_for(gateway).chat.completions.create(model="gpt-4o-mini", messages=user("hi"))

    assert caught.value.status_code == expected
    assert set(error_of(caught.value)) >= {"message", "type", "param", "code"}


def test_upstream_garbage_is_a_502(gateway: RouterdServer, fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(
        Reply(status=200, body=b"<html>proxy error</html>", headers={"content-type": "text/html"})
    )

    with pytest.raises(openai.InternalServerError) as caught:
        client_for(gateway).chat.completions.create(model="gpt-4o-mini", messages=user("hi"))

    assert caught.value.status_code == 502


def test_upstream_timeout_is_a_504(gateway: RouterdServer, fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(Reply(hang=True))  # the "slow-upstream" deployment allows 0.5 s

    with pytest.raises(openai.InternalServerError) as caught:
        client_for(gateway).chat.completions.create(model="slow-upstream", messages=user("hi"))

    assert caught.value.status_code == 504
    assert caught.value.response.headers["x-routerd-model-id"] == "openai-slow"
    # routerd hung up on the upstream when it gave up
    wait_for(lambda: fake_openai.disconnects == 1, what="the upstream call to be abandoned")


def test_streamed_call_that_fails_before_the_first_chunk_is_an_ordinary_error(
    gateway: RouterdServer, fake_openai: FakeOpenAI
) -> None:
    fake_openai.enqueue(Reply.error(503, "overloaded"))

    with pytest.raises(openai.InternalServerError) as caught:
        client_for(gateway).chat.completions.create(model="gpt-4o-mini", messages=user("hi"), stream=True)

    assert caught.value.status_code == 503


# -- secrets ------------------------------------------------------------------------------------------


def test_upstream_keys_never_reach_a_client_or_a_log_line(
    gateway: RouterdServer, fake_openai: FakeOpenAI
) -> None:
    seen: list[str] = []

    def call(method: str, path: str, body: dict[str, object] | None = None) -> int:
        response = httpx.request(method, gateway.base_url + path, json=body, headers=AUTH, timeout=10)
        seen.append(response.text)
        seen.extend(f"{name}: {value}" for name, value in response.headers.items())
        return response.status_code

    def chat(model: str, **extra: object) -> int:
        return call("POST", "/v1/chat/completions", {"model": model, "messages": user("hi"), **extra})

    with capture_logs() as logs:
        assert chat("gpt-4o-mini") == 200
        assert chat("gpt-4o-mini", stream=True) == 200
        fake_openai.enqueue(Reply.error(429, "slow down", retry_after=1))
        assert chat("gpt-4o-mini") == 429
        fake_openai.enqueue(Reply.error(500, "boom"))
        assert chat("gpt-4o-mini") == 502
        # an upstream that echoes the credential it was sent (a debugging proxy, say)
        fake_openai.enqueue(Reply.error(400, f"bad request; you sent Authorization: Bearer {OPENAI_KEY}"))
        assert chat("gpt-4o-mini") == 400
        fake_openai.enqueue(Reply(hang=True))
        assert chat("slow-upstream") == 504
        # a deployment with a wrong key: the upstream refuses it (and quotes part of it)
        assert chat("wrong-key") >= 400
        assert call("POST", "/v1/embeddings", {"model": "embed", "input": "x"}) == 200
        for path in ("/health", "/v1/models", "/v1/routerd/explain?model=gpt-4o-mini", "/metrics"):
            assert call("GET", path) == 200, path

    assert len(fake_openai.requests) >= 7  # the calls above did reach the upstream
    assert logs.lines, "nothing was logged: the check below would prove nothing"
    everything = "\n".join(seen) + "\n" + logs.text
    for key in UPSTREAM_KEYS:
        assert key not in everything
        assert key[8:] not in everything  # not even the tail of one
