"""The httpx client follows ``ROUTERD_UPSTREAM_MAX_CONNECTIONS`` (not httpx's own 100), and a call
with no timeout at all waits for a free connection at most ``ROUTERD_UPSTREAM_POOL_TIMEOUT`` seconds,
on either client. The holding loopback upstream of the fast client's cap test counts the sockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from routerd.errors import APIConnectionError
from routerd.http import FastHttpClient, HttpClient, HttpxClient, default_client
from routerd.http.conn import DEFAULT_POOL_TIMEOUT
from routerd.settings import HttpSettings
from tests.transport.test_connection_cap import HoldingUpstream, settle


@pytest.fixture
async def upstream() -> AsyncIterator[HoldingUpstream]:
    async with HoldingUpstream() as server:
        yield server


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # the httpx client honours proxy variables: the loopback upstream must be reached directly
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


_CALLS: list[asyncio.Future[object]] = []


def _post(client: HttpClient, url: str, timeout: float | None = 30) -> asyncio.Future[object]:
    call = asyncio.ensure_future(client.request("POST", url, headers={}, content=b"{}", timeout=timeout))
    _CALLS.append(call)
    return call


async def _close(client: HttpClient) -> None:
    """Cancel what a failed test left waiting, then close the client."""
    calls = list(_CALLS)
    _CALLS.clear()
    for call in calls:
        call.cancel()
    await asyncio.gather(*calls, return_exceptions=True)
    await client.aclose()


async def test_the_httpx_client_holds_the_connection_cap(upstream: HoldingUpstream) -> None:
    cap, extra = 3, 4
    client = default_client(HttpSettings(http_client="httpx", upstream_max_connections=cap))
    assert isinstance(client, HttpxClient)
    try:
        calls = [_post(client, upstream.url) for _ in range(cap + extra)]
        await settle(lambda: upstream.held == cap)
        for _ in range(20):  # the rest could (wrongly) connect now: give them the chance, then count
            await asyncio.sleep(0.005)
        assert upstream.accepted == cap
        assert not any(call.done() for call in calls)
        upstream.release.set()
        responses = await asyncio.wait_for(asyncio.gather(*calls), 30)
        assert [response.status for response in responses] == [200] * (cap + extra)  # type: ignore[attr-defined]
        assert upstream.most_open == cap
    finally:
        await _close(client)


async def test_past_httpx_own_default_of_100(upstream: HoldingUpstream) -> None:
    cap = 101  # httpx alone stops at 100 connections in all
    client = default_client(HttpSettings(http_client="httpx", upstream_max_connections=cap))
    try:
        calls = [_post(client, upstream.url) for _ in range(cap)]
        await settle(lambda: upstream.held == cap)
        assert upstream.accepted == cap
        upstream.release.set()
        await asyncio.wait_for(asyncio.gather(*calls), 30)
    finally:
        await _close(client)


@pytest.mark.parametrize("kind", ["fast", "httpx"])
async def test_a_call_without_timeout_waits_for_a_connection_within_the_pool_timeout(
    upstream: HoldingUpstream, kind: str
) -> None:
    settings = HttpSettings(http_client=kind, upstream_max_connections=1, upstream_pool_timeout=0.05)
    client = default_client(settings)
    try:
        held = _post(client, upstream.url, timeout=None)
        await settle(lambda: upstream.held == 1)
        with pytest.raises(APIConnectionError, match="no free connection") as caught:
            await asyncio.wait_for(
                client.request("POST", upstream.url, headers={}, content=b"{}", timeout=None), 30
            )
        assert caught.value.retryable  # the router fails over as for any connection error
        assert upstream.accepted == 1
        upstream.release.set()
        assert (await asyncio.wait_for(held, 30)).status == 200  # type: ignore[attr-defined]
    finally:
        await _close(client)


def test_the_pool_timeout_setting_reaches_both_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROUTERD_UPSTREAM_POOL_TIMEOUT", "7.5")
    assert HttpSettings().upstream_pool_timeout == 7.5
    monkeypatch.setenv("ROUTERD_HTTP_CLIENT", "fast")
    fast = default_client()
    assert isinstance(fast, FastHttpClient) and fast._pool_timeout == 7.5
    monkeypatch.setenv("ROUTERD_HTTP_CLIENT", "httpx")
    slow = default_client()
    assert isinstance(slow, HttpxClient) and slow._pool_timeout == 7.5
    assert HttpSettings.model_fields["upstream_pool_timeout"].default == DEFAULT_POOL_TIMEOUT


def test_the_httpx_cap_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        HttpxClient(max_connections=0)
