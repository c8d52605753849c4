"""Failures counted toward ``allowed_fails`` are shared: the fleet's count opens a breaker, not each
process's alone (approximate: learnt from Redis in the background)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from routerd.errors import InternalServerError
from routerd.routing.health import BreakerState, CooldownRules, classify, on_failure
from routerd.state.redis import RedisHealthStore
from routerd.testing.redis import RedisServer

from .support import eventually, redis_store

RULES = CooldownRules(allowed_fails=3, cooldown_time=30.0)
FAILURE = classify(InternalServerError("upstream failed"))


@pytest.fixture
async def pair(redis_server: RedisServer) -> AsyncIterator[tuple[RedisHealthStore, RedisHealthStore]]:
    stores = [redis_store(redis_server.url, state_sync_interval=30.0) for _ in range(2)]
    for store in stores:
        await store.start()
    yield stores[0], stores[1]
    for store in stores:
        await store.aclose()


def fleet_count(server: RedisServer) -> int:
    return sum(int(v) for v in server.command("HVALS", "routerd:{d1}:f").split())


def fail(store: RedisHealthStore, now: float) -> Any:
    record = store.record("d1")
    store.set_breaker("d1", record, on_failure(record.breaker, now, FAILURE, RULES, 30.0))
    return record


async def test_the_fleet_failure_count_opens_the_breaker(
    pair: tuple[RedisHealthStore, RedisHealthStore], redis_server: RedisServer
) -> None:
    a, b = pair
    now = 100.0
    fail(a, now)
    fail(a, now)
    await eventually(lambda: fleet_count(redis_server) == 2, 2.0, "a's failures to reach Redis")
    theirs = fail(b, now)  # b's first failure: the fleet has seen 3 (allowed_fails: 3)
    await eventually(lambda: theirs.breaker.failures_in_window == 3, 2.0, "b to learn the fleet's count")
    assert theirs.breaker.state is BreakerState.HEALTHY
    fail(b, now)  # the fleet's 4th failure: more than allowed_fails, b opens (alone it had 2)
    assert theirs.breaker.state is BreakerState.COOLING_DOWN
    ttl = int(redis_server.command("PTTL", "routerd:{d1}:f").strip() or "0")
    assert ttl <= 60_000  # the count expires with the failure window (or was reset by the cooldown)
    await eventually(
        lambda: redis_server.command("EXISTS", "routerd:{d1}:f").strip() == "0", 2.0, "the count to reset"
    )


async def test_a_process_alone_opens_at_allowed_fails_as_before(
    pair: tuple[RedisHealthStore, RedisHealthStore],
) -> None:
    a, _ = pair
    record = a.record("d1")
    for _ in range(3):
        fail(a, 100.0)
    assert record.breaker.state is BreakerState.HEALTHY
    fail(a, 100.0)
    assert record.breaker.state is BreakerState.COOLING_DOWN
