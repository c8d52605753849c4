"""Plumbing shared by the Anthropic and Google fake upstreams: a loopback aiohttp server, request
recording and a queue of scripted replies. (Same conventions as :mod:`routerd.testing.openai_fake`:
``enqueue`` replies, read ``requests[-1].json``.)

A fake is a real HTTP server on ``127.0.0.1`` and a free port, so adapters are tested through the
same transports (aiohttp, httpx) and wire formats they use in production::

    async with FakeAnthropic() as fake:
        ... fake.base_url ... fake.requests[-1].json ...
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

import orjson
from aiohttp import web

ReplyT = TypeVar("ReplyT")


@dataclass(slots=True)
class RecordedRequest:
    """One request a fake received. Header names are lower-cased; ``json`` is None if not JSON."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    json: Any = None


@dataclass(slots=True)
class StreamPlan:
    """How a scripted stream misbehaves; counts are events already sent."""

    cut_after: int | None = None  # drop the connection (no terminating chunk) after this many events
    end_after: int | None = None  # end the body cleanly after this many events, answer unfinished
    hang_after: int | None = None  # stop sending after this many events; the connection stays open
    error_after: int | None = None  # send ``error_event`` after this many events, then end the body
    error_event: Any = None


class FakeServer(Generic[ReplyT]):
    """An aiohttp app on a loopback port; subclasses provide :meth:`routes` and a default reply."""

    def __init__(self, default: ReplyT) -> None:
        self.requests: list[RecordedRequest] = []
        self.replies: list[ReplyT] = []
        self.default = default
        self.port = 0
        #: calls whose client went away before the answer was complete (a cancelled stream, say)
        self.disconnects = 0
        self._runner: web.AppRunner | None = None

    def routes(self) -> list[web.RouteDef]:
        raise NotImplementedError

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``: what a deployment's ``api_base`` should be."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> Self:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.add_routes(self.routes())
        # handler_cancellation: a client that goes away cancels its handler, which counts it
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def enqueue(self, *replies: ReplyT) -> None:
        """Script the next calls, in order; without a scripted reply ``default`` answers."""
        self.replies.extend(replies)

    def next_reply(self) -> ReplyT:
        return self.replies.pop(0) if self.replies else self.default

    async def record(self, request: web.Request) -> RecordedRequest:
        """Read and remember a request (every handler calls this first)."""
        raw = await request.read()
        try:
            parsed = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            parsed = None
        recorded = RecordedRequest(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=raw,
            json=parsed,
        )
        self.requests.append(recorded)
        return recorded

    async def write_stream(
        self,
        request: web.Request,
        response: web.StreamResponse,
        events: list[Any],
        plan: StreamPlan,
        encode: Callable[[Any], bytes],
    ) -> web.StreamResponse:
        """Send ``events`` (encoded with ``encode``) on a prepared ``response``, misbehaving as
        ``plan`` says."""
        try:
            for sent, event in enumerate(events):
                if plan.cut_after is not None and sent >= plan.cut_after:
                    cut_connection(request)
                    return response
                if plan.hang_after is not None and sent >= plan.hang_after:
                    await asyncio.Event().wait()  # until the client disconnects (handler cancelled)
                if plan.error_after is not None and sent >= plan.error_after:
                    await response.write(encode(plan.error_event))
                    break
                if plan.end_after is not None and sent >= plan.end_after:
                    break
                await response.write(encode(event))
            await response.write_eof()
        except asyncio.CancelledError:
            self.disconnects += 1
            raise
        except ConnectionResetError:
            self.disconnects += 1
        return response


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(payload), status=status, headers=headers, content_type="application/json"
    )


async def open_event_stream(
    request: web.Request, headers: dict[str, str] | None = None
) -> web.StreamResponse:
    response = web.StreamResponse(status=200, headers={"cache-control": "no-cache", **(headers or {})})
    response.content_type = "text/event-stream"
    await response.prepare(request)
    return response


def cut_connection(request: web.Request) -> None:
    """Drop the connection mid-body, as a crashed upstream or a broken proxy does."""
    transport = request.transport
    if transport is not None:
        transport.abort()
