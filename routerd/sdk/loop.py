"""Where the SDK's asynchronous core runs.

* Synchronous calls (``routerd.completion``) run on **one** event loop owned by the SDK, in a daemon
  thread started on first use and reused by every later call. A sync call works the same inside and
  outside a running event loop (a Jupyter cell, a FastAPI handler): it hands its coroutine to that
  loop and waits, so there is no loop per call and no thread per call.
* Asynchronous calls (``routerd.acompletion``) run on the caller's loop.

HTTP clients are bound to the loop they were created on, so :class:`LoopLocalHttp` keeps one client
per loop (keyed weakly by the loop) and hands each request to the running loop's client. The client of
a loop started by ``asyncio.run`` (or any runner that calls ``loop.shutdown_asyncgens()``) is closed
when that loop shuts down; the background loop shuts its generators down, and so closes its client,
at interpreter exit.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import threading
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

from routerd.http import HttpClient, HttpResponse, StreamResponse, default_client

__all__ = ["BackgroundLoop", "LoopLocalHttp", "background_loop", "shared_http"]

T = TypeVar("T")

_THREAD_NAME = "routerd-sdk-loop"


class BackgroundLoop:
    """An event loop running forever on a daemon thread, started lazily and shared.

    :meth:`run` submits a coroutine and blocks the calling thread until it finishes. Cleanups
    registered with :meth:`on_close` run on the loop when it is closed (at interpreter exit).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._cleanups: list[Callable[[], Awaitable[None]]] = []

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread

    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop, starting its thread on first use."""
        loop = self._loop
        if loop is not None:
            return loop
        with self._lock:
            if self._loop is None:
                self._start()
            assert self._loop is not None
            return self._loop

    def _start(self) -> None:
        loop = asyncio.new_event_loop()
        started = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(started.set)
            loop.run_forever()

        thread = threading.Thread(target=serve, name=_THREAD_NAME, daemon=True)
        thread.start()
        started.wait()
        self._loop, self._thread = loop, thread

    def run(self, awaitable: Coroutine[Any, Any, T]) -> T:
        """Run ``awaitable`` on the background loop and return its result (or raise its error).

        An interrupt (Ctrl-C) of the waiting thread cancels the coroutine before propagating.
        """
        loop = self.loop()
        if _running_loop() is loop:
            awaitable.close()
            raise RuntimeError(
                "a synchronous routerd call was made from the SDK's own event loop; use the async API"
            )
        future = asyncio.run_coroutine_threadsafe(awaitable, loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    def submit(self, awaitable: Coroutine[Any, Any, Any]) -> None:
        """Schedule ``awaitable`` on the background loop without waiting (used by finalizers)."""
        loop = self._loop
        if loop is None or loop.is_closed() or not self.running:
            awaitable.close()
            return
        try:
            asyncio.run_coroutine_threadsafe(awaitable, loop)
        except RuntimeError:  # the loop is closing
            awaitable.close()

    def on_close(self, cleanup: Callable[[], Awaitable[None]]) -> None:
        """Run ``cleanup()`` on the loop when it closes."""
        self._cleanups.append(cleanup)

    def close(self, timeout: float = 5.0) -> None:
        """Run the cleanups, stop the loop and join its thread. The next call starts a new one."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
            cleanups, self._cleanups = self._cleanups, []
        if loop is None or thread is None:
            return
        if thread.is_alive() and not loop.is_closed():

            async def shutdown() -> None:
                for cleanup in reversed(cleanups):
                    with contextlib.suppress(Exception):
                        await cleanup()
                await loop.shutdown_asyncgens()

            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)
        if not thread.is_alive() and not loop.is_closed():
            loop.close()

    def _forget_after_fork(self) -> None:
        # In a forked child the thread does not exist; start afresh on the next call.
        self._lock = threading.Lock()
        self._loop = self._thread = None
        self._cleanups = []


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


background_loop = BackgroundLoop()
atexit.register(background_loop.close)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=background_loop._forget_after_fork)


# --- one HTTP client per event loop -------------------------------------------------------------


class _LoopClient:
    """The client of one loop, and the sentinel generator that closes it when the loop shuts down."""

    __slots__ = ("client", "sentinel")

    def __init__(self, client: HttpClient) -> None:
        self.client = client
        self.sentinel: AsyncGenerator[None, None] | None = None


async def _close_on_shutdown(client: HttpClient, forget: Callable[[], None]) -> AsyncGenerator[None, None]:
    # An async generator parked at its yield is closed by ``loop.shutdown_asyncgens()``, which
    # ``asyncio.run`` (and pytest's and Jupyter's runners) call while the loop can still run code:
    # the one point where a loop-bound client can be closed cleanly.
    try:
        yield
    finally:
        forget()
        with contextlib.suppress(Exception):
            await client.aclose()


class LoopLocalHttp:
    """An :class:`~routerd.http.HttpClient` that uses a separate client per event loop.

    ``factory`` makes a client for the running loop on its first request (default: the daemon's
    client, :func:`routerd.http.default_client`). One instance is shared by every router the SDK builds, so a loop of calls to
    different models still reuses connections.
    """

    def __init__(self, factory: Callable[[], HttpClient] = default_client) -> None:
        self._factory = factory
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClient] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """Loops with a live client (for tests and diagnostics)."""
        return sum(1 for loop in list(self._clients) if not loop.is_closed())

    async def _client(self) -> HttpClient:
        loop = asyncio.get_running_loop()
        entry = self._clients.get(loop)
        if entry is not None:
            return entry.client
        with self._lock:
            entry = self._clients.get(loop)
            if entry is None:
                self._prune()
                entry = _LoopClient(self._factory())
                self._clients[loop] = entry
                created = True
            else:
                created = False
        if created:
            loop_ref = weakref.ref(loop)
            entry.sentinel = _close_on_shutdown(entry.client, lambda: self._forget(loop_ref))
            await entry.sentinel.__anext__()
        return entry.client

    def _forget(self, loop_ref: weakref.ref[asyncio.AbstractEventLoop]) -> None:
        loop = loop_ref()
        if loop is not None:
            with self._lock:
                self._clients.pop(loop, None)

    def _forget_all(self) -> None:
        self._lock = threading.Lock()
        self._clients = weakref.WeakKeyDictionary()

    def _prune(self) -> None:
        # Loops closed without shutting their generators down (a bare ``loop.close()``) leave their
        # entry behind; their clients cannot be closed any more, only forgotten.
        for loop in [loop for loop in self._clients if loop.is_closed()]:
            self._clients.pop(loop, None)

    async def _close_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        entry = self._clients.pop(loop, None)
        if entry is not None:
            if entry.sentinel is not None:
                with contextlib.suppress(Exception):
                    await entry.sentinel.aclose()
            else:
                await entry.client.aclose()

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        content: bytes | None = None,
        timeout: float | None = None,
        files: Any = None,
        data: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> HttpResponse:
        client = await self._client()
        return await client.request(
            method,
            url,
            headers=headers,
            content=content,
            timeout=timeout,
            files=files,
            data=data,
            params=params,
        )

    @contextlib.asynccontextmanager
    async def stream(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        content: bytes | None = None,
        timeout: float | None = None,
    ) -> AsyncIterator[StreamResponse]:
        client = await self._client()
        context: AbstractAsyncContextManager[StreamResponse] = client.stream(
            method, url, headers=headers, content=content, timeout=timeout
        )
        async with context as response:
            yield response

    async def aclose(self) -> None:
        """Close the running loop's client (other loops close theirs when they shut down)."""
        await self._close_loop(asyncio.get_running_loop())


_shared: LoopLocalHttp | None = None
_shared_lock = threading.Lock()


def _forget_shared_after_fork() -> None:
    # The parent's clients hold the parent's sockets: a forked child must neither use nor close them
    # (closing would shut the parent's connections); it forgets them and opens its own.
    if _shared is not None:
        _shared._forget_all()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_shared_after_fork)


def shared_http() -> LoopLocalHttp:
    """The per-loop HTTP client every SDK-built router uses."""
    global _shared
    if _shared is None:
        with _shared_lock:
            if _shared is None:
                _shared = LoopLocalHttp()
    return _shared
