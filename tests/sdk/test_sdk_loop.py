"""The SDK's background loop and per-loop HTTP clients: no loop, thread or connection per call."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import pytest

import routerd
from routerd.http import HttpResponse
from routerd.sdk import completion
from routerd.sdk.loop import BackgroundLoop, LoopLocalHttp, background_loop, shared_http
from tests.sdk.conftest import OPENAI_KEY

MESSAGES = [{"role": "user", "content": "Hello!"}]


async def answer(value: int) -> int:
    await asyncio.sleep(0)
    return value * 2


async def fail() -> None:
    raise routerd.RateLimitError("slow down")


def test_run_returns_results_and_raises_errors_on_one_reused_thread() -> None:
    loop = BackgroundLoop()
    try:
        assert loop.run(answer(21)) == 42
        thread = loop.thread
        with pytest.raises(routerd.RateLimitError):
            loop.run(fail())
        assert loop.run(answer(1)) == 2
        assert loop.thread is thread and thread is not None and thread.daemon
    finally:
        loop.close()
    assert not loop.running


async def test_run_works_inside_a_running_event_loop() -> None:
    # what a Jupyter cell does: a synchronous call while the notebook's loop is running
    loop = BackgroundLoop()
    try:
        assert loop.run(answer(5)) == 10
    finally:
        loop.close()


def test_a_sync_call_from_the_sdk_loop_itself_is_refused() -> None:
    loop = BackgroundLoop()

    async def reenter() -> None:
        loop.run(answer(1))

    try:
        with pytest.raises(RuntimeError, match="async API"):
            loop.run(reenter())
    finally:
        loop.close()


def test_close_runs_cleanups_on_the_loop() -> None:
    loop = BackgroundLoop()
    seen: list[bool] = []

    async def cleanup() -> None:
        seen.append(asyncio.get_running_loop() is not None)

    loop.loop()
    loop.on_close(cleanup)
    loop.close()
    assert seen == [True]


class RecordingClient:
    """An HttpClient that answers 200 and remembers whether it was closed."""

    instances: list[RecordingClient] = []

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.closed = False
        RecordingClient.instances.append(self)

    async def request(self, method: str, url: str, **kwargs: Any) -> HttpResponse:
        assert asyncio.get_running_loop() is self.loop  # never used from another loop
        return HttpResponse(200, {}, b"{}")

    @asynccontextmanager
    async def stream(self, method: str, url: str, **kwargs: Any) -> AsyncIterator[Any]:
        yield None

    async def aclose(self) -> None:
        self.closed = True


def test_each_loop_gets_its_own_client_closed_when_the_loop_shuts_down() -> None:
    RecordingClient.instances = []
    http = LoopLocalHttp(RecordingClient)

    async def two_requests() -> None:
        headers: Mapping[str, str] = {}
        await http.request("POST", "http://x", headers=headers)
        await http.request("POST", "http://x", headers=headers)

    asyncio.run(two_requests())
    asyncio.run(two_requests())
    first, second = RecordingClient.instances
    assert first is not second  # one client per loop, reused within the loop
    assert first.closed and second.closed  # closed by asyncio.run's shutdown of async generators
    assert len(http) == 0


def own_threads() -> int:
    """Threads other than asyncio's default-executor workers."""
    return sum(not t.name.startswith("asyncio_") for t in threading.enumerate())


def executor_threads() -> int:
    return sum(t.name.startswith("asyncio_") for t in threading.enumerate())


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_many_sync_calls_leak_no_threads_loops_or_connections(openai_fake: Any) -> None:
    def call() -> str:
        response = completion(
            model="gpt-4", messages=MESSAGES, api_key=OPENAI_KEY, base_url=openai_fake.base_url
        )
        return str(response.choices[0].message.content)

    assert call() == "Hello!"  # warm up: the background loop, its client, one connection
    threads, fds = own_threads(), fd_count()
    sdk_loop = background_loop.loop()
    for _ in range(200):
        call()
    assert own_threads() == threads
    # aiohttp looks up netrc/proxy settings in the loop's default executor on every request; that pool
    # may add a worker when two lookups overlap, but it is bounded (a leak would add one per call)
    assert executor_threads() <= 3
    assert fd_count() <= fds + 2  # keep-alive connections are reused, not piled up
    assert background_loop.loop() is sdk_loop
    assert len(openai_fake.requests) == 201


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_many_async_runs_close_their_clients(openai_fake: Any) -> None:
    async def call() -> None:
        await routerd.sdk.acompletion(
            model="gpt-4", messages=MESSAGES, api_key=OPENAI_KEY, base_url=openai_fake.base_url
        )

    asyncio.run(call())
    threads, fds = threading.active_count(), fd_count()
    for _ in range(20):
        asyncio.run(call())  # a new loop each time: its client must not outlive it
    assert threading.active_count() == threads
    assert fd_count() <= fds + 2
    live = [loop for loop in list(shared_http()._clients) if not loop.is_closed()]
    assert all(loop is background_loop.loop() for loop in live)


async def test_sync_completion_inside_a_running_loop(openai_fake: Any) -> None:
    response = completion(model="gpt-4", messages=MESSAGES, api_key=OPENAI_KEY, base_url=openai_fake.base_url)
    assert response.choices[0].message.content == "Hello!"
