"""``cohere/``: v2 translation on stored payloads, and chat / stream / embed / rerank against the fake."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest

from routerd import errors
from routerd.config.table import Deployment
from routerd.http import HttpClient
from routerd.providers import cohere_translate as translate
from routerd.providers.base import UpstreamRequest, get_adapter
from routerd.providers.cohere import CohereAdapter
from routerd.testing.cohere_fake import CohereReply, FakeCohere
from routerd.testing.fake_http import StreamPlan

KEY = "cohere-test-key-0123456789"
MakeDeployment = Callable[..., Deployment]
adapter = CohereAdapter()


@pytest.fixture
async def fake() -> AsyncIterator[FakeCohere]:
    async with FakeCohere(api_key=KEY) as server:
        yield server


@pytest.fixture
def deployment(fake: FakeCohere, make_deployment: MakeDeployment) -> Deployment:
    return make_deployment("cohere", "command-r-plus", api_key=KEY, api_base=fake.base_url)


def call(deployment: Deployment, body: dict[str, Any]) -> UpstreamRequest:
    return UpstreamRequest(deployment=deployment, body={"model": "g", **body}, timeout=10.0)


def ask(text: str = "hello") -> dict[str, Any]:
    return {"messages": [{"role": "system", "content": "brief"}, {"role": "user", "content": text}]}


def test_request_translation() -> None:
    body = {
        "messages": [
            {"role": "developer", "content": "sys"},
            {"role": "user", "content": "q"},
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "r"},
        ],
        "top_p": 0.5,
        "top_k": 3,
        "stop": ["x"],
        "max_completion_tokens": 20,
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
        "tool_choice": "required",
        "response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "object"}}},
    }
    assert translate.to_cohere_chat(body, "command-r", stream=False) == {
        "model": "command-r",
        "messages": [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": "q"},
            {"role": "assistant", "tool_calls": body["messages"][2]["tool_calls"]},
            {"role": "tool", "tool_call_id": "c1", "content": "r"},
        ],
        "max_tokens": 20,
        "p": 0.5,
        "k": 3,
        "stop_sequences": ["x"],
        "tools": body["tools"],
        "tool_choice": "REQUIRED",
        "response_format": {"type": "json_object", "json_schema": {"type": "object"}},
    }


def test_response_translation() -> None:
    stored = {
        "id": "abc",
        "finish_reason": "MAX_TOKENS",
        "message": {"role": "assistant", "content": [{"type": "text", "text": "hi"}]},
        "usage": {
            "billed_units": {"input_tokens": 5, "output_tokens": 2},
            "tokens": {"input_tokens": 70, "output_tokens": 2},
        },
    }
    out = translate.to_openai_completion(stored, model="m", created=1)
    assert out["choices"][0]["message"] == {"role": "assistant", "content": "hi"}
    assert out["choices"][0]["finish_reason"] == "length"
    assert (out["usage"]["prompt_tokens"], out["usage"]["completion_tokens"]) == (70, 2)


def test_registered_with_its_alias() -> None:
    assert isinstance(get_adapter("cohere_chat"), CohereAdapter)


async def test_chat(http_client: HttpClient, fake: FakeCohere, deployment: Deployment) -> None:
    response = await adapter.chat(http_client, call(deployment, ask("hey")))
    assert fake.requests[-1].path == "/v2/chat"
    assert response.body["choices"][0]["message"]["content"] == "echo: hey"
    assert response.body["usage"]["total_tokens"] == 13


async def test_unsupported_param_is_a_400_unless_dropped(
    http_client: HttpClient, fake: FakeCohere, deployment: Deployment
) -> None:
    with pytest.raises(errors.UnsupportedParamsError, match="logit_bias"):
        await adapter.chat(http_client, call(deployment, {**ask(), "logit_bias": {"1": 2}}))
    assert fake.requests == []
    request = UpstreamRequest(
        deployment=deployment, body={**ask(), "logit_bias": {"1": 2}}, timeout=10.0, drop_params=True
    )
    await adapter.chat(http_client, request)
    assert "logit_bias" not in fake.requests[-1].json


async def test_tool_call(http_client: HttpClient, fake: FakeCohere, deployment: Deployment) -> None:
    fake.enqueue(CohereReply.tool_call("get_weather", {"city": "Rome"}))
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    response = await adapter.chat(http_client, call(deployment, {**ask(), "tools": tools}))
    choice = response.body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert orjson.loads(choice["message"]["tool_calls"][0]["function"]["arguments"]) == {"city": "Rome"}


@pytest.mark.parametrize(
    ("status", "message", "cls"),
    [
        (429, "You are using a Trial key, which is limited", errors.RateLimitError),
        (401, "invalid api token", errors.AuthenticationError),
        (400, "too many tokens: size limit exceeded", errors.ContextWindowExceededError),
        (503, "service unavailable", errors.ServiceUnavailableError),
    ],
)
async def test_errors_are_mapped(
    http_client: HttpClient,
    fake: FakeCohere,
    deployment: Deployment,
    status: int,
    message: str,
    cls: type[errors.OpenAIError],
) -> None:
    fake.enqueue(CohereReply.failure(status, message))
    with pytest.raises(cls) as caught:
        await adapter.chat(http_client, call(deployment, ask()))
    assert caught.value.upstream_status == status


async def test_wrong_key_is_an_authentication_error_without_the_key(
    http_client: HttpClient, fake: FakeCohere, make_deployment: MakeDeployment
) -> None:
    wrong = make_deployment("cohere", "command-r", api_key="wrong-key-abcdefgh", api_base=fake.base_url)
    with pytest.raises(errors.AuthenticationError) as caught:
        await adapter.chat(http_client, call(wrong, ask()))
    assert "wrong-key-abcdefgh" not in str(caught.value)


async def test_stream_text_tools_and_usage(
    http_client: HttpClient, fake: FakeCohere, deployment: Deployment
) -> None:
    body = {**ask("streamed text"), "stream": True, "stream_options": {"include_usage": True}}
    chunks = [c async for c in adapter.chat_stream(http_client, call(deployment, body))]
    assert fake.requests[-1].json["stream"] is True
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "echo: streamed text"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"]["prompt_tokens"] == 9

    fake.enqueue(CohereReply.tool_call("lookup", {"q": "a long query value"}))
    chunks = [c async for c in adapter.chat_stream(http_client, call(deployment, {**ask(), "stream": True}))]
    calls = [
        c["choices"][0]["delta"]["tool_calls"][0]
        for c in chunks
        if c["choices"] and c["choices"][0]["delta"].get("tool_calls")
    ]
    assert calls[0]["function"]["name"] == "lookup"
    assert orjson.loads("".join(c["function"]["arguments"] for c in calls)) == {"q": "a long query value"}
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    # usage always ends the stream (the router meters it and hides it unless the client asked)
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 4


async def test_cut_stream_is_a_connection_error(
    http_client: HttpClient, fake: FakeCohere, deployment: Deployment
) -> None:
    fake.enqueue(CohereReply(stream=StreamPlan(end_after=3)))
    with pytest.raises(errors.APIConnectionError, match="ended unexpectedly"):
        _ = [c async for c in adapter.chat_stream(http_client, call(deployment, {**ask(), "stream": True}))]


async def test_embed(http_client: HttpClient, fake: FakeCohere, make_deployment: MakeDeployment) -> None:
    embed = make_deployment("cohere", "embed-english-v3.0", api_key=KEY, api_base=fake.base_url)
    response = await adapter.embedding(http_client, call(embed, {"input": ["one two", "three"]}))
    assert fake.requests[-1].path == "/v2/embed"
    assert fake.requests[-1].json["input_type"] == "search_document"
    assert [d["index"] for d in response.body["data"]] == [0, 1]
    assert response.body["usage"]["prompt_tokens"] == 3


async def test_rerank(http_client: HttpClient, fake: FakeCohere, make_deployment: MakeDeployment) -> None:
    rerank = make_deployment("cohere", "rerank-v3.5", api_key=KEY, api_base=fake.base_url)
    body = {
        "query": "capital of france",
        "documents": ["Berlin is in Germany", "Paris is the capital of France"],
        "top_n": 1,
    }
    response = await adapter.rerank(http_client, call(rerank, body))
    assert fake.requests[-1].path == "/v2/rerank"
    assert response.body["results"][0]["index"] == 1
    assert len(response.body["results"]) == 1
    with pytest.raises(errors.BadRequestError, match="documents"):
        await adapter.rerank(http_client, call(rerank, {"query": "q"}))


async def test_deployment_defaults_and_extra_body(
    http_client: HttpClient, fake: FakeCohere, make_deployment: MakeDeployment
) -> None:
    tuned = make_deployment(
        "cohere",
        "command-r",
        api_key=KEY,
        api_base=fake.base_url,
        extra={"top_k": 4, "extra_body": {"safety_mode": "STRICT"}},
    )
    await adapter.chat(http_client, call(tuned, ask()))
    assert fake.requests[-1].json["k"] == 4
    assert fake.requests[-1].json["safety_mode"] == "STRICT"
