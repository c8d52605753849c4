"""Token leases: a deployment with a ``tpm`` limit is served from reservations of calls and tokens, so
most calls make no Redis round trip, and the window never holds more than the limit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from routerd.routing.executor import CallRouter as Router
from routerd.routing.plan import Pick
from routerd.state.redis import RedisHealthStore, lease_sizes
from routerd.testing.redis import RedisServer

from .support import call, mock_config, redis_store, table_of

Factory = Callable[..., Any]


@pytest.fixture
async def routers(tmp_path: Path) -> AsyncIterator[Factory]:
    made: list[Router] = []

    async def build(config: str, store: Any) -> Router:
        router = Router(table_of(tmp_path, config), state=store)
        await store.start()
        made.append(router)
        return router

    yield build
    for router in made:
        await router.aclose()


def pick(router: Router) -> Pick:
    group = router.resolve("chat")
    assert group is not None
    return Pick(group.plan.candidates[0], router.state.record("m1"), False)


def evalsha_calls(server: RedisServer) -> int:
    for line in server.command("INFO", "commandstats").splitlines():
        if line.startswith("cmdstat_evalsha:"):
            return int(line.split("calls=")[1].split(",")[0])
    return 0


def redis_second(server: RedisServer) -> int:
    return int(server.command("TIME").split()[0])


async def window(url: str) -> tuple[int, int]:
    client = aioredis.Redis.from_url(url)
    try:
        fields = await client.hgetall("routerd:{m1}:w")
    finally:
        await client.aclose()
    requests = sum(int(v) for k, v in fields.items() if k.startswith(b"r:"))
    return requests, sum(int(v) for k, v in fields.items() if k.startswith(b"t:"))


def test_lease_sizes_are_five_percent_split_between_processes() -> None:
    assert lease_sizes(None, 10_000, 0.05, 2) == (0, 250)
    assert lease_sizes(1000, 10_000, 0.05, 1) == (50, 500)
    assert lease_sizes(30, 10_000, 0.05, 1) is None  # 1 call ahead: not worth it, every call checks
    assert lease_sizes(None, 10, 0.05, 1) is None
    assert lease_sizes(None, 10_000, 0.0, 1) is None  # ROUTERD_STATE_LEASE_FRACTION=0


async def test_tpm_calls_are_served_from_a_token_lease(routers: Any, redis_server: RedisServer) -> None:
    store = redis_store(redis_server.url, state_lease_fraction=0.05, state_sync_interval=30.0)
    router = await routers(mock_config(tpm=1000), store)
    gate = router.state.gate
    assert gate is not None
    assert await gate(pick(router), 10, 1, router._clock())  # reserves 10 + 50 tokens
    assert await window(redis_server.url) == (1, 60)
    before, started = evalsha_calls(redis_server), redis_second(redis_server)
    for _ in range(5):  # the 50 reserved tokens serve five more 10-token calls, in this second
        assert await gate(pick(router), 10, 1, router._clock())
    trips = evalsha_calls(redis_server) - before
    # none; one more reservation if the second ended in between, and on a loaded machine the loop can
    # span several seconds: each one crossed may cost a give-back and a new reservation
    assert trips <= 1 + 2 * (redis_second(redis_server) - started)
    assert (await window(redis_server.url))[1] <= 120


async def test_token_leases_never_exceed_the_tpm_limit(routers: Any, redis_server: RedisServer) -> None:
    # tpm 400, 5% split between 2 processes: each reserves 10 tokens ahead
    stores = [
        redis_store(redis_server.url, state_processes=2, state_lease_fraction=0.05, state_sync_interval=30.0)
        for _ in range(2)
    ]
    a, b = [await routers(mock_config(tpm=400), store) for store in stores]
    admitted = 0
    for _ in range(40):
        for router in (a, b):
            gate = router.state.gate
            assert gate is not None
            if await gate(pick(router), 10, 1, router._clock()):
                admitted += 1
    assert 38 <= admitted <= 40  # 10 tokens each: never above 400, below it by at most 5% (20 tokens)
    assert (await window(redis_server.url))[1] <= 400


async def test_unused_tokens_are_given_back(routers: Any, redis_server: RedisServer) -> None:
    router = await routers(mock_config(tpm=10_000), redis_store(redis_server.url))
    gate = router.state.gate
    assert gate is not None
    assert await gate(pick(router), 10, 1, router._clock())
    assert (await window(redis_server.url))[1] == 510  # 5% of 10,000 reserved beside the call's 10
    for _ in range(300):  # bounded: the second ends, the next sync refunds the 500 unused
        if (await window(redis_server.url))[1] == 10:
            break
        await asyncio.sleep(0.01)
    assert await window(redis_server.url) == (1, 10)


async def test_a_leased_call_corrects_its_tokens_with_the_usage(
    routers: Any, redis_server: RedisServer
) -> None:
    store = redis_store(redis_server.url)
    router = await routers(mock_config(tpm=100_000), store)
    assert isinstance(store, RedisHealthStore)
    assert await call(router) is None
    record = router.state.record("m1")
    used = record.usage.used(router._clock())[1]
    assert used > 0  # the mock's reported usage replaced the estimate locally
    # the refund of the unused reservation and the correction both reach Redis in the background
    for _ in range(300):
        if (await window(redis_server.url))[1] == used:
            break
        await asyncio.sleep(0.01)
    assert (await window(redis_server.url))[1] == used
