"""uvicorn's httptools protocol, with a shorter way through for the inference endpoints.

uvicorn serves every request through its ASGI middleware (proxy headers) and writes each response
in two ``transport.write`` calls: the head when the app sends ``http.response.start``, the body when
it sends ``http.response.body``. On loopback each write is a system call that also delivers the
data to the reader, so for small answers the second write is a measurable share of the request.

For ``POST`` to the three inference endpoints this protocol (selected with ``uvicorn.Config(http=
RouterdHttpProtocol)``) hands the request straight to :class:`~routerd.server.app.RouterdApp` and
gives that request's cycle a transport that holds the head back until the first body write, so a
complete answer leaves in one write. With uvicorn's access log on, the request still passes the
proxy-headers middleware (the log line shows the client address it resolves). Everything else --
other routes, ``Expect: 100-continue``, uvicorn's concurrency limit -- goes uvicorn's usual way.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from routerd.server.app import RouterdApp

__all__ = ["HeldHeadTransport", "RouterdHttpProtocol"]


class HeldHeadTransport:
    """A transport whose first write (a response head) waits to be joined with the next write.

    Any later write, ``close`` or ``abort`` sends the held head first, so nothing is lost or
    reordered; every other attribute is the real transport's.
    """

    __slots__ = ("_head", "_started", "_transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._head: bytes | None = None
        self._started = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._started:
            self._started = True
            self._head = bytes(data)
            return
        head, self._head = self._head, None
        self._transport.write(head + data if head is not None else data)

    def flush(self) -> None:
        head, self._head = self._head, None
        if head is not None:
            self._transport.write(head)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self.flush()
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def _find_routerd_app(app: Any) -> RouterdApp | None:
    """The RouterdApp inside uvicorn's middleware wrappers (each keeps the next in ``.app``)."""
    for _ in range(10):
        if isinstance(app, RouterdApp):
            return app
        app = getattr(app, "app", None)
        if app is None:
            return None
    return None


class RouterdHttpProtocol(HttpToolsProtocol):
    """See the module docstring."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._routerd_app = _find_routerd_app(self.app)

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        routerd_app = self._routerd_app
        if (
            routerd_app is not None
            and app is self.app  # not uvicorn's 503 for an exceeded concurrency limit
            and not cycle.waiting_for_100_continue
            and cycle.scope["method"] == "POST"
            and cycle.scope["path"] in routerd_app.fast_routes
        ):
            cycle.transport = HeldHeadTransport(cycle.transport)  # type: ignore[assignment]
            if not cycle.access_log:
                # only the access log reads the client address the proxy-headers middleware resolves
                app = routerd_app
        super()._start_asgi_task(cycle, app)
