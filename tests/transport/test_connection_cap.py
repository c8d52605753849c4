"""The fast client's cap on connections per upstream (``ROUTERD_UPSTREAM_MAX_CONNECTIONS``).

A loopback upstream holds every request until the test lets go, so calls pile up exactly as they do
against a slow provider under load; it counts the sockets it accepted. Every wait is bounded in
count and time by :func:`settle`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from routerd.errors import APIConnectionError
from routerd.http import FastHttpClient, default_client
from routerd.http.conn import NoFreeConnection, Origin, Pool
from routerd.settings import HttpSettings

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


class HoldingUpstream:
    """Answers each request only once :attr:`release` is set; counts accepted and open sockets."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.accepted = 0
        self.open = 0
        self.most_open = 0
        self.held = 0  # requests read and waiting for release
        self.answered = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/v1/chat/completions"

    async def __aenter__(self) -> HoldingUpstream:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.accepted += 1
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                self.held += 1
                await self.release.wait()
                self.held -= 1
                writer.write(ANSWER)
                await writer.drain()
                self.answered += 1
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # the client went away, or the test is over (a cancelled handler would be logged)
        finally:
            self.open -= 1
            self._tasks.discard(task)
            writer.close()


async def settle(condition: Callable[[], bool], rounds: int = 500) -> None:
    """Let the loop run until ``condition`` holds: at most ``rounds`` steps of 10 ms."""
    for _ in range(rounds):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


@pytest.fixture
async def upstream() -> AsyncIterator[HoldingUpstream]:
    async with HoldingUpstream() as server:
        yield server


def capped_client(cap: int) -> FastHttpClient:
    client = default_client(HttpSettings(http_client="fast", upstream_max_connections=cap))
    assert isinstance(client, FastHttpClient)
    return client


async def test_calls_over_the_cap_wait_for_a_connection(upstream: HoldingUpstream) -> None:
    cap, extra = 3, 4
    client = capped_client(cap)
    try:
        calls = [
            asyncio.ensure_future(client.request("POST", upstream.url, headers={}, content=b"{}", timeout=30))
            for _ in range(cap + extra)
        ]
        await settle(lambda: upstream.held == cap)
        # the rest wait in the client: give them the chance to (wrongly) connect, then count
        for _ in range(20):
            await asyncio.sleep(0.005)
        assert upstream.accepted == cap
        assert not any(call.done() for call in calls)
        upstream.release.set()
        responses = await asyncio.wait_for(asyncio.gather(*calls), 30)
        assert [response.status for response in responses] == [200] * (cap + extra)
        assert upstream.answered == cap + extra
        # the waiting calls were handed the connections that came back: none was opened for them
        assert upstream.accepted == cap
        assert upstream.most_open == cap
    finally:
        await client.aclose()


async def test_a_stream_waits_for_a_connection_too(upstream: HoldingUpstream) -> None:
    client = capped_client(1)
    try:
        first = asyncio.ensure_future(
            client.request("POST", upstream.url, headers={}, content=b"{}", timeout=30)
        )
        await settle(lambda: upstream.held == 1)

        async def streamed() -> bytes:
            async with client.stream("POST", upstream.url, headers={}, content=b"{}", timeout=30) as stream:
                return await stream.aread()

        second = asyncio.ensure_future(streamed())
        for _ in range(20):
            await asyncio.sleep(0.005)
        assert upstream.accepted == 1 and not second.done()
        upstream.release.set()
        assert (await asyncio.wait_for(first, 30)).content == b"{}"
        assert await asyncio.wait_for(second, 30) == b"{}"
        assert upstream.accepted == 1
    finally:
        await client.aclose()


async def test_a_wait_past_the_deadline_is_a_retryable_connection_error(upstream: HoldingUpstream) -> None:
    client = capped_client(1)
    try:
        held = asyncio.ensure_future(
            client.request("POST", upstream.url, headers={}, content=b"{}", timeout=30)
        )
        await settle(lambda: upstream.held == 1)
        with pytest.raises(APIConnectionError, match="ROUTERD_UPSTREAM_MAX_CONNECTIONS") as caught:
            await client.request("POST", upstream.url, headers={}, content=b"{}", timeout=0.05)
        assert caught.value.retryable  # the router retries and fails over as for any connection error
        assert type(caught.value) is APIConnectionError  # not a Timeout: the upstream never saw it
        assert upstream.accepted == 1
        upstream.release.set()
        assert (await asyncio.wait_for(held, 30)).status == 200
        # the slot given up by the timed-out call is not lost: the next call gets the connection
        response = await client.request("POST", upstream.url, headers={}, content=b"{}", timeout=30)
        assert response.status == 200
        assert upstream.accepted == 1
    finally:
        await client.aclose()


async def test_a_closed_connection_frees_its_slot(upstream: HoldingUpstream) -> None:
    client = capped_client(1)
    try:
        held = asyncio.ensure_future(
            client.request("POST", upstream.url, headers={}, content=b"{}", timeout=30)
        )
        await settle(lambda: upstream.held == 1)
        waiting = asyncio.ensure_future(
            client.request("POST", upstream.url, headers={}, content=b"{}", timeout=30)
        )
        await asyncio.sleep(0.02)
        held.cancel()  # the abandoned call drops its connection: the waiting call opens a new one
        await settle(lambda: upstream.accepted == 2 and upstream.held == 2)  # the first still sleeps
        assert not waiting.done()
        upstream.release.set()
        assert (await asyncio.wait_for(waiting, 30)).status == 200
        assert client._get_pool().open == {Origin("http", "127.0.0.1", port(upstream)).key: 1}
    finally:
        await client.aclose()


def port(upstream: HoldingUpstream) -> int:
    return int(upstream.url.split(":")[2].split("/")[0])


async def test_a_slot_handed_to_a_call_that_just_gave_up_goes_to_the_next() -> None:
    pool = Pool(asyncio.get_running_loop(), max_idle=4, idle_timeout=30, max_connections=1)
    origin = Origin("http", "127.0.0.1", 9)
    assert await pool.acquire(origin, None) is None  # the one slot, taken
    gives_up = asyncio.ensure_future(pool.acquire(origin, None))
    next_in_line = asyncio.ensure_future(pool.acquire(origin, None))
    await asyncio.sleep(0)
    pool.free_slot(origin.key)  # handed to the first waiter ...
    gives_up.cancel()  # ... which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await gives_up
    assert await asyncio.wait_for(next_in_line, 5) is None
    assert pool.open == {origin.key: 1}


async def test_waiting_calls_fail_when_the_client_closes() -> None:
    pool = Pool(asyncio.get_running_loop(), max_idle=4, idle_timeout=30, max_connections=1)
    origin = Origin("http", "127.0.0.1", 9)
    assert await pool.acquire(origin, None) is None
    waiting = asyncio.ensure_future(pool.acquire(origin, None))
    await asyncio.sleep(0)
    pool.close()
    with pytest.raises(NoFreeConnection):
        await asyncio.wait_for(waiting, 5)


def test_the_setting_reaches_the_default_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROUTERD_UPSTREAM_MAX_CONNECTIONS", "7")
    monkeypatch.setenv("ROUTERD_HTTP_CLIENT", "fast")
    client = default_client()
    assert isinstance(client, FastHttpClient)
    assert client._max_connections == 7
    assert HttpSettings().upstream_max_connections == 7


def test_the_cap_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        FastHttpClient(max_connections_per_origin=0)
