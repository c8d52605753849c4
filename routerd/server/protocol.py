"""uvicorn's httptools protocol, with a shorter way through for the inference endpoints.

For every response uvicorn validates each header with two regular expressions and writes the head
and the body in two ``transport.write`` calls (on loopback each is a system call that also hands the
data to the reader). With a dozen headers per answer, in a server whose own work per request is a
few hundred microseconds, that is several percent of it, plus uvicorn's proxy-headers middleware.

For ``POST`` to the three inference endpoints this protocol (``uvicorn.Config(http=
RouterdHttpProtocol)``) hands the request straight to :class:`~routerd.server.app.RouterdApp` and
gives it a ``send`` that renders a complete answer (``http.response.start`` followed by a single
``http.response.body``) itself -- the same status line, uvicorn's default headers and keep-alive
handling, and uvicorn's access-log record when that log is on -- and writes it at once, checking
every header in one pass. Streams and answers it cannot vouch for go to uvicorn's ``send`` unchanged.
With the access log on, the request still passes the proxy-headers middleware (the log shows the
client address it resolves). Other routes, ``Expect: 100-continue`` and uvicorn's concurrency limit
go uvicorn's usual way.

This leans on uvicorn internals (``_start_asgi_task`` and the cycle's attributes), which is why
pyproject.toml bounds uvicorn's version and tests/server/test_protocol.py checks the direct path is
really taken.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol, RequestResponseCycle
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string

from routerd.server.app import RouterdApp

__all__ = ["RouterdHttpProtocol"]

# What must not appear in a header name (RFC 9110 token) or value (controls other than tab)
_BAD_NAME = re.compile(rb"[^!#$%&'*+\-.^_`|~0-9a-zA-Z]")
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
# Headers that change framing or the connection: answers carrying them take uvicorn's way.
_FRAMING = frozenset({b"connection", b"transfer-encoding", b"content-length"})


def _render(cycle: RequestResponseCycle, start: Message, body: bytes) -> bytes | None:
    """The whole HTTP/1.1 answer, or None when uvicorn should write this one."""
    status = start["status"]
    status_line = STATUS_LINE.get(status)
    if status_line is None or status in (204, 304):
        return None
    names: list[bytes] = []
    values: list[bytes] = []
    parts = [status_line]
    length: bytes | None = None
    for name, value in (*cycle.default_headers, *start.get("headers", ())):
        lower = name.lower()
        if lower in _FRAMING:
            if lower != b"content-length" or length is not None:
                return None
            length = value
            continue
        names.append(lower)
        values.append(value)
        parts += (lower, b": ", value, b"\r\n")
    if length is None or length.strip() != b"%d" % len(body):
        return None
    # one scan each over all names and all values (tab is allowed in a value, so it joins them)
    if _BAD_NAME.search(b"".join(names)) or _BAD_VALUE.search(b"\t".join(values)):
        return None
    parts += (b"content-length: ", length.strip(), b"\r\n")
    if not cycle.keep_alive:
        parts.append(b"connection: close\r\n")
    parts += (b"\r\n", body)
    return b"".join(parts)


class _DirectSend:
    """The ASGI ``send`` of one fast-path request (see the module docstring)."""

    __slots__ = ("_cycle", "_start")

    def __init__(self, cycle: RequestResponseCycle) -> None:
        self._cycle = cycle
        self._start: Message | None = None

    async def __call__(self, message: Message) -> None:
        cycle = self._cycle
        if message["type"] == "http.response.start" and self._start is None and not cycle.response_started:
            self._start = message  # held until the body shows whether this is a complete answer
            return
        start, self._start = self._start, None
        if start is not None:
            if (
                message["type"] == "http.response.body"
                and not message.get("more_body", False)
                and not cycle.disconnected
                and not cycle.flow.write_paused
                and self._write(start, message.get("body", b""))
            ):
                return
            await cycle.send(start)  # type: ignore[arg-type]
        await cycle.send(message)  # type: ignore[arg-type]

    def _write(self, start: Message, body: bytes) -> bool:
        cycle = self._cycle
        answer = _render(cycle, start, body)
        if answer is None:
            return False
        if cycle.access_log:
            # the record uvicorn's access formatter expects: client, method, path, HTTP version, status
            scope = cycle.scope
            cycle.access_logger.info(
                '%s - "%s %s HTTP/%s" %d',
                get_client_addr(scope),
                scope["method"],
                get_path_with_query_string(scope),
                scope["http_version"],
                start["status"],
            )
        # the state uvicorn's own send leaves behind after a complete answer
        cycle.response_started = cycle.response_complete = True
        cycle.transport.write(answer)
        cycle.message_event.set()
        if not cycle.keep_alive:
            cycle.transport.close()
        cycle.on_response()
        return True


class _FastApp:
    """Runs RouterdApp for one request with that request's direct ``send``."""

    __slots__ = ("_app", "_send")

    def __init__(self, app: ASGIApp, cycle: RequestResponseCycle) -> None:
        self._app = app
        self._send = _DirectSend(cycle)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, self._send)


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
            # only the access log reads the client address the proxy-headers middleware resolves
            app = _FastApp(app if cycle.access_log else routerd_app, cycle)
        super()._start_asgi_task(cycle, app)
