"""completion() and friends end to end against fake upstreams: what reaches the upstream, retries,
fallbacks, timeouts, caching of on-the-fly routers, and the async variants."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import BaseModel

import routerd
from routerd.sdk import (
    acompletion,
    aembedding,
    atext_completion,
    completion,
    embedding,
)
from routerd.sdk.engine import router_cache
from routerd.sdk.loop import shared_http
from routerd.testing.openai_fake import Reply
from tests.sdk.conftest import OPENAI_KEY

HI = [{"role": "user", "content": "hi"}]


class CalendarEvent(BaseModel):
    name: str
    date: str
    participants: list[str]


def test_body_parameters_headers_and_response_format_reach_the_upstream(openai_env: Any) -> None:
    completion(
        model="gpt-4o",
        messages=HI,
        response_format=CalendarEvent,
        extra_headers={"X-Trace-Id": "abc"},
        reasoning_effort="low",
        thinking={"type": "enabled", "budget_tokens": 1024},
        seed=7,
        user="u-1",
        metadata={"k": "v"},  # a routing field: the router reads it, the upstream never sees it
        caching=False,  # LiteLLM bookkeeping: dropped
        extra_body={"service_tier": "flex"},
    )
    sent = openai_env.requests[-1]
    body = sent.json
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["name"] == "CalendarEvent"
    assert body["reasoning_effort"] == "low" and body["thinking"]["budget_tokens"] == 1024
    assert body["seed"] == 7 and body["user"] == "u-1" and body["service_tier"] == "flex"
    assert "metadata" not in body and "caching" not in body and "mock_response" not in body
    assert sent.headers["x-trace-id"] == "abc"


def test_keys_from_the_environment_are_read_at_call_time(
    openai_fake: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_BASE", openai_fake.base_url)
    with pytest.raises(routerd.AuthenticationError):
        completion(model="gpt-4", messages=HI, num_retries=0)
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)  # exported after the first call
    assert completion(model="gpt-4", messages=HI).choices[0].message.content == "hi"


def test_repeated_calls_reuse_one_router_and_credentials_key_the_cache(openai_env: Any) -> None:
    router_cache.clear()
    for _ in range(3):
        completion(model="gpt-4", messages=HI)
    assert len(router_cache) == 1
    completion(model="gpt-4", messages=HI, api_key=OPENAI_KEY)  # same resolved key: same router
    assert len(router_cache) == 1
    with pytest.raises(routerd.AuthenticationError):
        completion(model="gpt-4", messages=HI, api_key="sk-other", num_retries=0)
    assert len(router_cache) == 2
    assert "sk-other" not in repr(list(router_cache._routers))
    assert OPENAI_KEY not in repr(list(router_cache._routers))


def test_num_retries_retries_the_upstream(openai_env: Any, instant_backoff: list[float]) -> None:
    openai_env.enqueue(Reply.error(429, "slow down"), Reply.error(503, "busy"))
    response = completion(model="gpt-4", messages=HI, num_retries=2)
    assert response.choices[0].message.content == "hi"
    assert len(openai_env.requests) == 3
    assert response._hidden_params["retries"] == 2
    assert len(instant_backoff) == 2  # a jittered backoff before each retry


def test_fallbacks_take_over_when_the_model_fails(openai_env: Any) -> None:
    openai_env.enqueue(Reply.error(500, "down"))
    response = completion(
        model="gpt-4",
        messages=HI,
        num_retries=0,
        fallbacks=[{"model": "mock/backup-model", "mock_response": "from the fallback"}],
    )
    assert response.choices[0].message.content == "from the fallback"
    assert response._hidden_params["fallbacks"] == 1
    assert response._hidden_params["model_group"] == "mock/backup-model"


def test_fallbacks_by_name_use_their_own_providers_credentials(provider_env: dict[str, Any]) -> None:
    provider_env["openai"].enqueue(Reply.error(500, "down"))
    response = completion(model="gpt-4", messages=HI, num_retries=0, fallbacks=["claude-3-haiku-20240307"])
    assert response.choices[0].message.content == "echo: hi"
    assert provider_env["anthropic"].requests[-1].json["model"] == "claude-3-haiku-20240307"


def test_timeout_bounds_the_call(openai_env: Any) -> None:
    openai_env.enqueue(Reply(hang=True))
    with pytest.raises(routerd.Timeout) as info:
        completion(model="gpt-4", messages=HI, timeout=0.3, num_retries=0)
    assert info.value.status_code == 408  # LiteLLM's SDK status for a timeout (the daemon answers 504)


def test_mock_response_can_raise_errors_without_any_call() -> None:
    with pytest.raises(routerd.RateLimitError):
        completion(model="gpt-4", messages=HI, mock_response="litellm.RateLimitError")
    custom = routerd.ContentPolicyViolationError("flagged", model="gpt-4")
    with pytest.raises(routerd.ContentPolicyViolationError) as info:
        completion(model="gpt-4", messages=HI, mock_response=custom)
    assert info.value is custom


def test_mock_response_keeps_the_model_name_and_answers_offline() -> None:
    response = completion(model="azure/some-deployment", messages=HI, mock_response="offline")
    assert response.choices[0].message.content == "offline"
    assert response.model == "some-deployment"
    assert response._hidden_params["custom_llm_provider"] == "mock"


def test_unknown_providers_and_incomplete_deployments_are_bad_requests() -> None:
    with pytest.raises(routerd.BadRequestError, match="provider"):
        completion(model="my-own-model", messages=HI)
    with pytest.raises(routerd.BadRequestError, match="azure/no-base"):
        completion(model="azure/no-base", messages=HI, api_key="k")  # no api_base, no AZURE_API_BASE


def test_model_list_routes_over_the_given_deployments(openai_fake: Any) -> None:
    model_list = [
        {
            "model_name": "smart",
            "litellm_params": {
                "model": "openai/gpt-4o",
                "api_key": OPENAI_KEY,
                "api_base": openai_fake.base_url,
            },
        }
    ]
    response = completion(model="smart", messages=HI, model_list=model_list)
    assert response.choices[0].message.content == "hi"
    assert openai_fake.requests[-1].json["model"] == "gpt-4o"
    mocked = completion(model="smart", messages=HI, model_list=model_list, mock_response="no network")
    assert mocked.choices[0].message.content == "no network"
    assert len(openai_fake.requests) == 1


def test_deployment_id_calls_an_azure_deployment(azure_fake: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_API_BASE", azure_fake.origin)
    monkeypatch.setenv("AZURE_API_KEY", "azure-test-key-0123456789")
    completion(model="gpt-4", messages=HI, deployment_id="prod-gpt4")
    assert azure_fake.requests[-1].path == "/openai/deployments/prod-gpt4/chat/completions"


def test_embedding_and_text_completion_against_the_fake(openai_env: Any) -> None:
    vectors = embedding(model="text-embedding-3-small", input=["a", "b"])
    assert len(vectors.data) == 2 and len(vectors.data[1].embedding) == openai_env.embedding_dim
    assert vectors["data"][0]["embedding"] == vectors.data[0].embedding
    assert openai_env.requests[-1].path == "/v1/embeddings"
    text = routerd.sdk.text_completion(model="gpt-3.5-turbo-instruct", prompt=["one", "two"])
    assert [c.text for c in text.choices] == ["one", "two"]


async def test_async_variants(openai_env: Any) -> None:
    response = await acompletion(model="gpt-4", messages=HI)
    assert response.choices[0].message.content == "hi"
    stream = await acompletion(
        model="gpt-4", messages=HI, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "hi"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0
    text = await atext_completion(model="gpt-3.5-turbo-instruct", prompt="Say this is a test", max_tokens=7)
    assert text.choices[0].text == "Say this is a test"
    vectors = await aembedding(model="text-embedding-3-small", input="hello")
    assert len(vectors.data[0].embedding) == openai_env.embedding_dim


async def test_concurrent_async_calls_share_the_loop_client(openai_env: Any) -> None:
    responses = await asyncio.gather(*(acompletion(model="gpt-4", messages=HI) for _ in range(10)))
    assert all(r.choices[0].message.content == "hi" for r in responses)
    assert asyncio.get_running_loop() in shared_http()._clients


def test_an_error_after_the_first_chunk_is_raised_mid_stream(openai_env: Any) -> None:
    openai_env.enqueue(Reply(cut_after=2))
    stream = completion(
        model="gpt-4", messages=[{"role": "user", "content": "one two three four"}], stream=True
    )
    seen = []
    with pytest.raises(routerd.OpenAIError):
        for chunk in stream:
            seen.append(chunk)
    assert seen  # the first chunks arrived before the connection dropped
    assert stream.closed


def test_a_stream_dropped_early_closes_the_upstream_connection(openai_env: Any) -> None:
    openai_env.enqueue(Reply(chunk_delay=0.05))
    stream = completion(model="gpt-4", messages=[{"role": "user", "content": "a b c d e f g h"}], stream=True)
    next(iter(stream))
    stream.close()
    assert stream.closed
    asyncio.run_coroutine_threadsafe(openai_env.wait_disconnect(5), openai_env.test_loop).result(6)
    assert openai_env.disconnects == 1
