"""Porting suite: ``routerd.cache = routerd.Cache(...)`` (LiteLLM's ``litellm.cache = Cache()``), local
and Redis, counted on the loopback OpenAI fake: a hit makes no upstream call."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import routerd
from routerd.sdk.loop import background_loop
from routerd.testing.redis import RedisServer, redis_server_binary

HI = [{"role": "user", "content": "What is a cache?"}]


@pytest.fixture
def local_cache(monkeypatch: pytest.MonkeyPatch) -> routerd.Cache:
    cache = routerd.Cache()
    monkeypatch.setattr(routerd, "cache", cache)
    return cache


def test_an_identical_call_is_answered_from_the_cache(openai_env: Any, local_cache: routerd.Cache) -> None:
    first = routerd.completion(model="gpt-4o", messages=HI, temperature=0.1)
    second = routerd.completion(model="gpt-4o", messages=HI, temperature=0.1)
    assert len(openai_env.requests) == 1  # the second call made no upstream call
    assert second.choices[0].message.content == first.choices[0].message.content
    assert second._hidden_params["cache_hit"] is True
    assert first._hidden_params.get("cache_hit") is not True
    assert (local_cache.hits, local_cache.misses) == (1, 1)
    routerd.completion(model="gpt-4o", messages=HI, temperature=0.9)  # another parameter: another entry
    assert len(openai_env.requests) == 2


def test_no_cache_bypasses_and_caching_false_skips(openai_env: Any, local_cache: routerd.Cache) -> None:
    routerd.completion(model="gpt-4o", messages=HI)
    routerd.completion(model="gpt-4o", messages=HI, cache={"no-cache": True})
    assert len(openai_env.requests) == 2  # no-cache: asked upstream again
    routerd.completion(model="gpt-4o", messages=HI, caching=False)
    assert len(openai_env.requests) == 3
    assert "cache" not in openai_env.requests[-1].json and "caching" not in openai_env.requests[-1].json
    routerd.completion(model="gpt-4o", messages=HI)
    assert len(openai_env.requests) == 3  # the cache still answers a call that does not opt out


def test_async_calls_and_embeddings_are_cached(openai_env: Any, local_cache: routerd.Cache) -> None:
    async def twice() -> list[Any]:
        return [await routerd.acompletion(model="gpt-4o", messages=HI) for _ in range(2)]

    answers = asyncio.run(twice())
    assert len(openai_env.requests) == 1 and answers[1]._hidden_params["cache_hit"] is True
    vectors = [routerd.embedding(model="text-embedding-3-small", input=["a", "b"]) for _ in range(2)]
    assert len(openai_env.requests) == 2
    assert vectors[1].data[0].embedding == vectors[0].data[0].embedding


def test_a_streamed_answer_is_stored_and_replayed_as_a_stream(
    openai_env: Any, local_cache: routerd.Cache
) -> None:
    first = list(routerd.completion(model="gpt-4o", messages=HI, stream=True))
    again = routerd.completion(model="gpt-4o", messages=HI, stream=True)
    assert again._hidden_params["cache_hit"] is True
    replay = list(again)
    assert len(openai_env.requests) == 1  # the second stream was replayed from the cache
    text = "".join(c.choices[0].delta.content or "" for c in first if c.choices)
    assert text and "".join(c.choices[0].delta.content or "" for c in replay if c.choices) == text
    complete = routerd.completion(model="gpt-4o", messages=HI)  # a stream and a plain call share it
    assert complete.choices[0].message.content == text and len(openai_env.requests) == 1


def test_a_stream_closed_early_stores_nothing(openai_env: Any, local_cache: routerd.Cache) -> None:
    stream = routerd.completion(
        model="gpt-4o", messages=[{"role": "user", "content": "a b c d e f"}], stream=True
    )
    next(iter(stream))
    stream.close()
    routerd.completion(model="gpt-4o", messages=[{"role": "user", "content": "a b c d e f"}])
    assert len(openai_env.requests) == 2


def test_async_streams_are_replayed(openai_env: Any, local_cache: routerd.Cache) -> None:
    async def texts() -> list[str]:
        out = []
        for _ in range(2):
            stream = await routerd.acompletion(model="gpt-4o", messages=HI, stream=True)
            out.append("".join([c.choices[0].delta.content or "" async for c in stream if c.choices]))
        return out

    first, second = asyncio.run(texts())
    assert first and first == second and len(openai_env.requests) == 1


def test_default_off_mode_caches_only_calls_that_opt_in(
    openai_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(routerd, "cache", routerd.Cache(mode="default_off"))
    routerd.completion(model="gpt-4o", messages=HI)
    routerd.completion(model="gpt-4o", messages=HI)
    assert len(openai_env.requests) == 2
    routerd.completion(model="gpt-4o", messages=HI, caching=True)
    routerd.completion(model="gpt-4o", messages=HI, caching=True)
    assert len(openai_env.requests) == 3


def test_no_store_keeps_nothing(openai_env: Any, local_cache: routerd.Cache) -> None:
    routerd.completion(model="gpt-4o", messages=HI, cache={"no-store": True})
    routerd.completion(model="gpt-4o", messages=HI)
    assert len(openai_env.requests) == 2  # no-store: the first answer was never kept


def test_settings_the_cache_cannot_honour_are_refused(
    openai_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValueError, match="s3"):
        routerd.Cache(type="s3")
    with pytest.raises(TypeError, match="similarity_threshold"):
        routerd.Cache(similarity_threshold=0.8)
    with pytest.raises(ValueError, match="rerank"):
        routerd.Cache(supported_call_types=["completion", "rerank"])
    monkeypatch.setattr(routerd, "cache", True)
    with pytest.raises(TypeError, match=r"routerd\.cache must be a routerd\.Cache"):
        routerd.completion(model="gpt-4o", messages=HI)
    assert openai_env.requests == []


@pytest.fixture
def redis_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[routerd.Cache]:
    if redis_server_binary() is None:
        pytest.fail("redis-server is not installed: run .ci/run, which installs Debian's redis-server")
    with RedisServer(tmp_path / "redis") as server:
        cache = routerd.Cache(type="redis", host="127.0.0.1", port=server.port, namespace="porting")
        monkeypatch.setattr(routerd, "cache", cache)
        try:
            yield cache
        finally:
            background_loop.run(cache.aclose())


def test_a_redis_cache_answers_identical_calls(openai_env: Any, redis_cache: routerd.Cache) -> None:
    first = routerd.completion(model="gpt-4o", messages=HI)
    second = routerd.completion(model="gpt-4o", messages=HI)
    assert len(openai_env.requests) == 1
    assert second._hidden_params["cache_hit"] is True
    assert second.choices[0].message.content == first.choices[0].message.content
    routerd.completion(model="gpt-4o", messages=HI, cache={"no-cache": True})
    assert len(openai_env.requests) == 2


def test_router_calls_use_the_module_cache(openai_fake: Any, local_cache: routerd.Cache) -> None:
    from tests.sdk.conftest import OPENAI_KEY

    params = {"model": "openai/gpt-4o", "api_key": OPENAI_KEY, "api_base": openai_fake.base_url}
    with routerd.Router(model_list=[{"model_name": "gpt-4o", "litellm_params": params}]) as router:
        router.completion(model="gpt-4o", messages=HI)
        hit = router.completion(model="gpt-4o", messages=HI, caching=True)
    assert len(openai_fake.requests) == 1 and hit._hidden_params["cache_hit"] is True
