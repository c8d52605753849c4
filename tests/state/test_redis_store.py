"""The Redis health store in-process: several routers ("processes") on one real, private Redis."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from routerd.errors import RateLimitError
from routerd.routing.executor import CallRouter as Router
from routerd.routing.health import HEALTHY, Breaker, BreakerState
from routerd.state import MemoryHealthStore
from routerd.state.redis import RedisHealthStore
from routerd.testing.redis import RedisServer

from .support import call, eventually, mock_config, redis_store, table_of

Factory = Callable[..., Router]


@pytest.fixture
async def routers(tmp_path: Path) -> AsyncIterator[Factory]:
    made: list[Router] = []

    async def build(config: str, store: Any) -> Router:
        router = Router(table_of(tmp_path, config), state=store)
        await store.start()
        made.append(router)
        return router

    yield build  # type: ignore[misc]
    for router in made:
        await router.aclose()


async def test_two_processes_share_one_rpm_window(routers: Any, redis_server: RedisServer) -> None:
    a = await routers(mock_config(rpm=10), redis_store(redis_server.url))
    b = await routers(mock_config(rpm=10), redis_store(redis_server.url))
    outcomes = [await call(router) for _ in range(15) for router in (a, b)]
    assert sum(o is None for o in outcomes) == 10  # not 10 per process
    refused = [o for o in outcomes if o is not None]
    assert all(isinstance(o, RateLimitError) and o.retry_after and o.retry_after > 0 for o in refused)
    assert a.state.status().mode == b.state.status().mode == "shared"


async def test_tpm_counts_estimates_at_admission_and_corrections_after(
    routers: Any, redis_server: RedisServer
) -> None:
    a = await routers(mock_config(tpm=60), redis_store(redis_server.url))
    b = await routers(mock_config(tpm=60), redis_store(redis_server.url))
    assert await call(a) is None
    # the mock's reported usage replaces the estimate in the shared window, in the background
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        await eventually(lambda: True, 0.0, "")
        fields: dict[bytes, bytes] = {}

        async def tokens_corrected() -> bool:
            fields.update(await client.hgetall("routerd:{m1}:w"))
            return any(k.startswith(b"t:") for k in fields)

        for _ in range(200):
            if await tokens_corrected():
                break
            await asyncio.sleep(0.01)
        assert any(k.startswith(b"r:") for k in fields)
        outcomes = [await call(router) for _ in range(20) for router in (a, b)]
        used = sum(int(v) for k, v in (await client.hgetall("routerd:{m1}:w")).items() if k.startswith(b"t:"))
    finally:
        await client.aclose()
    assert any(isinstance(o, RateLimitError) for o in outcomes)
    assert 0 < used <= 60 + 30  # the last admitted call's correction may exceed what was known


async def test_a_cooldown_reaches_the_other_process(routers: Any, redis_server: RedisServer) -> None:
    a = await routers(mock_config(), redis_store(redis_server.url, state_sync_interval=30.0))  # pub/sub only
    b = await routers(mock_config(), redis_store(redis_server.url, state_sync_interval=30.0))
    assert await call(b) is None  # b has a record for m1
    record = a.state.record("m1")
    a.state.set_breaker("m1", record, Breaker(BreakerState.COOLING_DOWN, until=a._clock() + 20, reason="X"))
    theirs = b.state.get("m1")
    assert theirs is not None
    await eventually(lambda: theirs.breaker.state is BreakerState.COOLING_DOWN, 1.0, "b to cool m1 down")
    assert theirs.breaker.until - b._clock() == pytest.approx(20, abs=1)
    assert theirs.breaker.reason == "X"
    # a process that had never routed to m1 learns it from the periodic sync instead
    c_store = redis_store(redis_server.url)
    c = await routers(mock_config(), c_store)
    await eventually(lambda: c.state.record("m1").breaker.state is BreakerState.COOLING_DOWN, 1.0, "sync")
    # the probe succeeds on a: everyone sends again
    a.state.set_breaker("m1", record, Breaker(BreakerState.HALF_OPEN, probe_until=a._clock() + 5))
    theirs.breaker = Breaker(BreakerState.COOLING_DOWN, until=b._clock() - 1)
    a.state.set_breaker("m1", record, HEALTHY)
    await eventually(lambda: theirs.breaker is HEALTHY, 1.0, "b to send to m1 again")


async def test_the_half_open_probe_is_taken_by_one_process(routers: Any, redis_server: RedisServer) -> None:
    a = await routers(mock_config(), redis_store(redis_server.url))
    b = await routers(mock_config(), redis_store(redis_server.url))
    for router in (a, b):
        router.state.record("m1").breaker = Breaker(BreakerState.COOLING_DOWN, until=router._clock() - 1)
    first = await asyncio.gather(call(a), call(b))
    assert sum(o is None for o in first) >= 1
    # the one that lost the probe saw the deployment as probed elsewhere (and waited or gave up)
    store_a, store_b = a.state, b.state
    assert isinstance(store_a, RedisHealthStore) and isinstance(store_b, RedisHealthStore)
    gate_a, gate_b = store_a.gate, store_b.gate
    assert gate_a is not None and gate_b is not None
    for router in (a, b):
        router.state.record("m1").breaker = Breaker(BreakerState.COOLING_DOWN, until=router._clock() - 1)
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        await client.delete("routerd:{m1}:p")
    finally:
        await client.aclose()
    picks = [_pick(a), _pick(b)]
    verdicts = [await gate_a(picks[0], 0, 1, a._clock()), await gate_b(picks[1], 0, 1, b._clock())]
    assert verdicts == [True, False]
    loser = b.state.record("m1").breaker
    assert loser.state is BreakerState.HALF_OPEN and loser.probe_until > b._clock()


def _pick(router: Router) -> Any:
    from routerd.routing.plan import Pick

    group = router.resolve("chat")
    assert group is not None
    return Pick(group.plan.candidates[0], router.state.record("m1"), True)


async def test_redis_unreachable_at_start_serves_locally_with_limits_divided(
    routers: Any, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    url = redis_server.url
    redis_server.stop()
    router = await routers(mock_config(rpm=10), redis_store(url, state_processes=2))
    assert "unreachable at start" in caplog.text
    assert router.state.status().as_dict() == {
        "backend": f"redis 127.0.0.1:{redis_server.port}/0",
        "mode": "local",
        "up": False,
        "limit_share": 2,
    }
    outcomes = [await call(router) for _ in range(8)]
    assert sum(o is None for o in outcomes) == 5  # rpm 10 / 2 processes


async def test_redis_lost_then_back(routers: Any, redis_server: RedisServer) -> None:
    router = await routers(mock_config(rpm=100), redis_store(redis_server.url, state_processes=4))
    assert [await call(router) for _ in range(3)] == [None] * 3
    redis_server.kill()
    assert [await call(router) for _ in range(3)] == [None] * 3  # no failure: local state took over
    assert router.state.status().mode == "local"
    record = router.state.record("m1")
    assert record.usage.share == 4
    redis_server.start()
    await eventually(lambda: router.state.status().mode == "shared", 5.0, "shared state to resume")
    assert record.usage.share == 1
    # the local counts were written back: the restarted Redis knows of all 6 calls
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        window = await client.hgetall("routerd:{m1}:w")
    finally:
        await client.aclose()
    assert sum(int(v) for k, v in window.items() if k.startswith(b"r:")) == 6


async def test_a_slow_redis_is_abandoned_after_the_timeout(routers: Any, redis_server: RedisServer) -> None:
    store = redis_store(redis_server.url, state_timeout_ms=200, state_lease_fraction=0.0)
    router = await routers(mock_config(rpm=100), store)
    assert await call(router) is None
    sleeper = threading.Thread(target=redis_server.command, args=("DEBUG", "SLEEP", "1.5"))
    sleeper.start()
    try:
        await asyncio.sleep(0.1)
        assert await call(router) is None  # answered on local state once the 0.2 s timeout passed
        assert router.state.status().mode == "local"
        assert store.errors >= 1
    finally:
        await asyncio.to_thread(sleeper.join)


async def test_in_flight_and_latency_are_shared(routers: Any, redis_server: RedisServer) -> None:
    a = await routers(mock_config(), redis_store(redis_server.url))
    b = await routers(mock_config(), redis_store(redis_server.url))
    mine = a.state.record("m1")
    theirs = b.state.record("m1")
    mine.in_flight = 3
    mine.latency = 0.02
    await eventually(lambda: theirs.peer_in_flight == 3, 2.0, "b to see a's in-flight calls")
    assert theirs.peer_latency == pytest.approx(0.02)
    assert theirs.in_flight == 0  # its own count is untouched
    mine.in_flight = 0
    mine.latency = None
    await eventually(lambda: theirs.peer_in_flight == 0, 2.0, "a's calls to end")


async def test_namespaces_keep_gateways_apart(routers: Any, redis_server: RedisServer) -> None:
    a = await routers(mock_config(rpm=3), redis_store(redis_server.url, state_namespace="team-a:"))
    b = await routers(mock_config(rpm=3), redis_store(redis_server.url, state_namespace="team-b:"))
    outcomes = [await call(router) for _ in range(4) for router in (a, b)]
    assert sum(o is None for o in outcomes) == 6  # 3 each: separate windows


async def test_a_reloaded_deployment_keeps_its_shared_window_by_id(
    routers: Any, redis_server: RedisServer, tmp_path: Path
) -> None:
    a = await routers(mock_config(rpm=4), redis_store(redis_server.url))
    assert [await call(a) for _ in range(3)] == [None] * 3
    a.publish(table_of(tmp_path, mock_config(rpm=4, dep_id="other")))
    a.publish(table_of(tmp_path, mock_config(rpm=4)))  # m1 again: its local record was dropped
    outcomes = [await call(a) for _ in range(3)]
    assert sum(o is None for o in outcomes) == 1  # the shared window remembers the first three


async def test_workers_without_redis_divide_the_limits(routers: Any) -> None:
    store = MemoryHealthStore(share=2)
    router = await routers(mock_config(rpm=20), store)
    outcomes = [await call(router) for _ in range(15)]
    assert sum(o is None for o in outcomes) == 10
    assert store.status().as_dict() == {
        "backend": "memory",
        "mode": "per_worker",
        "up": True,
        "limit_share": 2,
    }


async def window_requests(url: str, dep_id: str = "m1") -> int:
    client = aioredis.Redis.from_url(url)
    try:
        window = await client.hgetall(f"routerd:{{{dep_id}}}:w")
    finally:
        await client.aclose()
    return sum(int(v) for k, v in window.items() if k.startswith(b"r:"))


async def test_rpm_leases_never_exceed_the_limit(routers: Any, redis_server: RedisServer) -> None:
    # rpm 40, 5% of it split between 2 processes: each reserves 1 call ahead (2 at a time)
    a = await routers(
        mock_config(rpm=40), redis_store(redis_server.url, state_processes=2, state_lease_fraction=0.05)
    )
    b = await routers(
        mock_config(rpm=40), redis_store(redis_server.url, state_processes=2, state_lease_fraction=0.05)
    )
    outcomes = [await call(router) for _ in range(30) for router in (a, b)]
    admitted = sum(o is None for o in outcomes)
    assert 38 <= admitted <= 40  # never above the limit; below it by at most the reservations (5%)
    assert await window_requests(redis_server.url) <= 40


async def test_an_unused_reservation_is_given_back(routers: Any, redis_server: RedisServer) -> None:
    a = await routers(mock_config(rpm=1000), redis_store(redis_server.url, state_lease_fraction=0.05))
    assert [await call(a) for _ in range(3)] == [None] * 3
    assert await window_requests(redis_server.url) == 50  # 5% of 1000 reserved by one call
    for _ in range(300):  # bounded: the second ends, the next sync refunds the 47 unused
        if await window_requests(redis_server.url) == 3:
            break
        await asyncio.sleep(0.01)
    assert await window_requests(redis_server.url) == 3


async def test_without_leases_every_call_is_checked(routers: Any, redis_server: RedisServer) -> None:
    a = await routers(mock_config(rpm=1000), redis_store(redis_server.url, state_lease_fraction=0.0))
    assert [await call(a) for _ in range(3)] == [None] * 3
    assert await window_requests(redis_server.url) == 3


async def test_cooldowns_and_limits_on_a_redis_cluster(routers: Any, redis_cluster: Any) -> None:
    from routerd.config.table import ServerSettings
    from routerd.settings import Settings
    from routerd.state.connect import make_store

    def cluster_store() -> Any:
        settings = Settings(state_namespace="c:", state_timeout_ms=2000, state_sync_interval=0.05)
        return make_store(settings, ServerSettings(redis_startup_nodes=tuple(redis_cluster.startup_nodes)))

    a = await routers(mock_config(rpm=6, dep_id="clustered-1"), cluster_store())
    b = await routers(mock_config(rpm=6, dep_id="clustered-1"), cluster_store())
    outcomes = [await call(router) for _ in range(5) for router in (a, b)]
    assert sum(o is None for o in outcomes) == 6
    record = a.state.record("clustered-1")
    until = a._clock() + 20
    a.state.set_breaker("clustered-1", record, Breaker(BreakerState.COOLING_DOWN, until=until, reason="Y"))
    theirs = b.state.record("clustered-1")
    await eventually(lambda: theirs.breaker.state is BreakerState.COOLING_DOWN, 1.0, "b to cool down")
    a.state.set_breaker("clustered-1", record, HEALTHY)
    theirs.breaker = Breaker(BreakerState.COOLING_DOWN, until=b._clock() - 1)
    await eventually(lambda: theirs.breaker is HEALTHY, 1.0, "b to send again")
    assert a.state.status().mode == b.state.status().mode == "shared"


async def test_the_probe_lock_lives_for_the_probe_lease(routers: Any, redis_server: RedisServer) -> None:
    a = await routers(mock_config(), redis_store(redis_server.url, state_probe_lease=7.0))
    gate = a.state.gate
    assert gate is not None
    assert await gate(_pick(a), 0, 1, a._clock())
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        ttl_ms = await client.pttl("routerd:{m1}:p")
    finally:
        await client.aclose()
    assert 6000 < ttl_ms <= 7000


async def test_background_writes_are_bounded_by_the_queue(routers: Any, redis_server: RedisServer) -> None:
    store = redis_store(redis_server.url, state_queue_max=2)
    router = await routers(mock_config(), store)
    for dep_id in ("d1", "d2", "d3", "d4", "d5"):  # no await in between: the writer cannot drain
        record = router.state.record(dep_id)
        store.set_breaker(dep_id, record, Breaker(BreakerState.COOLING_DOWN, until=router._clock() + 5))
    assert store.dropped == 3
    assert len(store._queue) == 2


async def test_router_settings_redis_keys_connect_and_redis_url_variable_wins(
    routers: Any, redis_server: RedisServer, tmp_path: Path
) -> None:
    from routerd.settings import Settings
    from routerd.state.connect import make_store

    redis_server.command("CONFIG", "SET", "requirepass", "s3cret pass")
    text = mock_config(rpm=5) + (
        f"router_settings:\n  redis_host: 127.0.0.1\n  redis_port: {redis_server.port}\n"
        "  redis_password: s3cret pass\n  redis_db: 2\n"
    )
    table = table_of(tmp_path, text)
    store = make_store(Settings(state_timeout_ms=500), table.server)
    router = await routers(text, store)
    assert store.status().as_dict() == {
        "backend": f"redis 127.0.0.1:{redis_server.port}/2",  # never the password
        "mode": "shared",
        "up": True,
        "limit_share": 1,
    }
    assert await call(router) is None
    client = aioredis.Redis(port=redis_server.port, password="s3cret pass", db=2)
    try:
        assert await client.exists("routerd:{m1}:w") == 1
    finally:
        await client.aclose()
    # ROUTERD_REDIS_URL wins over the file: here it points at nothing, so this process serves locally
    unreachable = make_store(Settings(redis_url="redis://127.0.0.1:1/0", state_timeout_ms=200), table.server)
    other = await routers(text, unreachable)
    assert other.state.status().mode == "local"
    assert other.state.status().backend == "redis 127.0.0.1:1/0"


async def test_a_damaged_peer_entry_is_skipped_not_fatal(routers: Any, redis_server: RedisServer) -> None:
    a = await routers(mock_config(), redis_store(redis_server.url))
    b = await routers(mock_config(), redis_store(redis_server.url))
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        now_ms = int((await client.time())[0]) * 1000 + 60_000  # stays "live" through the test
        await client.hset("routerd:{shared}:load", "broken-peer", f'{now_ms}|{{"m1": 7}}')
    finally:
        await client.aclose()
    mine = a.state.record("m1")
    mine.in_flight = 2
    theirs = b.state.record("m1")
    await eventually(lambda: theirs.peer_in_flight == 2, 2.0, "b to see a's load despite the broken entry")
    assert b.state.status().mode == "shared"


async def test_a_tls_redis_through_a_rediss_url(routers: Any, redis_binary: str, tmp_path: Path) -> None:
    with RedisServer(tmp_path / "tls", tls=True) as server:
        assert server.url.startswith("rediss://")
        a = await routers(mock_config(rpm=4), redis_store(server.url))
        b = await routers(mock_config(rpm=4), redis_store(server.url))
        assert a.state.status().backend.startswith("redis tls 127.0.0.1:")
        outcomes = [await call(router) for _ in range(4) for router in (a, b)]
        assert sum(o is None for o in outcomes) == 4
        assert a.state.status().mode == b.state.status().mode == "shared"
        assert server.command("PING").strip() == "PONG"  # the server speaks TLS only
        for router in (a, b):
            await router.aclose()


async def test_processes_seen_through_redis_raise_the_divisor(
    routers: Any, redis_server: RedisServer
) -> None:
    # ROUTERD_STATE_PROCESSES says 1, but two processes share this Redis: an outage divides by 2
    a = await routers(mock_config(rpm=10), redis_store(redis_server.url, state_processes=1))
    b = await routers(mock_config(rpm=10), redis_store(redis_server.url, state_processes=1))
    store_a, store_b = a.state, b.state
    assert isinstance(store_a, RedisHealthStore) and isinstance(store_b, RedisHealthStore)
    await eventually(lambda: store_a.processes == store_b.processes == 2, 2.0, "both to see each other")
    redis_server.kill()
    outcomes = [await call(a) for _ in range(8)]
    assert store_a.status().as_dict()["limit_share"] == 2
    assert sum(o is None for o in outcomes) == 5  # rpm 10 / 2 processes


async def test_a_fanned_out_completion_counts_every_call_in_the_shared_window(
    routers: Any, redis_server: RedisServer
) -> None:
    a = await routers(mock_config(rpm=5), redis_store(redis_server.url))
    b = await routers(mock_config(rpm=5), redis_store(redis_server.url))
    body = {"model": "chat", "prompt": ["one", "two", "three"], "max_tokens": 5}
    await a.call("completions", dict(body))  # 3 upstream calls
    assert await window_requests(redis_server.url) == 3
    with pytest.raises(RateLimitError):
        await b.call("completions", dict(body))  # 3 more would make 6 > 5 across the two processes
    assert await call(b) is None and await call(a) is None  # 1 + 1 fit
    assert await window_requests(redis_server.url) == 5
