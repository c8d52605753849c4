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
every header in one pass. A stream (body messages with ``more_body``) is written the same way: its
head with what the first upstream read brought in one write, then one write per upstream read, with
uvicorn's flow control; the client's disconnect cancels the request's task, which closes the upstream (the server
then needs no task watching ``receive`` per stream). Answers it cannot vouch for go to uvicorn's
``send`` unchanged.
With the access log on, the request still passes the proxy-headers middleware (the log shows the
client address it resolves). Other routes, ``Expect: 100-continue`` and uvicorn's concurrency limit
go uvicorn's usual way.

The protocol also bounds what a client holds before it has authenticated (issue 21, M2; the limits
are in :mod:`routerd.server.limits`): the size of a request head (431, or 414 for the URL), the time a
head may take to arrive (slow heads: the connection is closed), the time a body may take, the idle time
of a kept-alive connection, and the number of open connections (past it the longest-idle connection is
closed, so a flood of idle or slow connections cannot shut out probes and real clients). Requests
uvicorn's parser rejects are answered in OpenAI's error shape. When a client disconnects before the
first byte of its answer, or during a stream on the direct path, the request's task is cancelled, so
upstream calls and retries stop with it (a stream through uvicorn's ``send`` is watched by Starlette's
streaming response).

This leans on uvicorn internals (``_start_asgi_task``, the parser callbacks and the cycle's attributes),
which is why pyproject.toml bounds uvicorn's version, :func:`check_uvicorn` refuses to start without
them, and tests/server/test_protocol.py checks the direct path is really taken.
"""

from __future__ import annotations

import asyncio
import re
import weakref
from itertools import chain
from typing import Any

import httptools
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol, RequestResponseCycle
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string
from uvicorn.server import ServerState

from routerd.server.answer_headers import HEAD_BLOCK, asgi_start
from routerd.server.app import RouterdApp
from routerd.server.limits import ConnectionLimits, raw_error

__all__ = ["RouterdHttpProtocol", "check_uvicorn"]

# The uvicorn internals this module overrides or calls; uvicorn added _start_asgi_task in 0.45.
_HOOKS = (
    "_start_asgi_task",
    "on_message_begin",
    "on_headers_complete",
    "on_message_complete",
    "on_response_complete",
    "send_400_response",
    "data_received",
    "connection_made",
    "connection_lost",
)


def check_uvicorn() -> None:
    """Raise RuntimeError when the installed uvicorn lacks an internal this protocol relies on.

    Without ``_start_asgi_task`` the override would simply never be called: the fast path, the
    connection bounds and the cancellation on disconnect would be lost without a word.
    """
    missing = [name for name in _HOOKS if not callable(getattr(HttpToolsProtocol, name, None))]
    if missing:
        import uvicorn

        raise RuntimeError(
            f"uvicorn {uvicorn.__version__} lacks {', '.join(missing)}, which routerd's HTTP protocol "
            "overrides; install the uvicorn version pyproject.toml allows (>=0.45,<0.60)"
        )


check_uvicorn()

# What must not appear in a header name (RFC 9110 token) or value (controls other than tab)
_BAD_NAME = re.compile(rb"[^!#$%&'*+\-.^_`|~0-9a-zA-Z]")
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
# Headers that change framing or the connection: answers carrying them take uvicorn's way.
_FRAMING = frozenset({b"connection", b"transfer-encoding", b"content-length"})


def _render(cycle: RequestResponseCycle, start: Message, body: bytes) -> bytes | None:
    """The whole HTTP/1.1 answer, or None when uvicorn should write this one."""
    return _render_head(cycle, start, body, stream=False)


def _render_stream(cycle: RequestResponseCycle, start: Message, body: bytes) -> bytes | None:
    """The head of a chunked answer with ``body`` as its first chunk, or None when uvicorn should
    write this one (the start message must not carry a length)."""
    return _render_head(cycle, start, body, stream=True)


def _render_head(cycle: RequestResponseCycle, start: Message, body: bytes, *, stream: bool) -> bytes | None:
    status = start["status"]
    status_line = STATUS_LINE.get(status)
    if status_line is None or status in (204, 304):
        return None
    defaults = _default_lines(cycle.default_headers)
    rendered = _header_lines(start.get("headers", ()))
    if defaults is None or rendered is None:
        return None
    lines, length = rendered
    if stream:
        if length is not None:
            return None
    elif length is None or length != b"%d" % len(body):
        return None
    parts = [status_line, defaults, lines]
    block = start.get(HEAD_BLOCK)
    if block:
        parts.append(block)  # routerd's own lines, checked when they were rendered
    if length is None:
        parts.append(b"transfer-encoding: chunked\r\n")
    else:
        parts += (b"content-length: ", length, b"\r\n")
    if not cycle.keep_alive:
        parts.append(b"connection: close\r\n")
    parts += (b"\r\n", _chunk(body) if stream else body)
    return b"".join(parts)


def _header_lines(headers: Any) -> tuple[bytes, bytes | None] | None:
    """ASGI ``headers`` as ``name: value\\r\\n`` lines (names lower-cased) and the content-length
    value they carry; None when they must go uvicorn's way (a framing header, a bad name or value)."""
    names: list[bytes] = []
    values: list[bytes] = []
    parts: list[bytes] = []
    length: bytes | None = None
    for name, value in headers:
        lower = name.lower()
        if lower in _FRAMING:
            if lower != b"content-length" or length is not None:
                return None
            length = value.strip()
            continue
        names.append(lower)
        values.append(value)
        parts += (lower, b": ", value, b"\r\n")
    # one scan each over all names and all values (tab is allowed in a value, so it joins them)
    if _BAD_NAME.search(b"".join(names)) or _BAD_VALUE.search(b"\t".join(values)):
        return None
    return b"".join(parts), length


# uvicorn's default headers (date, server): the list it makes (each second, for the date), as lines
_defaults: tuple[object, bytes | None] = (None, None)


def _default_lines(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """uvicorn's default ``headers`` as lines, rendered once per list (None: uvicorn's way). The
    list itself is kept, so the identity check cannot match a later list at the same address."""
    global _defaults
    if headers is not _defaults[0]:
        rendered = _header_lines(headers)
        _defaults = (headers, rendered[0] if rendered is not None and rendered[1] is None else None)
    return _defaults[1]


def _chunk(body: bytes) -> bytes:
    """``body`` as one chunk of a chunked HTTP/1.1 body (nothing for an empty one: that ends it)."""
    return b"%x\r\n%b\r\n" % (len(body), body) if body else b""


class _DirectSend:
    """The ASGI ``send`` of one fast-path request (see the module docstring).

    A stream (``more_body``) is written directly too: its head and each body message (one chunk of
    the chunked body each) are held while the request's task runs and written together when it
    next waits (one write per upstream read; a stream that ends before it waits -- its whole answer
    in one upstream read -- is one write with its end, like a complete answer), and waiting while
    the client's transport buffer is full (uvicorn's flow control). The request's task is cancelled
    if the client disconnects meanwhile (:meth:`RouterdHttpProtocol.connection_lost`), which stops
    the relay and closes the upstream.
    """

    __slots__ = ("_cycle", "_pending", "_start", "streaming")

    #: the server may write a stream through this send without watching for the disconnect itself
    streams_direct = True
    #: start messages may carry pre-rendered header lines (routerd.server.answer_headers)
    head_blocks = True

    def __init__(self, cycle: RequestResponseCycle) -> None:
        self._cycle = cycle
        self._start: Message | None = None
        self._pending: list[bytes] = []  # stream chunks to write when the task next waits
        self.streaming = False  # a stream's head is out and its body is not complete

    async def __call__(self, message: Message) -> None:
        cycle = self._cycle
        if self.streaming:
            await self._stream(message)
            return
        if message["type"] == "http.response.start" and self._start is None and not cycle.response_started:
            self._start = message  # held until the body shows whether this is a complete answer
            return
        start, self._start = self._start, None
        if start is not None:
            if (
                message["type"] == "http.response.body"
                and not cycle.disconnected
                and not cycle.flow.write_paused
                and self._write(start, message.get("body", b""), more=message.get("more_body", False))
            ):
                return
            await cycle.send(asgi_start(start))  # type: ignore[arg-type]
        await cycle.send(asgi_start(message))  # type: ignore[arg-type]

    async def _stream(self, message: Message) -> None:
        """One body message of a stream whose head this send wrote."""
        cycle = self._cycle
        if message["type"] != "http.response.body":
            raise RuntimeError(f"Expected ASGI message 'http.response.body', but got '{message['type']}'.")
        if cycle.flow.write_paused and not cycle.disconnected:
            self._flush()
            await cycle.flow.drain()  # back-pressure: the client reads slower than the upstream sends
        if cycle.disconnected:
            self._pending.clear()
            return  # as uvicorn's send; the request's task is being cancelled
        data = _chunk(message.get("body", b""))
        if message.get("more_body", False):
            if data:
                self._hold(data)
            return
        if self._pending:
            data = b"".join(self._pending) + data
            self._pending.clear()
        self._complete(data + b"0\r\n\r\n")

    def _hold(self, data: bytes) -> None:
        """Write ``data`` when the task next waits (for the upstream): the chunks made from one
        upstream read go out in one write, however many messages they took."""
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        self._pending.append(data)

    def _flush(self) -> None:
        """Write the chunks held since the last write (see :meth:`_stream`)."""
        pending = self._pending
        if not pending:
            return
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        pending.clear()
        if not self._cycle.disconnected:
            self._cycle.transport.write(data)

    def _complete(self, data: bytes) -> None:
        """Write the end of the answer and leave the state uvicorn's own send leaves behind."""
        cycle = self._cycle
        self.streaming = False
        cycle.response_complete = True
        cycle.transport.write(data)
        cycle.message_event.set()
        if not cycle.keep_alive:
            cycle.transport.close()
        cycle.on_response()

    def _write(self, start: Message, body: bytes, *, more: bool) -> bool:
        cycle = self._cycle
        complete = None if more else _render(cycle, start, body)
        chunked = complete is None
        # else a stream (no length): its head and first chunk; the whole of it when that chunk is its
        # last (a short answer that arrived in one upstream read)
        answer = _render_stream(cycle, start, body) if complete is None else complete
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
        cycle.response_started = True
        if chunked:
            cycle.chunked_encoding = True
            if more:
                # Written when the task next waits, as later blocks are: a stream whose whole answer
                # came in one upstream read goes out with its end in one write, as a complete answer.
                self.streaming = True
                self._hold(answer)
                return True
            answer += b"0\r\n\r\n"
        self._complete(answer)
        return True


class _Request:
    """Runs the app for one request: records its task (to cancel it when the client leaves) and, on
    the fast path, gives it that request's direct ``send``."""

    __slots__ = ("_app", "_send", "disconnected", "task")

    def __init__(self, app: ASGIApp, cycle: RequestResponseCycle, *, direct: bool) -> None:
        self._app = app
        self._send: _DirectSend | None = _DirectSend(cycle) if direct else None
        self.task: asyncio.Task[Any] | None = None
        self.disconnected = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.task = asyncio.current_task()
        try:
            await self._app(scope, receive, self._send or send)
        except asyncio.CancelledError:
            if not self.disconnected:
                raise
            # our own cancellation (the client left): the request ends here, quietly
            if self.task is not None:
                self.task.uncancel()

    @property
    def direct(self) -> bool:
        """Whether the request has the direct ``send`` (its streams do not watch for the disconnect:
        the protocol cancels the request)."""
        return self._send is not None

    def cancel(self) -> None:
        """The client is gone: stop the work done for it (upstream calls, retries, backoff sleeps)."""
        task = self.task
        if task is not None and not task.done():
            self.disconnected = True
            task.cancel()


def _find_routerd_app(app: Any) -> RouterdApp | None:
    """The RouterdApp inside uvicorn's middleware wrappers (each keeps the next in ``.app``)."""
    for _ in range(10):
        if isinstance(app, RouterdApp):
            return app
        app = getattr(app, "app", None)
        if app is None:
            return None
    return None


class _Rejected(httptools.HttpParserError):
    """Raised in a parser callback to stop parsing a request the protocol refuses."""


# Per server: its connections with no request in progress, longest idle first.
_IDLE: weakref.WeakKeyDictionary[ServerState, dict[RouterdHttpProtocol, None]] = weakref.WeakKeyDictionary()


class RouterdHttpProtocol(HttpToolsProtocol):
    """See the module docstring."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._routerd_app = _find_routerd_app(self.app)
        limits = self._routerd_app.connection_limits if self._routerd_app else ConnectionLimits()
        self._limits = limits
        self.timeout_keep_alive = limits.keep_alive_timeout  # type: ignore[assignment]  # uvicorn arms it
        self._idle = _IDLE.setdefault(self.server_state, {})
        self._timer: asyncio.TimerHandle | None = None
        self._in_head = True  # bytes received now belong to a request head (counted against the limit)
        self._head_started = False  # a request's first byte arrived, its head is not complete
        self._in_body = False  # a request's head arrived, its body is not complete
        self._head_bytes = 0
        self._rejection: tuple[int, str, str] | None = None
        self._request: _Request | None = None

    # -- connection lifetime -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._idle[self] = None
        self._arm(self._limits.header_timeout, "no complete request head")
        if len(self.connections) > self._limits.max_connections:
            self._make_room()

    def connection_lost(self, exc: Exception | None) -> None:
        request = self._request
        cycle = self.cycle
        super().connection_lost(exc)
        self._disarm()
        self._idle.pop(self, None)
        # Before the first byte of the answer nothing else notices the client is gone, nor during a
        # stream on the direct path (elsewhere Starlette's streaming response watches): stop the work.
        if (
            request is not None
            and cycle is not None
            and (not cycle.response_started or (request.direct and not cycle.response_complete))
        ):
            request.cancel()

    def _make_room(self) -> None:
        """Over the connection limit: close the longest-idle connection, or refuse this one."""
        victim = next((conn for conn in self._idle if conn is not self), None)
        if victim is not None:
            self._idle.pop(victim, None)
            victim.transport.close()
            return
        self._idle.pop(self, None)
        self.transport.write(
            raw_error(
                503,
                "too many open connections to this gateway; retry shortly",
                "too_many_connections",
                error_type="service_unavailable",
            )
        )
        self.transport.close()

    # -- timers ------------------------------------------------------------------------------------

    def _arm(self, seconds: float, reason: str) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, self._expired, reason)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self, reason: str) -> None:
        self._timer = None
        if not self.transport.is_closing():
            self.logger.debug("closing a connection: %s in time", reason)
            self.transport.close()

    # -- parsing -----------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self.transport.is_closing():
            return
        # a head still incomplete after this many bytes cannot fit the limit (one read past it at most)
        if self._in_head and self._head_bytes > self._limits.max_header_bytes:
            self._refuse_head()
            self.send_400_response("")
        elif self._timer is None:
            # Armed only when a head or body spans reads: most requests arrive whole in one read, and
            # then no timer is set and cancelled per request.
            if self._head_started:
                self._arm(self._limits.header_timeout, "no complete request head")
            elif self._in_body:
                self._arm(self._limits.body_timeout, "no complete request body")

    def _refuse_head(self) -> None:
        limit = self._limits.max_header_bytes
        if not self.headers and len(getattr(self, "url", b"")) > limit:
            self._rejection = (414, f"request URL longer than {limit} bytes", "url_too_long")
        else:
            self._rejection = (
                431,
                f"request head (request line and headers) larger than {limit} bytes",
                "headers_too_large",
            )

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = self._head_started = True

    def on_headers_complete(self) -> None:
        headers = self.headers  # (name, value) pairs; each line also has ": " and CRLF
        size = len(self.url) + 4 * len(headers) + sum(map(len, chain.from_iterable(headers)))
        if size > self._limits.max_header_bytes:
            self._refuse_head()
            raise _Rejected  # httptools stops parsing; uvicorn answers through send_400_response
        self._in_head = self._head_started = False
        self._in_body = True
        self._head_bytes = 0
        self._idle.pop(self, None)
        self._disarm()  # the head arrived in time; the body's own timer starts if it spans reads
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle.scope is self.scope and not self.parser.should_keep_alive():
            # uvicorn 0.45 does not look at the client's "connection: close" here; newer ones do
            cycle.keep_alive = False

    def on_message_complete(self) -> None:
        self._in_body = False
        self._in_head = True
        self._disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        cycle = self.cycle
        # idle unless uvicorn just started a pipelined request
        if not self.transport.is_closing() and (cycle is None or cycle.response_complete):
            self._idle.pop(self, None)
            self._idle[self] = None  # now the most recently idle

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request it cannot parse, in OpenAI's error shape."""
        status, message, code = self._rejection or (
            400,
            "malformed HTTP request (request line, header or chunked framing)",
            "invalid_http_request",
        )
        cycle = self.cycle
        if cycle is None or not cycle.response_started or cycle.response_complete:
            self.transport.write(raw_error(status, message, code))
        self.transport.close()

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        routerd_app = self._routerd_app
        direct = (
            routerd_app is not None
            and app is self.app  # not uvicorn's 503 for an exceeded concurrency limit
            and not cycle.waiting_for_100_continue
            and cycle.scope["method"] == "POST"
            and cycle.scope["path"] in routerd_app.fast_routes
        )
        if direct and not cycle.access_log:
            # only the access log reads the client address the proxy-headers middleware resolves
            app = routerd_app
        self._request = _Request(app, cycle, direct=direct)
        super()._start_asgi_task(cycle, self._request)  # type: ignore[arg-type]
