"""The offline mock/ provider: OpenAI-exact shapes, usage, tool calls, and deterministic faults."""

from __future__ import annotations

import base64
import math
import random
import struct
from typing import Any

import pytest
from openai.types import Completion, CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from routerd import errors
from routerd.errors import ConfigError
from routerd.providers.base import get_adapter
from routerd.providers.mock import MockAdapter, parse_mock_response
from routerd.tokens import count_prompt_tokens, count_request_tokens, estimate_tokens

CHAT = {
    "model": "public",
    "messages": [{"role": "system", "content": "Be nice."}, {"role": "user", "content": "Hello there, mock"}],
}


@pytest.fixture
def mock(fake_clock) -> MockAdapter:
    return MockAdapter(sleep=fake_clock.sleep, clock=fake_clock.time)


@pytest.fixture
def dep(make_deployment):
    def build(**fields: Any):
        fields.setdefault("id", "mock-1")
        return make_deployment("mock", "gpt-4o-mock", **fields)

    return build


async def collect(stream) -> list[dict[str, Any]]:
    return [chunk async for chunk in stream]


# --- answers -------------------------------------------------------------------------------------


async def test_echo_with_realistic_usage(mock, dep, make_request, fake_clock) -> None:
    response = await mock.chat(None, make_request(dep(), CHAT))  # type: ignore[arg-type]
    body = response.body
    ChatCompletion.model_validate(body)
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    assert body["model"] == "gpt-4o-mock"
    assert body["created"] == int(fake_clock.time())
    assert body["choices"][0]["message"]["content"] == "Hello there, mock"
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["prompt_tokens"] == count_request_tokens("chat", CHAT)
    assert body["usage"]["completion_tokens"] == estimate_tokens("Hello there, mock")
    assert (
        body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]
    )


async def test_registered_adapter_answers_offline(make_deployment, make_request) -> None:
    adapter = get_adapter("mock")
    response = await adapter.chat(None, make_request(make_deployment("mock", "m", mock_response="Hi!"), CHAT))  # type: ignore[arg-type]
    assert response.body["choices"][0]["message"]["content"] == "Hi!"


async def test_request_mock_response_beats_the_deployment_one(mock, dep, make_request) -> None:
    deployment = dep(mock_response="from the config")
    assert (await mock.chat(None, make_request(deployment, CHAT))).body["choices"][0]["message"][
        "content"
    ] == "from the config"  # type: ignore[arg-type]
    body = {**CHAT, "mock_response": "from the request"}
    assert (await mock.chat(None, make_request(deployment, body))).body["choices"][0]["message"][
        "content"
    ] == "from the request"  # type: ignore[arg-type]
    extra_only = dep(extra={"mock_response": "from extra"})
    assert (await mock.chat(None, make_request(extra_only, CHAT))).body["choices"][0]["message"][
        "content"
    ] == "from extra"  # type: ignore[arg-type]


async def test_n_choices(mock, dep, make_request) -> None:
    body = (await mock.chat(None, make_request(dep(mock_response="two words"), {**CHAT, "n": 3}))).body  # type: ignore[arg-type]
    assert [c["index"] for c in body["choices"]] == [0, 1, 2]
    assert body["usage"]["completion_tokens"] == 3 * estimate_tokens("two words")


async def test_max_tokens_and_stop(mock, dep, make_request) -> None:
    deployment = dep(mock_response="one two three four five six seven eight")
    limited = (await mock.chat(None, make_request(deployment, {**CHAT, "max_tokens": 3}))).body  # type: ignore[arg-type]
    content = limited["choices"][0]["message"]["content"]
    # as many whole words as fit in 3 estimated tokens
    assert content == "one two" and estimate_tokens(content) <= 3 < estimate_tokens("one two three")
    assert limited["choices"][0]["finish_reason"] == "length"
    assert limited["usage"]["completion_tokens"] == estimate_tokens(content)
    stopped = (await mock.chat(None, make_request(deployment, {**CHAT, "stop": [" four", "seven"]}))).body  # type: ignore[arg-type]
    assert stopped["choices"][0]["message"]["content"] == "one two three"
    assert stopped["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize(
    "mock_response",
    [
        [{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "call_1"}],
        {
            "tool_calls": [
                {
                    "type": "function",
                    "id": "call_1",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ]
        },
    ],
)
async def test_tool_calls(mock, dep, make_request, mock_response) -> None:
    deployment = dep(mock_response=mock_response)
    body = (await mock.chat(None, make_request(deployment, CHAT))).body  # type: ignore[arg-type]
    ChatCompletion.model_validate(body)
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    assert choice["message"]["tool_calls"] == [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
        }
    ]
    chunks = await collect(mock.chat_stream(None, make_request(deployment, CHAT)))  # type: ignore[arg-type]
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
    calls = [d["tool_calls"][0] for c in chunks if (d := c["choices"][0]["delta"]).get("tool_calls")]
    assert calls[0]["id"] == "call_1" and calls[0]["function"]["name"] == "get_weather"
    assert "".join(call["function"]["arguments"] for call in calls) == '{"city":"Paris"}'
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_mock_response_formats() -> None:
    answer = parse_mock_response(
        {"content": "Let me check.", "tool_calls": [{"name": "f"}], "finish_reason": "stop"}
    )
    assert answer.content == "Let me check." and answer.tool_calls[0].arguments == "{}"
    assert answer.finish_reason == "stop"
    assert (
        parse_mock_response(({"name": "f", "arguments": "{}"},)).finish_reason == "tool_calls"
    )  # frozen list
    assert parse_mock_response(42).content == "42"
    for bad in ({"content": 5}, [{"arguments": "{}"}], [1], None):
        with pytest.raises(ValueError):
            parse_mock_response(bad)


async def test_invalid_mock_response(mock, dep, make_request, make_deployment) -> None:
    with pytest.raises(errors.BadRequestError):
        await mock.chat(None, make_request(dep(), {**CHAT, "mock_response": [{"no": "name"}]}))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="tool call 0 needs a name"):
        make_deployment("mock", "m", mock_response=[{"arguments": {}}])


# --- streams -------------------------------------------------------------------------------------


async def test_stream_shapes(mock, dep, make_request) -> None:
    deployment = dep(mock_response="The quick brown fox")
    plain = await collect(mock.chat_stream(None, make_request(deployment, CHAT)))  # type: ignore[arg-type]
    for chunk in plain:
        ChatCompletionChunk.model_validate(chunk)
        assert "usage" not in chunk
    assert plain[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert [c["choices"][0]["delta"].get("content") for c in plain[1:-1]] == [
        "The",
        " quick",
        " brown",
        " fox",
    ]
    assert plain[-1]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert len({c["id"] for c in plain}) == 1

    with_usage = await collect(
        mock.chat_stream(None, make_request(deployment, {**CHAT, "stream_options": {"include_usage": True}}))
    )  # type: ignore[arg-type]
    assert all("usage" in c for c in with_usage)
    assert all(c["usage"] is None for c in with_usage[:-1])
    assert with_usage[-1]["choices"] == []
    assert with_usage[-1]["usage"]["completion_tokens"] == estimate_tokens("The quick brown fox")


async def test_stream_with_n_choices(mock, dep, make_request) -> None:
    chunks = await collect(mock.chat_stream(None, make_request(dep(mock_response="a b"), {**CHAT, "n": 2})))  # type: ignore[arg-type]
    for index in (0, 1):
        mine = [c["choices"][0] for c in chunks if c["choices"][0]["index"] == index]
        assert mine[0]["delta"]["role"] == "assistant"
        assert "".join(c["delta"].get("content") or "" for c in mine) == "a b"
        assert mine[-1]["finish_reason"] == "stop"


# --- completions and embeddings ------------------------------------------------------------------


async def test_text_completion(mock, dep, make_request) -> None:
    body = {"model": "public", "prompt": ["Say this", "Say that"], "n": 2, "echo": True}
    result = (await mock.completion(None, make_request(dep(mock_response=" done"), body))).body  # type: ignore[arg-type]
    Completion.model_validate(result)
    assert [c["text"] for c in result["choices"]] == [
        "Say this done",
        "Say this done",
        "Say that done",
        "Say that done",
    ]
    assert [c["index"] for c in result["choices"]] == [0, 1, 2, 3]
    echo_default = (await mock.completion(None, make_request(dep(), {"prompt": "repeat me"}))).body  # type: ignore[arg-type]
    assert echo_default["choices"][0]["text"] == "repeat me"
    tokens = (await mock.completion(None, make_request(dep(), {"prompt": [101, 102, 103]}))).body  # type: ignore[arg-type]
    assert tokens["usage"]["prompt_tokens"] == 3


async def test_text_completion_stream(mock, dep, make_request) -> None:
    body = {"prompt": "one two", "stream": True, "stream_options": {"include_usage": True}}
    chunks = await collect(mock.completion_stream(None, make_request(dep(), body)))  # type: ignore[arg-type]
    assert all(c["object"] == "text_completion" for c in chunks)
    assert "".join(c["choices"][0]["text"] for c in chunks if c["choices"]) == "one two"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0


async def test_embeddings_are_deterministic_unit_vectors(mock, dep, make_request) -> None:
    deployment = dep(extra={"mock_embedding_dim": 16})
    first = (await mock.embedding(None, make_request(deployment, {"input": ["alpha", "beta"]}))).body  # type: ignore[arg-type]
    again = (await mock.embedding(None, make_request(deployment, {"input": "alpha"}))).body  # type: ignore[arg-type]
    CreateEmbeddingResponse.model_validate(first)
    alpha, beta = (item["embedding"] for item in first["data"])
    assert len(alpha) == 16 and alpha == again["data"][0]["embedding"] and alpha != beta
    assert math.isclose(sum(v * v for v in alpha), 1.0)
    assert first["usage"]["prompt_tokens"] == count_prompt_tokens(["alpha", "beta"]) > 0

    sized = (await mock.embedding(None, make_request(deployment, {"input": "alpha", "dimensions": 4}))).body  # type: ignore[arg-type]
    assert len(sized["data"][0]["embedding"]) == 4
    packed = (
        await mock.embedding(None, make_request(deployment, {"input": "alpha", "encoding_format": "base64"}))
    ).body  # type: ignore[arg-type]
    decoded = struct.unpack("<16f", base64.b64decode(packed["data"][0]["embedding"]))
    assert all(math.isclose(a, b, rel_tol=1e-6) for a, b in zip(decoded, alpha, strict=True))
    with pytest.raises(errors.BadRequestError):
        await mock.embedding(None, make_request(deployment, {"input": "x", "dimensions": 0}))  # type: ignore[arg-type]


# --- faults --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "cls"),
    [
        ({"mock_error_status": 429}, errors.RateLimitError),
        ({"mock_error_status": 500}, errors.BadGatewayError),
        ({"mock_error_status": 503}, errors.ServiceUnavailableError),
        ({"mock_error_status": 401}, errors.AuthenticationError),
        (
            {"mock_error_status": 400, "mock_error_code": "context_length_exceeded"},
            errors.ContextWindowExceededError,
        ),
        (
            {"mock_error_status": 400, "mock_error_code": "content_policy_violation"},
            errors.ContentPolicyViolationError,
        ),
    ],
)
async def test_error_status_raises_the_real_upstream_class(mock, dep, make_request, extra, cls) -> None:
    deployment = dep(extra=extra)
    with pytest.raises(errors.OpenAIError) as info:
        await mock.chat(None, make_request(deployment, CHAT))  # type: ignore[arg-type]
    assert type(info.value) is cls
    assert (info.value.llm_provider, info.value.deployment_id, info.value.upstream_status) == (
        "mock",
        "mock-1",
        extra["mock_error_status"],
    )


async def test_retry_after_and_message(mock, dep, make_request) -> None:
    deployment = dep(
        extra={"mock_error_status": 429, "mock_retry_after": 2.5, "mock_error_message": "slow down"}
    )
    with pytest.raises(errors.RateLimitError) as info:
        await mock.chat(None, make_request(deployment, CHAT))  # type: ignore[arg-type]
    assert info.value.retry_after == 2.5
    assert info.value.message == "slow down"
    assert info.value.response_headers() == {"retry-after": "3"}


async def test_error_rate_is_deterministic_per_seed(mock, dep, make_request) -> None:
    async def outcomes(deployment) -> list[bool]:
        failed = []
        for _ in range(40):
            try:
                await mock.chat(None, make_request(deployment, CHAT))  # type: ignore[arg-type]
                failed.append(False)
            except errors.ServiceUnavailableError:
                failed.append(True)
        return failed

    extra = {"mock_error_status": 503, "mock_error_rate": 0.3, "mock_seed": 7}
    first = await outcomes(dep(extra=extra))
    second = await outcomes(dep(extra=extra))  # a freshly compiled deployment replays the same draws
    rng = random.Random(7)
    assert first == second == [rng.random() < 0.3 for _ in range(40)]
    assert 0 < sum(first) < 40
    # without mock_seed the seed comes from the deployment id: stable, and different per deployment
    by_id = await outcomes(dep(id="mock-a", extra={"mock_error_status": 503, "mock_error_rate": 0.5}))
    assert by_id == await outcomes(dep(id="mock-a", extra={"mock_error_status": 503, "mock_error_rate": 0.5}))


async def test_wildcard_deployments_keep_their_error_sequence(mock, make_deployment, make_request) -> None:
    extra = {"mock_error_status": 503, "mock_error_rate": 0.5, "mock_seed": 3}
    deployment = make_deployment("mock", "m", id="wild:m", extra=extra, prepare=False)
    results = []
    for _ in range(12):
        try:
            await mock.chat(None, make_request(deployment, CHAT))  # type: ignore[arg-type]
            results.append(False)
        except errors.ServiceUnavailableError:
            results.append(True)
    rng = random.Random(3)
    assert results == [rng.random() < 0.5 for _ in range(12)]


async def test_latency_and_chunk_delay_use_the_injected_sleep(mock, dep, make_request, fake_clock) -> None:
    deployment = dep(mock_response="a b c", extra={"mock_latency_ms": 250, "mock_stream_chunk_delay_ms": 20})
    await mock.chat(None, make_request(deployment, CHAT))  # type: ignore[arg-type]
    assert fake_clock.sleeps == [0.25]
    fake_clock.sleeps.clear()
    chunks = await collect(mock.chat_stream(None, make_request(deployment, CHAT)))  # type: ignore[arg-type]
    assert fake_clock.sleeps == [0.25] + [0.02] * (len(chunks) - 1)


async def test_hang_past_the_timeout_is_a_timeout(mock, dep, make_request, fake_clock) -> None:
    deployment = dep(extra={"mock_hang": True})
    with pytest.raises(errors.Timeout) as info:
        await mock.chat(None, make_request(deployment, CHAT, timeout=30))  # type: ignore[arg-type]
    assert fake_clock.sleeps == [30]
    assert info.value.deployment_id == "mock-1"
    stream = mock.chat_stream(None, make_request(deployment, CHAT, timeout=5))  # type: ignore[arg-type]
    with pytest.raises(errors.Timeout):
        await anext(stream)
    # a hang shorter than the timeout is only a slow answer
    slow = dep(extra={"mock_hang": 2})
    response = await mock.chat(None, make_request(slow, CHAT, timeout=30))  # type: ignore[arg-type]
    assert response.body["choices"] and fake_clock.sleeps[-1] == 2


async def test_stream_errors_come_before_the_first_chunk(mock, dep, make_request) -> None:
    stream = mock.chat_stream(None, make_request(dep(extra={"mock_error_status": 429}), CHAT))  # type: ignore[arg-type]
    with pytest.raises(errors.RateLimitError):
        await anext(stream)


async def test_stream_cut_after(mock, dep, make_request) -> None:
    deployment = dep(mock_response="one two three four", extra={"mock_stream_cut_after": 2})
    received = []
    with pytest.raises(errors.APIConnectionError) as info:
        async for chunk in mock.chat_stream(None, make_request(deployment, CHAT)):  # type: ignore[arg-type]
            received.append(chunk)
    assert len(received) == 2
    assert info.value.retryable and info.value.llm_provider == "mock"


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ({"mock_error_status": 200}, "mock_error_status"),
        ({"mock_error_status": "often"}, "mock_error_status"),
        ({"mock_error_rate": 1.5}, "mock_error_rate"),
        ({"mock_latency_ms": -1}, "mock latency"),
        ({"mock_stream_cut_after": True}, "mock_stream_cut_after"),
    ],
)
def test_invalid_settings_name_the_key(make_deployment, extra, key) -> None:
    with pytest.raises(ConfigError, match=key):
        make_deployment("mock", "m", extra=extra)
