"""The ``anthropic/`` adapter end to end: routerd's HTTP clients against the fake Anthropic API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import orjson
import pytest

from routerd import errors
from routerd.config.table import Deployment, ModelInfo
from routerd.http import HttpClient
from routerd.providers.anthropic import AnthropicAdapter, AnthropicTarget, messages_url
from routerd.providers.anthropic_wire import default_max_tokens
from routerd.providers.base import UpstreamRequest, get_adapter
from routerd.testing.anthropic_fake import AnthropicReply, FakeAnthropic, error_body
from routerd.testing.fake_http import StreamPlan

KEY = "sk-ant-test-key-0123456789"
MODEL = "claude-sonnet-4-5"
MakeDeployment = Callable[..., Deployment]


@pytest.fixture
async def fake() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic(api_key=KEY) as server:
        yield server


@pytest.fixture
def deployment(fake: FakeAnthropic, make_deployment: MakeDeployment) -> Deployment:
    return make_deployment("anthropic", MODEL, api_base=fake.base_url, api_key=KEY, group="claude")


def call(deployment: Deployment, body: dict[str, Any], **fields: Any) -> UpstreamRequest:
    body = {"model": "claude", **body}
    return UpstreamRequest(deployment=deployment, body=body, timeout=10.0, **fields)


def ask(text: str = "hello") -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


async def collect(stream: AsyncIterator[dict[str, Any]]) -> list[dict[str, Any]]:
    return [chunk async for chunk in stream]


adapter = AnthropicAdapter()


def test_registered_under_its_name() -> None:
    assert isinstance(get_adapter("anthropic"), AnthropicAdapter)


@pytest.mark.parametrize(
    ("base", "url"),
    [
        ("https://api.anthropic.com", "https://api.anthropic.com/v1/messages"),
        ("https://proxy.example/anthropic/", "https://proxy.example/anthropic/v1/messages"),
        ("https://proxy.example/v1", "https://proxy.example/v1/messages"),
        ("https://proxy.example/v1/messages", "https://proxy.example/v1/messages"),
    ],
)
def test_messages_url(base: str, url: str) -> None:
    assert messages_url(base) == url


def test_prepared_target_does_not_show_the_key(deployment: Deployment) -> None:
    target = deployment.prepared
    assert isinstance(target, AnthropicTarget)
    assert target.headers["x-api-key"] == KEY
    assert KEY not in repr(target)


def test_default_max_tokens_respects_the_model_output_limit(make_deployment: MakeDeployment) -> None:
    small = make_deployment(
        "anthropic", "claude-3-haiku", api_key=KEY, info=ModelInfo(max_output_tokens=2048)
    )
    assert default_max_tokens(small) == 2048
    assert default_max_tokens(make_deployment("anthropic", "claude-3-haiku", api_key=KEY)) == 4096


async def test_plain_chat(http_client: HttpClient, fake: FakeAnthropic, deployment: Deployment) -> None:
    body = {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}]}
    response = await adapter.chat(http_client, call(deployment, body))

    sent = fake.requests[-1]
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == KEY
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.headers["content-type"] == "application/json"
    assert sent.json["model"] == MODEL
    assert sent.json["system"] == "be brief"
    assert sent.json["max_tokens"] == 4096
    choice = response.body["choices"][0]
    assert response.body["object"] == "chat.completion"
    assert choice["message"] == {"role": "assistant", "content": "echo: hello"}
    assert choice["finish_reason"] == "stop"
    assert response.body["usage"]["total_tokens"] > 0
    assert response.headers["x-ratelimit-remaining-requests"] == "99"


async def test_tool_call_answer(http_client: HttpClient, fake: FakeAnthropic, deployment: Deployment) -> None:
    fake.enqueue(AnthropicReply.tool_use("get_weather", {"city": "Paris"}, tool_id="toolu_1"))
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    response = await adapter.chat(
        http_client, call(deployment, {**ask(), "tools": tools, "tool_choice": "required"})
    )
    assert fake.requests[-1].json["tool_choice"] == {"type": "any"}
    choice = response.body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"] == [
        {
            "id": "toolu_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
        }
    ]


async def test_streamed_chat_with_tool_argument_deltas(
    http_client: HttpClient, fake: FakeAnthropic, deployment: Deployment
) -> None:
    arguments = {"city": "Paris", "days": [1, 2, 3], "unit": "celsius"}
    fake.enqueue(AnthropicReply.tool_use("get_weather", arguments, text="Let me check.", tool_id="toolu_9"))
    body = {**ask(), "stream": True, "stream_options": {"include_usage": True}}
    chunks = await collect(adapter.chat_stream(http_client, call(deployment, body)))

    assert fake.requests[-1].json["stream"] is True
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Let me check."
    calls = [tc for c in chunks if c["choices"] for tc in c["choices"][0]["delta"].get("tool_calls", [])]
    assert calls[0]["id"] == "toolu_9"
    assert calls[0]["function"]["name"] == "get_weather"
    assert len(calls) > 2  # the arguments arrived in several fragments
    assert orjson.loads("".join(tc["function"]["arguments"] for tc in calls)) == arguments
    assert {tc["index"] for tc in calls} == {0}
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-1] == "tool_calls"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] > 0
    assert len({c["id"] for c in chunks}) == 1


async def test_streamed_thinking_becomes_reasoning_content(
    http_client: HttpClient, fake: FakeAnthropic, deployment: Deployment
) -> None:
    fake.enqueue(AnthropicReply.thinking("First, consider the sky.", "It is blue.", signature="c2ln"))
    body = {**ask(), "stream": True, "reasoning_effort": "low"}
    chunks = await collect(adapter.chat_stream(http_client, call(deployment, body)))
    assert fake.requests[-1].json["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert "".join(d.get("reasoning_content", "") for d in deltas) == "First, consider the sky."
    assert "".join(d.get("content") or "" for d in deltas) == "It is blue."
    blocks = [b for d in deltas for b in d.get("thinking_blocks", [])]
    assert blocks == [{"type": "thinking", "thinking": "First, consider the sky.", "signature": "c2ln"}]


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_type", "message", "cls"),
    [
        (529, "overloaded_error", "Overloaded", errors.ServiceUnavailableError),
        (500, "api_error", "Internal server error", errors.InternalServerError),
        (404, "not_found_error", "model: claude-nope", errors.NotFoundError),
        (403, "permission_error", "not allowed", errors.PermissionDeniedError),
        (400, "invalid_request_error", "prompt is too long: 208310 tokens > 200000 maximum", None),
    ],
)
async def test_upstream_errors_are_mapped(
    http_client: HttpClient,
    fake: FakeAnthropic,
    deployment: Deployment,
    status: int,
    error_type: str,
    message: str,
    cls: type[errors.OpenAIError] | None,
) -> None:
    expected = cls or errors.ContextWindowExceededError
    for stream in (False, True):
        fake.enqueue(AnthropicReply.failure(status, error_type, message))
        with pytest.raises(expected) as info:
            if stream:
                await collect(adapter.chat_stream(http_client, call(deployment, {**ask(), "stream": True})))
            else:
                await adapter.chat(http_client, call(deployment, ask()))
        error = info.value
        assert type(error) is expected
        assert error.upstream_status == status
        assert (error.llm_provider, error.model, error.deployment_id) == ("anthropic", MODEL, deployment.id)
        assert message in error.message


async def test_overloaded_is_retryable(
    http_client: HttpClient, fake: FakeAnthropic, deployment: Deployment
) -> None:
    fake.enqueue(AnthropicReply.failure(529, "overloaded_error", "Overloaded"))
    with pytest.raises(errors.ServiceUnavailableError) as info:
        await adapter.chat(http_client, call(deployment, ask()))
    assert info.value.retryable
    assert info.value.cools_down


async def test_rate_limit_carries_retry_after(
    http_client: HttpClient, fake: FakeAnthropic, deployment: Deployment
) -> None:
    fake.enqueue(
        AnthropicReply.failure(429, "rate_limit_error", "Number of requests", headers={"retry-after": "12"})
    )
    with pytest.raises(errors.RateLimitError) as info:
        await adapter.chat(http_client, call(deployment, ask()))
    assert info.value.retry_after == 12.0
    assert info.value.retryable


async def test_wrong_key_is_an_authentication_error_that_does_not_leak_the_key(
    http_client: HttpClient, fake: FakeAnthropic, make_deployment: MakeDeployment
) -> None:
    wrong = "sk-ant-wrong-key-99999999"
    deployment = make_deployment("anthropic", MODEL, api_base=fake.base_url, api_key=wrong)
    with pytest.raises(errors.AuthenticationError) as info:
        await adapter.chat(http_client, call(deployment, ask()))
    assert info.value.upstream_status == 401
    for text in (str(info.value), repr(info.value), orjson.dumps(info.value.to_dict()).decode()):
        assert wrong not in text


async def test_missing_key_fails_before_any_request(
    http_client: HttpClient, fake: FakeAnthropic, make_deployment: MakeDeployment
) -> None:
    deployment = make_deployment("anthropic", MODEL, api_base=fake.base_url)
    with pytest.raises(errors.AuthenticationError) as info:
        await adapter.chat(http_client, call(deployment, ask()))
    assert "ANTHROPIC_API_KEY" in info.value.message
    assert fake.requests == []


async def test_key_from_the_environment(
    http_client: HttpClient,
    fake: FakeAnthropic,
    make_deployment: MakeDeployment,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    deployment = make_deployment("anthropic", MODEL, api_base=fake.base_url)
    await adapter.chat(http_client, call(deployment, ask()))
    assert fake.requests[-1].headers["x-api-key"] == KEY


async def test_in_band_stream_error_is_raised_mid_stream(
    http_client: HttpClient, fake: FakeAnthropic, deployment: Deployment
) -> None:
    plan = StreamPlan(error_after=4, error_event=error_body("overloaded_error", "Overloaded"))
    fake.enqueue(AnthropicReply.text("a long answer that will not finish", stream=plan))
    received = []
    with pytest.raises(errors.ServiceUnavailableError) as info:
        async for chunk in adapter.chat_stream(http_client, call(deployment, {**ask(), "stream": True})):
            received.append(chunk)
    assert received  # the error came after the first chunks, not before
    assert info.value.deployment_id == deployment.id


async def test_cut_stream_is_a_connection_error(
    http_client: HttpClient, fake: FakeAnthropic, deployment: Deployment
) -> None:
    fake.enqueue(AnthropicReply.text("a long answer that will be cut", stream=StreamPlan(cut_after=5)))
    with pytest.raises(errors.APIConnectionError) as info:
        await collect(adapter.chat_stream(http_client, call(deployment, {**ask(), "stream": True})))
    assert info.value.retryable
    assert info.value.deployment_id == deployment.id


async def test_stream_ending_without_message_stop_is_incomplete(
    http_client: HttpClient, fake: FakeAnthropic, deployment: Deployment
) -> None:
    fake.enqueue(AnthropicReply.text("an answer that just stops", stream=StreamPlan(end_after=5)))
    with pytest.raises(errors.APIConnectionError):
        await collect(adapter.chat_stream(http_client, call(deployment, {**ask(), "stream": True})))


async def test_error_before_the_first_chunk_is_raised_on_first_read(
    http_client: HttpClient, fake: FakeAnthropic, deployment: Deployment
) -> None:
    fake.enqueue(AnthropicReply.failure(529, "overloaded_error", "Overloaded"))
    stream = adapter.chat_stream(http_client, call(deployment, {**ask(), "stream": True}))
    with pytest.raises(errors.ServiceUnavailableError):
        await anext(stream)


# --- parameters Anthropic cannot take ------------------------------------------------------------


async def test_unsupported_parameter_is_a_400_without_drop_params(
    http_client: HttpClient, fake: FakeAnthropic, deployment: Deployment
) -> None:
    with pytest.raises(errors.UnsupportedParamsError) as info:
        await adapter.chat(http_client, call(deployment, {**ask(), "logit_bias": {"1": 5}}))
    assert info.value.status_code == 400
    assert info.value.param == "logit_bias"
    assert "anthropic" in info.value.message
    assert info.value.deployment_id == deployment.id
    assert fake.requests == []  # refused before anything was sent


@pytest.mark.parametrize("where", ["request", "deployment"])
async def test_drop_params_drops_them(
    http_client: HttpClient, fake: FakeAnthropic, deployment: Deployment, where: str
) -> None:
    body = {
        **ask(),
        "n": 2,
        "seed": 42,
        "presence_penalty": 0.4,
        "frequency_penalty": 0.2,
        "temperature": 0.5,
    }
    if where == "request":
        await adapter.chat(http_client, call(deployment, body, drop_params=True))
    else:
        await adapter.chat(http_client, call(replace(deployment, drop_params=True), body))
    sent = fake.requests[-1].json
    assert not {"n", "seed", "presence_penalty", "frequency_penalty"} & set(sent)
    assert sent["temperature"] == 0.5


async def test_models_that_refuse_sampling_parameters(
    http_client: HttpClient, fake: FakeAnthropic, make_deployment: MakeDeployment
) -> None:
    deployment = make_deployment("anthropic", "claude-opus-4-7", api_base=fake.base_url, api_key=KEY)
    with pytest.raises(errors.UnsupportedParamsError):
        await adapter.chat(http_client, call(deployment, {**ask(), "temperature": 0.2}))
    await adapter.chat(http_client, call(deployment, {**ask(), "temperature": 0.2}, drop_params=True))
    assert "temperature" not in fake.requests[-1].json


async def test_forwarded_headers_cannot_replace_the_key(
    http_client: HttpClient, fake: FakeAnthropic, deployment: Deployment
) -> None:
    headers = {"anthropic-beta": "context-1m-2025-08-07", "x-api-key": "sk-ant-someone-else"}
    await adapter.chat(http_client, call(deployment, ask(), extra_headers=headers))
    sent = fake.requests[-1].headers
    assert sent["anthropic-beta"] == "context-1m-2025-08-07"
    assert sent["x-api-key"] == KEY


async def test_unprepared_deployment_is_prepared_on_the_fly(
    http_client: HttpClient, fake: FakeAnthropic
) -> None:
    deployment = Deployment(
        id="wild:claude",
        group="anthropic/claude",
        provider="anthropic",
        model=MODEL,
        litellm_model="anthropic/*",
        api_base=fake.base_url,
        api_key=KEY,
    )
    response = await adapter.chat(http_client, call(deployment, ask("hi")))
    assert response.body["choices"][0]["message"]["content"] == "echo: hi"


async def test_deployment_parameters_apply_to_every_call(
    http_client: HttpClient, fake: FakeAnthropic, make_deployment: MakeDeployment
) -> None:
    extra = {
        "temperature": 0.1,
        "top_p": 0.5,
        "additional_drop_params": ["top_p"],
        "extra_body": {"service_tier": "standard_only"},
        "headers": {"anthropic-beta": "prompt-caching-2024-07-31"},
    }
    deployment = make_deployment("anthropic", MODEL, api_base=fake.base_url, api_key=KEY, extra=extra)
    await adapter.chat(http_client, call(deployment, ask()))
    sent = fake.requests[-1]
    assert sent.json["temperature"] == 0.1
    assert "top_p" not in sent.json
    assert sent.json["service_tier"] == "standard_only"
    assert sent.headers["anthropic-beta"] == "prompt-caching-2024-07-31"
    await adapter.chat(http_client, call(deployment, {**ask(), "temperature": 0.7, "top_p": 0.9}))
    assert fake.requests[-1].json["temperature"] == 0.7  # the client's own value wins
    assert "top_p" not in fake.requests[-1].json


async def test_cache_control_injection_points_reach_the_messages_api(
    http_client: HttpClient, fake: FakeAnthropic, make_deployment: MakeDeployment
) -> None:
    points = [
        {"location": "message", "role": "system"},
        {"location": "message", "index": -1, "control": {"type": "ephemeral", "ttl": "1h"}},
    ]
    deployment = make_deployment(
        "anthropic",
        MODEL,
        api_base=fake.base_url,
        api_key=KEY,
        extra={"cache_control_injection_points": points},
    )
    body = {
        "messages": [
            {"role": "system", "content": "long shared instructions"},
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "text", "text": "second"}]},
        ]
    }
    await adapter.chat(http_client, call(deployment, body))
    sent = fake.requests[-1].json
    assert sent["system"] == [
        {"type": "text", "text": "long shared instructions", "cache_control": {"type": "ephemeral"}}
    ]
    assert sent["messages"][-1]["content"] == [
        {"type": "text", "text": "second", "cache_control": {"type": "ephemeral", "ttl": "1h"}}
    ]
    assert "cache_control" not in str(sent["messages"][0])
    assert "cache_control_injection_points" not in sent
    # without the setting nothing is injected
    await adapter.chat(
        http_client, call(make_deployment("anthropic", MODEL, api_base=fake.base_url, api_key=KEY), body)
    )
    assert "cache_control" not in str(fake.requests[-1].json)


async def test_stream_always_ends_with_usage_so_the_router_meters_it(
    http_client: HttpClient, fake: FakeAnthropic, deployment: Deployment
) -> None:
    # the client did not ask for usage: the adapter still sends it (the router's relay hides it)
    chunks = await collect(adapter.chat_stream(http_client, call(deployment, {**ask(), "stream": True})))
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["prompt_tokens"] > 0
    assert chunks[-1]["usage"]["completion_tokens"] > 0


async def test_native_request_headers_and_body(
    http_client: HttpClient, fake: FakeAnthropic, deployment: Deployment
) -> None:
    """A native request: the client's version and betas (any case) win over the deployment's,
    its own credentials never reach the upstream, and the client's parsed body is left as it was
    (the front door hands it over without a copy)."""
    body = {"model": "claude", "max_tokens": 16, "stream": False, **ask(), "metadata": {"user_id": "u-1"}}
    before = orjson.loads(orjson.dumps(body))
    headers = {
        "Anthropic-Version": "2099-01-01",
        "anthropic-beta": "context-1m-2025-08-07",
        "Authorization": "Bearer sk-routerd-client",
        "x-api-key": "sk-ant-someone-else",
    }
    await adapter.messages(http_client, UpstreamRequest(deployment, body, 10.0, extra_headers=headers))
    sent = fake.requests[-1]
    assert sent.headers["anthropic-version"] == "2099-01-01"
    assert sent.headers["anthropic-beta"] == "context-1m-2025-08-07"
    assert sent.headers["x-api-key"] == KEY
    assert "authorization" not in {name.lower() for name in sent.headers}
    assert sent.json["model"] == MODEL
    assert sent.json["metadata"] == {"user_id": "u-1"}
    assert "stream" not in sent.json
    assert body == before
