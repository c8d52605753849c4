"""A lean HTTP/1.1 client for the proxy's hot path: asyncio Protocols + httptools' response parser.

aiohttp's client builds a request object, a response object, timers, multidicts and tracing hooks
for every call; on a small machine that is ~200 us of CPU per proxied request, as much as the rest
of routerd together. Provider APIs need far less: keep-alive HTTP/1.1 to a handful of origins, JSON
bodies with ``Content-Length``, and SSE answers read line by line. :class:`FastHttpClient` does
exactly that and implements :class:`routerd.transport.HttpClient`:

* per-origin pools of keep-alive connections (the idle pool is bounded; idle connections expire).
  A connection goes back to the pool only after its response was read completely; one whose
  response was abandoned (a stream closed early, which is how a client's disconnect reaches the
  upstream) is closed.
* a request that finds a pooled connection already closed by the server before any response byte
  arrived (the classic keep-alive race) is sent again, once, on a fresh connection.
* ``Content-Length`` and chunked response bodies, bodies until EOF, gzip/deflate if an upstream
  compresses despite ``Accept-Encoding: identity``; HTTPS through asyncio's ssl (SNI = host).
* deadlines: connect + the whole response for :meth:`~FastHttpClient.request`; connect + each
  wait for data for :meth:`~FastHttpClient.stream` (tokens may keep coming for minutes).
  Failures raise :class:`~routerd.errors.Timeout` / :class:`~routerd.errors.APIConnectionError`
  with the same messages as :class:`~routerd.transport.AiohttpClient`.

Rare calls go to an internal :class:`~routerd.transport.AiohttpClient`: multipart uploads
(``files=``/``data=``), ``params=`` and ``HEAD``. HTTP proxies are not spoken here at all;
:func:`routerd.transport.default_client` picks aiohttp when proxy variables are set.
"""

from __future__ import annotations

import asyncio
import functools
import math
import ssl
import zlib
from collections import deque
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, Final, cast
from urllib.parse import quote, urlsplit

import httptools

from routerd.transport import (
    AiohttpClient,
    HttpResponse,
    StreamResponse,
    _connection_error,
    _timeout_error,
)

__all__ = ["FastHttpClient"]

# request headers the client writes itself (a caller's copy would duplicate or contradict them)
_MANAGED: Final = frozenset({"host", "content-length", "connection", "transfer-encoding", "keep-alive"})
_METHODS_WITH_BODY: Final = frozenset({"POST", "PUT", "PATCH"})
# a stream stops reading from the socket while this much body waits for its consumer
_HIGH_WATER: Final = 256 * 1024
# bodies up to this size are written together with the head (one send); larger ones separately
_COALESCE: Final = 64 * 1024


class _StaleConnection(Exception):
    """A pooled connection closed before any byte of the response: safe to send again."""


# --- connections ---------------------------------------------------------------------------------


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; parses one response at a time.

    The parser's callbacks fill in the current response; the task that sent the request waits on
    :meth:`wait_head` / :meth:`wait_body` / :meth:`wait_complete`, which wake only for what they
    need (a plain request sleeps until the whole body is in).
    """

    def __init__(self, pool: _Pool) -> None:
        self._pool = pool
        self._loop = pool.loop
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.reused = False  # served a response before: the server may have closed it meanwhile
        self.idle_since = 0.0
        self._active = False  # a request is out and its response not complete
        self._want = 0  # what the waiter waits for: _HEAD, _BODY or _DONE
        self._waiter: asyncio.Future[None] | None = None
        self._deadline: float | None = None  # of the current wait, on the loop's clock
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.buffered = 0
        self.head_done = False
        self.complete = False
        self.keep_alive = False
        self.got_bytes = False
        self.until_eof = False  # no length and not chunked: the body ends when the server closes
        self.error: BaseException | None = None
        self._paused = False

    # --- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if not self._active:
            # bytes nobody asked for (or after the response): the connection is unusable
            self.close()
            return
        self.got_bytes = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(exc)
            self.close()

    def eof_received(self) -> bool | None:
        return None  # let the transport close; connection_lost decides what it meant

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._stop_timer()
        if self._active:
            if self.until_eof and self.head_done:
                self.complete = True
                self._active = False
            else:
                self._fail(exc or ConnectionResetError("the server closed the connection"))
            self._notify()
        else:
            self._pool.forget(self)

    def pause_writing(self) -> None:  # request bodies are small; transport buffering is enough
        pass

    def resume_writing(self) -> None:
        pass

    # --- httptools callbacks ---------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if not self._active and self.transport is not None:
            # a second response in one read, to a request never sent: do not reuse this connection
            self.closed = True
            self.transport.close()

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("utf-8", "surrogateescape")
        previous = self.headers.get(key)
        self.headers[key] = text if previous is None else f"{previous}, {text}"

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        self.status = status
        if 100 <= status < 200:
            # an interim answer (we never send Expect: 100-continue); the real one follows
            self.headers = {}
            return
        self.head_done = True
        headers = self.headers
        if (
            "content-length" not in headers
            and "chunked" not in headers.get("transfer-encoding", "").lower()
            and status not in (204, 304)
        ):
            self.until_eof = True
        if self._want == _HEAD:
            self._notify()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)
        self.buffered += len(body)
        if self._want == _BODY:
            if self.buffered > _HIGH_WATER and not self._paused and self.transport is not None:
                self._paused = True
                self.transport.pause_reading()
            self._notify()

    def on_message_complete(self) -> None:
        if not self.head_done:
            return  # the end of an interim (1xx) answer
        self.complete = True
        # read it now: once feed_data returns, the parser has moved on and answers False
        self.keep_alive = self._parser.should_keep_alive()
        self._active = False
        self._notify()

    # --- the requesting side ---------------------------------------------------------------------

    def send(self, data: bytes, body: bytes | None) -> None:
        """Write a request; the previous response must be complete."""
        self._reset()
        self._active = True
        transport = self.transport
        assert transport is not None
        if body is None:
            transport.write(data)
        elif len(body) <= _COALESCE:
            transport.write(data + body)
        else:
            transport.writelines((data, body))

    def take_body(self) -> bytes:
        """The body received so far (and forget it); resumes reading if a stream had paused it."""
        chunks = self.body
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self.body = []
        self.buffered = 0
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return data

    # Each wait takes a deadline in loop time (None: unbounded) and raises TimeoutError past it;
    # a failed connection raises what broke it, or _StaleConnection (see _raise).

    async def wait_head(self, deadline: float | None) -> None:
        if not (self.head_done or self.error is not None):
            await self._wait(_HEAD, deadline)
        self._raise()

    async def wait_body(self, deadline: float | None) -> None:
        """Until some body is buffered or the body is complete (received data comes before errors)."""
        if not (self.body or self.complete or self.error is not None):
            await self._wait(_BODY, deadline)
        if not self.body:
            self._raise()

    async def wait_complete(self, deadline: float | None) -> None:
        if not (self.complete or self.error is not None):
            await self._wait(_DONE, deadline)
        self._raise()

    def _raise(self) -> None:
        error = self.error
        if error is None or self.complete:
            return
        if self.reused and not self.got_bytes and isinstance(error, ConnectionError | EOFError):
            # the server had closed this idle connection before it saw our request
            raise _StaleConnection() from error
        raise error

    async def _wait(self, want: int, deadline: float | None) -> None:
        loop = self._loop
        waiter = loop.create_future()
        self._waiter = waiter
        self._want = want
        self._deadline = deadline
        if deadline is not None and deadline < self._timer_at:
            # One timer per connection, only ever moved earlier: the next request on a keep-alive
            # connection has a later deadline, and checking it when the old timer fires is cheaper
            # than creating and cancelling a timer per request (about 3 us each with uvloop).
            self._stop_timer()
            self._arm_timer(deadline)
        try:
            await waiter
        finally:
            self._want = 0
            self._waiter = None
            self._deadline = None

    def _on_timer(self) -> None:
        self._timer, self._timer_at = None, math.inf
        waiter, deadline = self._waiter, self._deadline
        if waiter is None or deadline is None or waiter.done():
            return  # nothing is being waited for, or not against a deadline
        if self._loop.time() + _TIMER_SLACK >= deadline:
            waiter.set_exception(TimeoutError())
        else:  # a later wait than the one the timer was set for
            self._arm_timer(deadline)

    def _arm_timer(self, deadline: float) -> None:
        self._timer = self._loop.call_at(deadline, self._on_timer)
        self._timer_at = deadline

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer, self._timer_at = None, math.inf

    def _fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc

    def _notify(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def close(self) -> None:
        self._active = False
        self._stop_timer()
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()

    def abort(self) -> None:
        """Drop the connection at once (an abandoned response: the server sees the disconnect)."""
        self._active = False
        self._stop_timer()
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    @property
    def reusable(self) -> bool:
        return self.complete and self.keep_alive and not self.closed


_HEAD, _BODY, _DONE = 1, 2, 3


# Event-loop timers may fire up to a millisecond early (libuv's clock has millisecond steps).
_TIMER_SLACK = 0.001


# --- pools ---------------------------------------------------------------------------------------


class _Origin:
    """scheme, host and port of a URL plus what a request to it needs (parsed once per URL)."""

    __slots__ = ("host", "host_header", "key", "port", "tls")

    def __init__(self, scheme: str, host: str, port: int) -> None:
        self.tls = scheme == "https"
        self.host = host
        self.port = port
        self.key = (scheme, host, port)
        name = f"[{host}]" if ":" in host else host
        default = 443 if self.tls else 80
        self.host_header = name if port == default else f"{name}:{port}"


@functools.lru_cache(maxsize=1024)
def _parse_url(url: str) -> tuple[_Origin, str]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"unsupported URL scheme or missing host: {scheme}://")
    port = parts.port or (443 if scheme == "https" else 80)
    # keep escapes already present; escape what a request line cannot carry (spaces, non-ASCII)
    target = quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
    if parts.query:
        target = f"{target}?{quote(parts.query, safe='/%:@!$&()*+,;=-._~?')}"
    return _Origin(scheme, parts.hostname, port), target


class _Pool:
    """Idle keep-alive connections per origin, most recently used first."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        max_idle: int,
        idle_timeout: float,
    ) -> None:
        self.loop = loop
        self._max_idle = max_idle
        self._idle_timeout = idle_timeout
        self._idle: dict[tuple[str, str, int], deque[_Connection]] = {}
        self._origin_of: dict[_Connection, tuple[str, str, int]] = {}
        self.all: set[_Connection] = set()

    def take(self, origin: _Origin) -> _Connection | None:
        idle = self._idle.get(origin.key)
        if not idle:
            return None
        expired = self.loop.time() - self._idle_timeout
        while idle:
            conn = idle.pop()
            del self._origin_of[conn]
            transport = conn.transport
            if conn.closed or transport is None or transport.is_closing():
                self.all.discard(conn)
                continue
            if conn.idle_since < expired:
                # everything older is expired too
                self._drop(conn)
                while idle:
                    old = idle.popleft()
                    del self._origin_of[old]
                    self._drop(old)
                return None
            return conn
        return None

    def put(self, origin: _Origin, conn: _Connection) -> None:
        idle = self._idle.get(origin.key)
        if idle is None:
            idle = self._idle[origin.key] = deque()
        if len(idle) >= self._max_idle:
            self._drop(conn)
            return
        conn.reused = True
        conn.idle_since = self.loop.time()
        idle.append(conn)
        self._origin_of[conn] = origin.key

    def forget(self, conn: _Connection) -> None:
        """A connection closed by the other side while idle."""
        self.all.discard(conn)
        key = self._origin_of.pop(conn, None)
        if key is not None:
            idle = self._idle.get(key)
            if idle is not None:
                try:
                    idle.remove(conn)
                except ValueError:
                    pass

    def _drop(self, conn: _Connection) -> None:
        self.all.discard(conn)
        conn.close()

    def close_idle(self, keys: Iterable[tuple[str, str, int]]) -> None:
        """Close the idle connections of these origins."""
        for key in keys:
            for conn in self._idle.pop(key, ()):
                self._origin_of.pop(conn, None)
                self._drop(conn)

    def close(self) -> None:
        for conn in list(self.all):
            conn.close()
        self.all.clear()
        self._idle.clear()
        self._origin_of.clear()


# --- the client ----------------------------------------------------------------------------------


class FastHttpClient:
    """:class:`routerd.transport.HttpClient` over asyncio Protocols and httptools (see the module).

    ``ssl_context``: for ``https://`` origins (default: the system's trust store, like aiohttp).
    ``max_idle_per_origin``: idle keep-alive connections kept per origin; more are closed.
    ``idle_timeout``: seconds an idle connection may wait for reuse before it is closed.
    ``connect_timeout``: a bound on connecting when the call has no deadline of its own.
    """

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        max_idle_per_origin: int = 128,
        idle_timeout: float = 30.0,
        connect_timeout: float | None = None,
        user_agent: str = "routerd",
    ) -> None:
        self._ssl = ssl_context
        self._max_idle = max_idle_per_origin
        self._idle_timeout = idle_timeout
        self._connect_timeout = connect_timeout
        self._user_agent = user_agent
        self._pool: _Pool | None = None
        self._fallback: AiohttpClient | None = None
        # origins no deployment uses any more (after a reload): their connections are not pooled again
        self._retired: frozenset[tuple[str, str, int]] = frozenset()

    def retire_origins(self, removed: Iterable[str], kept: Iterable[str] = ()) -> None:
        """Stop pooling connections to the upstreams of removed deployments.

        Idle connections to them close now; busy ones close when their request ends, so nothing in
        flight is cut. ``kept`` (the bases still in use) takes origins back that a reload re-added.
        """
        gone = {_parse_url(url)[0].key for url in removed}
        back = {_parse_url(url)[0].key for url in kept}
        self._retired = frozenset((self._retired | gone) - back)
        if self._pool is not None:
            self._pool.close_idle(self._retired)

    # --- HttpClient ------------------------------------------------------------------------------

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
        if files is not None or data is not None or params or method == "HEAD":
            return await self._aiohttp().request(
                method,
                url,
                headers=headers,
                content=content,
                timeout=timeout,
                files=files,
                data=data,
                params=params,
            )
        pool = self._get_pool()
        origin, target = _url(url)
        head = self._head(method, origin, target, headers, content)
        deadline = None if timeout is None else pool.loop.time() + timeout
        conn = await self._send(pool, origin, url, head, content, deadline, None)
        try:
            try:
                await conn.wait_complete(deadline)
            except _StaleConnection:
                conn = await self._send(pool, origin, url, head, content, deadline, None, fresh=True)
                await conn.wait_complete(deadline)
        except TimeoutError as exc:
            conn.abort()
            raise _timeout_error(url, exc) from None
        except (OSError, httptools.HttpParserError, _StaleConnection) as exc:
            conn.abort()
            raise _connection_error(url, _cause(exc)) from None
        except BaseException:
            conn.abort()  # cancelled: the upstream sees the disconnect
            raise
        status, response_headers, body = conn.status, conn.headers, conn.take_body()
        self._release(pool, origin, conn)
        return HttpResponse(status, response_headers, _decode(response_headers, body, url))

    def stream(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        content: bytes | None = None,
        timeout: float | None = None,
    ) -> AbstractAsyncContextManager[StreamResponse]:
        return _StreamContext(self, method, url, headers, content, timeout)

    async def aclose(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        if self._fallback is not None:
            await self._fallback.aclose()
            self._fallback = None

    # --- internals -------------------------------------------------------------------------------

    def _get_pool(self) -> _Pool:
        loop = asyncio.get_running_loop()
        pool = self._pool
        if pool is None or pool.loop is not loop:
            # first use, or a new event loop (connections cannot move between loops)
            pool = self._pool = _Pool(loop, max_idle=self._max_idle, idle_timeout=self._idle_timeout)
        return pool

    def _aiohttp(self) -> AiohttpClient:
        if self._fallback is None:
            self._fallback = AiohttpClient()
        return self._fallback

    def _head(
        self,
        method: str,
        origin: _Origin,
        target: str,
        headers: Mapping[str, str],
        content: bytes | None,
    ) -> bytes:
        lines = [f"{method} {target} HTTP/1.1\r\nHost: {origin.host_header}\r\n"]
        seen_agent = seen_accept = seen_encoding = False
        for name, value in headers.items():
            lower = name.lower()
            if lower in _MANAGED:
                continue
            if lower == "user-agent":
                seen_agent = True
            elif lower == "accept":
                seen_accept = True
            elif lower == "accept-encoding":
                seen_encoding = True
            lines.append(f"{name}: {value}\r\n")
        if not seen_agent:
            lines.append(f"User-Agent: {self._user_agent}\r\n")
        if not seen_accept:
            lines.append("Accept: */*\r\n")
        if not seen_encoding:
            lines.append("Accept-Encoding: identity\r\n")
        if content is not None:
            lines.append(f"Content-Length: {len(content)}\r\n")
        elif method in _METHODS_WITH_BODY:
            lines.append("Content-Length: 0\r\n")
        lines.append("Connection: keep-alive\r\n\r\n")
        head = "".join(lines)
        # one CRLF per line and nowhere else: a header value cannot smuggle in another header
        if head.count("\n") != len(lines) + 2 or head.count("\r") != len(lines) + 2:
            raise ValueError("header names and values must not contain CR or LF")
        return head.encode("utf-8")

    async def _send(
        self,
        pool: _Pool,
        origin: _Origin,
        url: str,
        head: bytes,
        content: bytes | None,
        deadline: float | None,
        connect_timeout: float | None,
        *,
        fresh: bool = False,
    ) -> _Connection:
        """Write the request on a pooled or new connection."""
        conn = None if fresh else pool.take(origin)
        if conn is None:
            conn = await self._connect(pool, origin, url, deadline, connect_timeout)
        conn.send(head, content)
        return conn

    async def _connect(
        self,
        pool: _Pool,
        origin: _Origin,
        url: str,
        deadline: float | None,
        connect_timeout: float | None,
    ) -> _Connection:
        loop = pool.loop
        if connect_timeout is not None:
            bound = loop.time() + connect_timeout
            deadline = bound if deadline is None else min(deadline, bound)
        elif deadline is None and self._connect_timeout is not None:
            deadline = loop.time() + self._connect_timeout
        tls: ssl.SSLContext | None = None
        if origin.tls:
            tls = self._ssl = self._ssl or ssl.create_default_context()
        try:
            async with asyncio.timeout_at(deadline):
                _, conn = await loop.create_connection(
                    lambda: _Connection(pool),
                    origin.host,
                    origin.port,
                    ssl=tls,
                    server_hostname=origin.host if tls is not None else None,
                )
        except TimeoutError as exc:
            raise _timeout_error(url, exc) from None
        except OSError as exc:
            raise _connection_error(url, exc) from None
        pool.all.add(conn)
        return conn

    def _release(self, pool: _Pool, origin: _Origin, conn: _Connection) -> None:
        if conn.reusable and pool is self._pool and origin.key not in self._retired:
            pool.put(origin, conn)
        else:
            pool.all.discard(conn)
            conn.close()


def _url(url: str) -> tuple[_Origin, str]:
    try:
        return _parse_url(url)
    except ValueError as exc:
        raise _connection_error(url, exc) from None


def _cause(exc: BaseException) -> BaseException:
    # a stale connection reports what closed it
    if isinstance(exc, _StaleConnection) and exc.__cause__ is not None:
        return exc.__cause__
    return exc


def _after(loop: asyncio.AbstractEventLoop, timeout: float | None) -> float | None:
    return None if timeout is None else loop.time() + timeout


def _decode(headers: Mapping[str, str], body: bytes, url: str) -> bytes:
    encoding = headers.get("content-encoding")
    if not encoding or not body:
        return body
    encoding = encoding.strip().lower()
    if encoding in ("gzip", "x-gzip", "deflate"):
        try:
            data: bytes = _decompressor(encoding).decompress(body)
            return data
        except zlib.error as exc:
            raise _connection_error(url, exc) from None
    return body  # identity, or something we did not ask for: hand it on as it is


def _decompressor(encoding: str) -> Any:
    # gzip: wbits 16+; deflate: zlib-wrapped per the RFC (a raw stream is tried by auto-detect 32+ too)
    return zlib.decompressobj(16 + zlib.MAX_WBITS if encoding != "deflate" else zlib.MAX_WBITS)


# --- streams -------------------------------------------------------------------------------------


class _StreamContext(AbstractAsyncContextManager[StreamResponse]):
    """``async with client.stream(...) as response``: sends, waits for the head, then releases."""

    def __init__(
        self,
        client: FastHttpClient,
        method: str,
        url: str,
        headers: Mapping[str, str],
        content: bytes | None,
        timeout: float | None,
    ) -> None:
        self._client = client
        self._method = method
        self._url = url
        self._headers = headers
        self._content = content
        self._timeout = timeout
        self._conn: _Connection | None = None
        self._origin: _Origin | None = None
        self._pool: _Pool | None = None

    async def __aenter__(self) -> StreamResponse:
        client, url, timeout = self._client, self._url, self._timeout
        pool = self._pool = client._get_pool()
        origin, target = _url(url)
        self._origin = origin
        head = client._head(self._method, origin, target, self._headers, self._content)
        conn = await client._send(pool, origin, url, head, self._content, None, timeout)
        try:
            try:
                await conn.wait_head(_after(pool.loop, timeout))
            except _StaleConnection:
                conn = await client._send(pool, origin, url, head, self._content, None, timeout, fresh=True)
                await conn.wait_head(_after(pool.loop, timeout))
        except TimeoutError as exc:
            conn.abort()
            raise _timeout_error(url, exc) from None
        except (OSError, httptools.HttpParserError, _StaleConnection) as exc:
            conn.abort()
            raise _connection_error(url, _cause(exc)) from None
        except BaseException:
            conn.abort()
            raise
        self._conn = conn
        return _FastStream(conn, url, timeout, pool.loop)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        conn, pool, origin = self._conn, self._pool, self._origin
        self._conn = None
        if conn is None or pool is None or origin is None:
            return
        if conn.reusable:
            conn.take_body()  # what the consumer left unread is already complete: drop it
            self._client._release(pool, origin, conn)
        else:
            # the response was abandoned midway: dropping the connection tells the upstream to stop
            pool.all.discard(conn)
            conn.abort()


class _FastStream:
    """The body of a streamed response, read as lines or all at once."""

    def __init__(
        self, conn: _Connection, url: str, timeout: float | None, loop: asyncio.AbstractEventLoop
    ) -> None:
        self._conn = conn
        self._loop = loop
        self._url = url
        self._timeout = timeout
        self.status = conn.status
        self.headers: Mapping[str, str] = conn.headers
        encoding = conn.headers.get("content-encoding", "").strip().lower()
        self._inflate = _decompressor(encoding) if encoding in ("gzip", "x-gzip", "deflate") else None

    async def _next_chunk(self) -> bytes:
        """The body received since the last call; ``b""`` at the end of the body."""
        conn = self._conn
        while True:
            try:
                await conn.wait_body(_after(self._loop, self._timeout))
            except TimeoutError as exc:
                conn.abort()
                raise _timeout_error(self._url, exc) from None
            except (OSError, httptools.HttpParserError) as exc:
                conn.abort()
                raise _connection_error(self._url, exc) from None
            if not conn.body:
                return b""  # complete
            data = conn.take_body()
            if self._inflate is not None:
                try:
                    data = self._inflate.decompress(data)
                except zlib.error as exc:
                    conn.abort()
                    raise _connection_error(self._url, exc) from None
                if not data:
                    continue
            return data

    async def aiter_lines(self) -> AsyncIterator[bytes]:
        pending = b""
        while True:
            chunk = await self._next_chunk()
            if not chunk:
                break
            if pending:
                chunk = pending + chunk
            lines = chunk.split(b"\n")
            pending = lines.pop()
            for line in lines:
                yield line[:-1] if line.endswith(b"\r") else line
        if pending:
            yield pending.rstrip(b"\r")

    async def aread(self) -> bytes:
        parts: list[bytes] = []
        while True:
            chunk = await self._next_chunk()
            if not chunk:
                return b"".join(parts)
            parts.append(chunk)
