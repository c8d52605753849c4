"""Porting suite, part 1: LiteLLM-style module settings, provider variables, retries and exceptions,
each called the way LiteLLM's documentation calls litellm, against loopback fakes."""

from __future__ import annotations

from typing import Any

import pytest

import routerd
from routerd.testing.openai_fake import Reply
from tests.sdk.conftest import ANTHROPIC_KEY, OPENAI_KEY

HI = [{"role": "user", "content": "hi"}]


def test_module_api_key_and_api_base_route_the_call(
    openai_fake: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(routerd, "api_key", OPENAI_KEY)
    monkeypatch.setattr(routerd, "api_base", openai_fake.base_url)
    response = routerd.completion(model="gpt-4o", messages=HI)
    assert response.choices[0].message.content == "hi"
    assert openai_fake.requests[-1].headers["authorization"] == f"Bearer {OPENAI_KEY}"


def test_an_argument_wins_over_the_module_setting(openai_fake: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(routerd, "api_key", "sk-wrong-module-key")
    monkeypatch.setattr(routerd, "api_base", "http://127.0.0.1:9/v1")  # nothing listens there
    response = routerd.completion(
        model="gpt-4o", messages=HI, api_key=OPENAI_KEY, base_url=openai_fake.base_url
    )
    assert response.choices[0].message.content == "hi"


def test_openai_base_url_is_read_before_openai_api_base(
    openai_fake: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", openai_fake.base_url)
    monkeypatch.setenv("OPENAI_API_BASE", "http://127.0.0.1:9/v1")
    response = routerd.completion(model="gpt-4o", messages=HI)
    assert response.choices[0].message.content == "hi"
    assert len(openai_fake.requests) == 1


def test_max_retries_zero_makes_one_upstream_call(openai_env: Any, instant_backoff: list[float]) -> None:
    openai_env.enqueue(Reply.error(429, "slow down"), Reply.error(429, "slow down"))
    with pytest.raises(routerd.RateLimitError) as info:
        routerd.completion(model="gpt-4o", messages=HI, max_retries=0)
    assert len(openai_env.requests) == 1
    assert info.value.num_retries == 0
    assert info.value.max_retries == 0


def test_module_num_retries_applies_and_a_call_overrides_it(
    openai_env: Any,
    instant_backoff: list[float],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(routerd, "num_retries", 0)
    openai_env.enqueue(Reply.error(503, "busy"), Reply.error(503, "busy"))
    with pytest.raises(routerd.ServiceUnavailableError):
        routerd.completion(model="gpt-4o", messages=HI)
    assert len(openai_env.requests) == 1
    response = routerd.completion(model="gpt-4o", messages=HI, num_retries=1)  # one 503 left, then ok
    assert response._hidden_params["retries"] == 1


def test_module_request_timeout_bounds_calls(openai_env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(routerd, "request_timeout", 0.3)
    openai_env.enqueue(Reply(hang=True))
    with pytest.raises(routerd.Timeout) as info:
        routerd.completion(model="gpt-4o", messages=HI, num_retries=0)
    assert info.value.status_code == 408  # LiteLLM's status for a timeout


def test_module_drop_params_drops_what_the_provider_lacks(
    anthropic_fake: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    monkeypatch.setenv("ANTHROPIC_API_BASE", anthropic_fake.base_url)
    with pytest.raises(routerd.UnsupportedParamsError):
        routerd.completion(model="claude-3-haiku-20240307", messages=HI, logit_bias={"1": 2})
    monkeypatch.setattr(routerd, "drop_params", True)
    response = routerd.completion(model="claude-3-haiku-20240307", messages=HI, logit_bias={"1": 2})
    assert response.choices[0].message.content
    assert "logit_bias" not in anthropic_fake.requests[-1].json


def test_model_alias_map_renames_the_model(openai_env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(routerd, "model_alias_map", {"smart": "gpt-4o"})
    routerd.completion(model="smart", messages=HI)
    assert openai_env.requests[-1].json["model"] == "gpt-4o"


def test_set_verbose_turns_on_debug_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    import logging

    import routerd.module_settings as module_globals

    logger = logging.getLogger("routerd")
    monkeypatch.setattr(logger, "level", logging.WARNING)
    monkeypatch.setattr(logger, "handlers", [])  # set_verbose adds one: not left behind for other tests
    monkeypatch.setattr(module_globals, "_verbose_applied", False)
    monkeypatch.setattr(routerd, "set_verbose", True)
    routerd.completion(model="gpt-4o", messages=HI, mock_response="ok")
    assert logger.level == logging.DEBUG


def test_upstream_500_surfaces_as_internal_server_error_500(
    openai_env: Any,
    instant_backoff: list[float],
) -> None:
    openai_env.enqueue(Reply.error(500, "oops"))
    with pytest.raises(routerd.InternalServerError) as info:
        routerd.completion(model="gpt-4o", messages=HI, num_retries=0)
    assert info.value.status_code == 500
    assert info.value.llm_provider == "openai"
    assert info.value.model
    assert "openai" in (info.value.litellm_debug_info or "")


def test_mock_response_exception_becomes_an_api_error() -> None:
    with pytest.raises(routerd.APIError) as info:
        routerd.completion(model="gpt-4o", messages=HI, mock_response=ValueError("boom"))
    assert info.value.status_code == 500
    assert "boom" in info.value.message
    assert isinstance(info.value.__cause__, ValueError)
    rate = routerd.RateLimitError("limited", model="gpt-4o")
    with pytest.raises(routerd.RateLimitError) as raised:
        routerd.completion(model="gpt-4o", messages=HI, mock_response=rate)
    assert raised.value is rate


def test_stream_chunks_carry_hidden_params(openai_env: Any) -> None:
    chunks = list(routerd.completion(model="gpt-4o", messages=HI, stream=True))
    assert chunks
    assert all(c._hidden_params["custom_llm_provider"] == "openai" for c in chunks)


def test_response_json_is_a_dict() -> None:
    response = routerd.completion(model="gpt-4o", messages=HI, mock_response="hello")
    data = response.json()
    assert isinstance(data, dict)
    assert data["choices"][0]["message"]["content"] == "hello"


def test_a_refused_connection_is_an_api_connection_error_500(instant_backoff: list[float]) -> None:
    import socket

    with socket.socket() as sock:  # a port nothing listens on once the socket is closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(routerd.APIConnectionError) as info:
        routerd.completion(
            model="gpt-4o",
            messages=HI,
            api_key=OPENAI_KEY,
            base_url=f"http://127.0.0.1:{port}/v1",
            num_retries=0,
        )
    assert not isinstance(info.value, routerd.InternalServerError)
    assert info.value.status_code == 500  # LiteLLM's status for a connection error (the daemon answers 502)


def test_hidden_params_have_litellms_fields(openai_env: Any) -> None:
    openai_env.enqueue(Reply(headers={"x-ratelimit-remaining-requests": "99"}))
    response = routerd.completion(model="gpt-4o", messages=HI)
    hidden = response._hidden_params
    assert hidden["response_cost"] is not None and hidden["response_cost"] > 0
    assert hidden["additional_headers"]["llm_provider-x-ratelimit-remaining-requests"] == "99"
    assert hidden["_response_ms"] >= 0 and response._response_ms == hidden["_response_ms"]


def test_max_retries_two_makes_three_calls_not_more(openai_env: Any, instant_backoff: list[float]) -> None:
    openai_env.enqueue(*(Reply.error(503, "busy") for _ in range(5)))
    with pytest.raises(routerd.ServiceUnavailableError):
        routerd.completion(model="gpt-4o", messages=HI, max_retries=2)
    assert len(openai_env.requests) == 3  # one call and two retries, as LiteLLM's client makes
