"""The router with the real OpenAI and Azure adapters against fake upstreams on loopback.

HTTP is real (the fast client over 127.0.0.1); time is not: the router runs on a FakeClock, so cooldowns and
Retry-After windows are checked exactly without waiting for them.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from routerd.config.table import RouterPolicy
from routerd.errors import OpenAIError
from routerd.events import EventBus, FallbackTaken
from routerd.http import FastHttpClient
from routerd.routing.executor import CallRouter
from routerd.routing.health import BreakerState, effective_state
from routerd.testing.clock import FakeClock
from routerd.testing.openai_fake import FakeAzureOpenAI, FakeOpenAI, Reply

from .fakes import Recorder, dep, make_table

KEY = "sk-test-key"


@pytest.fixture
async def openai_a() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(api_key=KEY) as fake:
        yield fake


@pytest.fixture
async def openai_b() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(api_key=KEY) as fake:
        yield fake


@pytest.fixture
async def azure() -> AsyncIterator[FakeAzureOpenAI]:
    async with FakeAzureOpenAI(api_key=KEY) as fake:
        yield fake


def openai_dep(dep_id: str, fake: FakeOpenAI, group: str = "gpt") -> Any:
    return dep(dep_id, group, provider="openai", model="gpt-4o-mini", api_base=fake.base_url, api_key=KEY)


def calls_to(fake: FakeOpenAI) -> int:
    return sum(1 for r in fake.requests if r.path.endswith("/chat/completions"))


def question(model: str = "gpt", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "ping"}], **extra}


async def make(table: Any, clock: FakeClock, recorder: Recorder | None = None) -> CallRouter:
    bus = EventBus()
    if recorder is not None:
        bus.subscribe(recorder)
    return CallRouter(
        table, http=FastHttpClient(), clock=clock, sleep=clock.sleep, rng=random.Random(3), events=bus
    )


async def test_one_of_two_returning_500_every_request_succeeds_and_it_cools_down(
    openai_a: FakeOpenAI, openai_b: FakeOpenAI, clock: FakeClock
) -> None:
    openai_b.enqueue(*[Reply.error(500, "internal error") for _ in range(100)])
    router = await make(
        make_table({"gpt": [openai_dep("good", openai_a), openai_dep("bad", openai_b)]}), clock
    )
    try:
        for _ in range(30):
            result = await router.call("chat", question())
            assert result.response is not None and result.deployment.id == "good"
            assert result.response.body["choices"][0]["message"]["content"]
            clock.advance(0.5)
        assert calls_to(openai_b) == 4  # allowed_fails (3) + the one that started the cooldown
        record = router.state.get("bad")
        assert record is not None and effective_state(record.breaker, clock()) is BreakerState.COOLING_DOWN
    finally:
        await router.aclose()


async def test_429_with_retry_after_2_gets_no_traffic_for_2_seconds(
    openai_a: FakeOpenAI, openai_b: FakeOpenAI, clock: FakeClock
) -> None:
    openai_b.enqueue(Reply.error(429, "Rate limit reached", retry_after=2))
    router = await make(make_table({"gpt": [openai_dep("a", openai_a), openai_dep("b", openai_b)]}), clock)
    try:
        limited_at = None
        b_calls: list[float] = []
        while clock() < 1010.0:
            before = calls_to(openai_b)
            await router.call("chat", question())
            if calls_to(openai_b) > before:
                if limited_at is None:
                    limited_at = clock()
                else:
                    b_calls.append(clock())
            clock.advance(0.1)
        assert limited_at is not None and b_calls
        assert min(b_calls) >= limited_at + 2.0  # nothing inside the Retry-After window
        assert min(b_calls) < limited_at + 2.5  # and back in rotation right after it
    finally:
        await router.aclose()


async def test_a_group_all_down_falls_back_to_another_provider(
    openai_a: FakeOpenAI, openai_b: FakeOpenAI, azure: FakeAzureOpenAI, clock: FakeClock
) -> None:
    openai_a.enqueue(*[Reply.error(503, "overloaded") for _ in range(10)])
    openai_b.enqueue(*[Reply.error(500, "boom") for _ in range(10)])
    azure_dep = dep(
        "az", "azure-gpt", provider="azure", model="gpt-4o-mini", api_base=azure.base_url, api_key=KEY
    )
    table = make_table(
        {"gpt": [openai_dep("a", openai_a), openai_dep("b", openai_b)], "azure-gpt": [azure_dep]},
        policy=RouterPolicy(fallbacks={"gpt": ("azure-gpt",)}),
    )
    recorder = Recorder()
    router = await make(table, clock, recorder)
    try:
        result = await router.call("chat", question())
        assert result.deployment.provider == "azure" and result.info.fallbacks == 1
        assert result.response is not None and result.response.body["choices"]
        assert calls_to(openai_a) == 1 and calls_to(openai_b) == 1 and calls_to(azure) == 1
        assert "/openai/deployments/gpt-4o-mini/" in azure.requests[-1].path
        assert recorder.of(FallbackTaken) == [FallbackTaken("gpt", "azure-gpt", "error", "success")]
    finally:
        await router.aclose()


async def test_streams_fail_over_before_the_first_chunk_and_raise_after_it(
    openai_a: FakeOpenAI, openai_b: FakeOpenAI, clock: FakeClock
) -> None:
    table = make_table(
        {"gpt": [openai_dep("first", openai_a), openai_dep("second", openai_b)]},
        policy=RouterPolicy(routing_strategy="order"),
    )
    router = await make(table, clock)
    try:
        openai_a.enqueue(Reply.error(500, "boom"))
        result = await router.call("chat", question(stream=True))
        assert result.deployment.id == "second"
        chunks = [chunk async for chunk in result.stream]  # type: ignore[union-attr]
        assert chunks and chunks[0]["object"] == "chat.completion.chunk"

        openai_a.enqueue(Reply(cut_after=1))
        result = await router.call("chat", question(stream=True))
        assert result.deployment.id == "first"
        received = []
        with pytest.raises(OpenAIError):
            async for chunk in result.stream:  # type: ignore[union-attr]
                received.append(chunk)
        assert len(received) == 1
    finally:
        await router.aclose()
