"""Client-key and team limits shared through one real Redis by several stores ("processes"):
rpm/tpm windows with leases, parallel slots that a dead process cannot keep, and the local fallback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from routerd.access.limits import AccessLimits, Admission
from routerd.access.spec import KeySpec, TeamSpec
from routerd.access.table import KeyPolicy, authenticate, compile_access
from routerd.errors import RateLimitError
from routerd.state.redis import RedisHealthStore
from routerd.testing.redis import RedisServer

from .support import eventually, redis_store

KEY = "sk-shared-limits-key-000001"
OTHER = "sk-shared-limits-key-000002"


def policies(team: dict[str, Any] | None = None, **key: Any) -> tuple[KeyPolicy, KeyPolicy]:
    """Two keys of team ``t``: the first with ``key`` limits, the second without."""
    table, _ = compile_access(
        [
            KeySpec.model_validate({"key": KEY, "key_alias": "a", "team_id": "t", **key}),
            KeySpec.model_validate({"key": OTHER, "key_alias": "b", "team_id": "t"}),
        ],
        [TeamSpec(team_id="t", **(team or {}))],
    )
    return authenticate(table, KEY, 0), authenticate(table, OTHER, 0)


Node = tuple[RedisHealthStore, AccessLimits]


@pytest.fixture
async def nodes(redis_server: RedisServer) -> AsyncIterator[Callable[..., Any]]:
    made: list[RedisHealthStore] = []

    async def build(**settings: Any) -> Node:
        store = redis_store(redis_server.url, **settings)
        await store.start()
        made.append(store)
        limits = AccessLimits(divisor=lambda: store.processes, shared=lambda: store.access)
        return store, limits

    yield build
    for store in made:
        await store.aclose()


async def outcome(limits: AccessLimits, policy: KeyPolicy, tokens: int = 1) -> Admission | RateLimitError:
    try:
        return await limits.acquire(policy, tokens, time.monotonic())
    except RateLimitError as exc:
        return exc


def evalsha_calls(server: RedisServer) -> int:
    for line in server.command("INFO", "commandstats").splitlines():
        if line.startswith("cmdstat_evalsha:"):
            return int(line.split("calls=")[1].split(",")[0])
    return 0


async def test_all_load_on_one_process_gets_the_whole_key_limit(nodes: Any) -> None:
    (_, a), (_, b) = await nodes(state_processes=2), await nodes(state_processes=2)
    key, _ = policies(rpm_limit=10)
    first = [await outcome(a, key) for _ in range(12)]
    assert sum(isinstance(o, Admission) for o in first) == 10  # the whole limit, not 10 // 2
    refused = await outcome(b, key)  # the other process sees the same window
    assert isinstance(refused, RateLimitError) and refused.code == "rpm_limit"
    assert refused.retry_after is not None and 0 < refused.retry_after <= 61
    assert "key 'a' reached its rpm_limit (10 per minute)" in refused.message


async def test_load_spread_over_processes_stays_within_the_key_limit(nodes: Any) -> None:
    stores = [await nodes(state_processes=3) for _ in range(3)]
    key, _ = policies(rpm_limit=12)
    results = [await outcome(limits, key) for _ in range(10) for _, limits in stores]
    assert sum(isinstance(o, Admission) for o in results) == 12


async def test_key_and_team_are_checked_in_one_step(nodes: Any, redis_server: RedisServer) -> None:
    (_, a), (_, b) = await nodes(state_lease_fraction=0), await nodes(state_lease_fraction=0)
    key, other = policies(team={"rpm_limit": 4}, rpm_limit=100)
    results = [
        await outcome(limits, policy) for _ in range(3) for limits in (a, b) for policy in (key, other)
    ]
    assert sum(isinstance(o, Admission) for o in results) == 4  # the team's limit, across keys
    refused = [o for o in results if isinstance(o, RateLimitError)]
    assert all("team 't' reached its rpm_limit" in o.message for o in refused)
    # a call the team refused left no trace in its key's window
    window = redis_server.command("HGETALL", "routerd:{access}:w:key:a").split()
    assert sum(int(v) for k, v in zip(window[::2], window[1::2], strict=True) if k.startswith("r:")) == 2


async def test_key_tpm_is_shared(nodes: Any) -> None:
    (_, a), (_, b) = await nodes(), await nodes()
    key, _ = policies(tpm_limit=100)
    assert isinstance(await outcome(a, key, 60), Admission)
    refused = await outcome(b, key, 60)
    assert isinstance(refused, RateLimitError) and refused.code == "tpm_limit"


async def test_leases_serve_most_key_calls_without_a_round_trip(
    nodes: Any, redis_server: RedisServer
) -> None:
    _, a = await nodes(state_lease_fraction=0.05, state_sync_interval=30.0)
    key, _ = policies(rpm_limit=1000, team={"rpm_limit": 2000})
    assert isinstance(await outcome(a, key), Admission)  # reserves 50 key calls and 100 team calls
    before = evalsha_calls(redis_server)
    for _ in range(20):
        assert isinstance(await outcome(a, key), Admission)
    assert evalsha_calls(redis_server) - before <= 1  # none (one if the second ended meanwhile)


async def test_parallel_slots_are_shared_and_given_back(nodes: Any) -> None:
    (_, a), (_, b) = await nodes(), await nodes()
    key, _ = policies(max_parallel_requests=2)
    first = await outcome(a, key)
    second = await outcome(b, key)
    assert isinstance(first, Admission) and isinstance(second, Admission)
    refused = await outcome(a, key)
    assert isinstance(refused, RateLimitError) and refused.code == "parallel_request_limit"
    a.release(first)  # given back in the background
    got: list[Any] = []

    async def retry() -> None:
        got.append(await outcome(b, key))

    for _ in range(200):  # bounded
        await retry()
        if isinstance(got[-1], Admission):
            break
        await asyncio.sleep(0.01)
    assert isinstance(got[-1], Admission)


async def test_a_dead_process_slots_are_freed_after_the_expiry(nodes: Any) -> None:
    # sync every 0.05 s: a process's slots expire 0.2 s after its last renewal
    (dead_store, dead), (_, alive) = await nodes(), await nodes()
    key, _ = policies(max_parallel_requests=1)
    assert isinstance(await outcome(dead, key), Admission)
    assert isinstance(await outcome(alive, key), RateLimitError)
    await dead_store.aclose()  # dies without giving its slot back
    assert dead_store.slot_ttl_ms == 200
    results: list[Any] = []
    for _ in range(300):  # bounded: the expiry passes, the next admission drops the dead slot
        results.append(await outcome(alive, key))
        if isinstance(results[-1], Admission):
            break
        await asyncio.sleep(0.01)
    assert isinstance(results[-1], Admission)
    assert isinstance(results[0], RateLimitError)


async def test_redis_down_falls_back_to_per_process_shares(nodes: Any, redis_server: RedisServer) -> None:
    store, a = await nodes(state_processes=2)
    key, _ = policies(rpm_limit=10)
    assert isinstance(await outcome(a, key), Admission)
    redis_server.kill()
    results = [await outcome(a, key) for _ in range(8)]  # the first one finds Redis gone
    assert store.status().mode == "local"
    assert sum(isinstance(o, Admission) for o in results) == 4  # 10 // 2, one already counted
    assert all(o.code == "rpm_limit" for o in results if isinstance(o, RateLimitError))
    redis_server.start()
    await eventually(lambda: store.status().mode == "shared", 5.0, "shared state to resume")
    # the local counts were written back: Redis knows of the 5 calls, the key has 5 left
    more = [await outcome(a, key) for _ in range(7)]
    assert sum(isinstance(o, Admission) for o in more) == 5


async def test_concurrent_calls_share_one_lease_reservation(nodes: Any, redis_server: RedisServer) -> None:
    _, a = await nodes(state_sync_interval=30.0)
    key, _ = policies(rpm_limit=1000)  # a lease of 50 calls
    results = await asyncio.gather(*[outcome(a, key) for _ in range(32)])
    assert all(isinstance(o, Admission) for o in results)
    window = redis_server.command("HGETALL", "routerd:{access}:w:key:a").split()
    reserved = sum(int(v) for k, v in zip(window[::2], window[1::2], strict=True) if k.startswith("r:"))
    assert 32 <= reserved <= 100  # one reservation of 50 (two if the second ended): not one per call


async def test_key_limits_on_a_redis_cluster(redis_cluster: Any) -> None:
    from routerd.config.table import ServerSettings
    from routerd.settings import Settings
    from routerd.state.connect import make_store

    settings = Settings(state_namespace="ck:", state_timeout_ms=500, state_sync_interval=0.05)
    stores = [
        make_store(settings, ServerSettings(redis_startup_nodes=tuple(redis_cluster.startup_nodes)))
        for _ in range(2)
    ]
    for store in stores:
        assert isinstance(store, RedisHealthStore)
        await store.start()
    try:
        a, b = (AccessLimits(shared=lambda s=store: s.access) for store in stores)
        key, other = policies(team={"rpm_limit": 6}, max_parallel_requests=5)
        results = [
            await outcome(limits, policy) for _ in range(4) for limits in (a, b) for policy in (key, other)
        ]
        assert sum(isinstance(o, Admission) for o in results) == 6  # key and team in one script, one slot
        assert all(s.status().mode == "shared" for s in stores)
    finally:
        for store in stores:
            await store.aclose()


def window_tokens(server: RedisServer, scope: str) -> int:
    fields = server.command("HGETALL", f"routerd:{{access}}:w:{scope}").split()
    return sum(int(v) for k, v in zip(fields[::2], fields[1::2], strict=True) if k.startswith("t:"))


async def test_token_corrections_reach_the_key_and_team_windows(
    nodes: Any, redis_server: RedisServer
) -> None:
    (_, a), (_, b) = await nodes(state_lease_fraction=0), await nodes(state_lease_fraction=0)
    key, _ = policies(tpm_limit=1000, team={"tpm_limit": 100})
    admission = await outcome(a, key, 10)
    assert isinstance(admission, Admission)
    a.settle(admission, 80, time.monotonic())  # the call used 80 tokens, not the 10 estimated
    await eventually(
        lambda: window_tokens(redis_server, "key:a") == window_tokens(redis_server, "team:t") == 80,
        2.0,
        "both corrections, in one background write",
    )
    refused = await outcome(b, key, 30)  # 80 + 30 > the team's 100
    assert isinstance(refused, RateLimitError) and "team 't' reached its tpm_limit" in refused.message
