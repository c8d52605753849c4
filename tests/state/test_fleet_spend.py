"""The fleet's spend report in Redis: hourly rows pushed with the spend exchange, their retention, and
the bound on rows kept while Redis is away."""

from __future__ import annotations

import time

import pytest
import redis.asyncio as aioredis

from routerd.access import shared as shared_module
from routerd.access.ledger import SpendEvent, SpendLedger
from routerd.access.shared import FLEET_REPORT_DAYS, MAX_PENDING_ROWS, SharedSpend
from routerd.testing.redis import RedisServer


def event(at: float, key: str, usd: float, user: str = "") -> SpendEvent:
    return SpendEvent(at, key, "team-1", user, "chat", usd, 10, 5, False)


def ledger() -> SpendLedger:
    book = SpendLedger(None)
    book.open(time.time())
    book.shared = True
    return book


async def test_two_ledgers_make_one_report_kept_for_the_retention(redis_server: RedisServer) -> None:
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        shared = SharedSpend(client)
        now = time.time()
        a, b = ledger(), ledger()
        a.record(event(now, "k1", 0.5))
        b.record(event(now, "k1", 0.25))
        b.record(event(now, "k2", 2.0))
        b.record(event(now - 40 * 86400, "k3", 9.0))  # older than the retention: never reported
        assert await shared.sync(a, now) and await shared.sync(b, now)
        rows = await shared.report("key", 0.0, now + 1)  # since 1970: only the kept hours are read
        assert [(r["name"], r["spend_usd"], r["requests"]) for r in rows] == [("k2", 2.0, 1), ("k1", 0.75, 2)]
        teams = await shared.report("team", now - 3600, now + 1)
        assert [(r["name"], r["prompt_tokens"], r["completion_tokens"]) for r in teams] == [
            ("team-1", 30, 15)
        ]
        hour = int(now // 3600) * 3600
        ttl = await client.ttl(f"routerd:spend:h:{hour}")
        expected = hour + 3600 + FLEET_REPORT_DAYS * 86400 - now
        assert abs(ttl - expected) <= 5
    finally:
        await client.aclose()


async def test_rows_waiting_for_redis_are_bounded(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert MAX_PENDING_ROWS == 100_000  # documented in keys.md; lowered here to see it act
    monkeypatch.setattr(shared_module, "MAX_PENDING_ROWS", 3)
    url = redis_server.url
    redis_server.kill()
    client = aioredis.Redis.from_url(url, socket_connect_timeout=0.2)
    try:
        shared = SharedSpend(client, timeout=0.5)
        book = ledger()
        now = time.time()
        for i in range(5):
            book.record(event(now, "k1", 0.1, user=f"user-{i}"))
        assert not await shared.sync(book, now)
        assert shared.dropped_rows == 2  # 3 rows wait for the next exchange, 2 left out of the report
        assert len(book.take_shared_hourly()) == 3
    finally:
        await client.aclose()
