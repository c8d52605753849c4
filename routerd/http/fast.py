"""A lean HTTP/1.1 client for the proxy's hot path: asyncio Protocols + httptools' response parser.

A general client builds a request object, a response object, timers, multidicts and hooks for every
call; on a small machine that is hundreds of microseconds of CPU per proxied request, as much as the
rest of routerd together. Provider APIs need far less: keep-alive HTTP/1.1 to a handful of origins,
JSON bodies with ``Content-Length``, and SSE answers read line by line. :class:`FastHttpClient` does
exactly that and implements :class:`routerd.http.HttpClient`:

* per-origin pools of keep-alive connections (:mod:`routerd.http.conn`: connections per origin
  are capped, the idle pool is bounded, idle connections expire, a connection whose response was abandoned is closed, and when a request
  is sent again after a stale pooled connection).
* ``Content-Length``, chunked and until-EOF bodies, within :class:`~routerd.http.base.HttpLimits`;
  gzip/deflate decoded incrementally within the same bounds if an upstream compresses despite
  ``Accept-Encoding: identity``; HTTPS through asyncio's ssl (SNI = host).
* an answer that is not HTTP fails the call at once (:class:`~routerd.errors.APIConnectionError`),
  a redirect is never followed (:class:`~routerd.errors.BadGatewayError`).
* deadlines: connect + the whole response for :meth:`~FastHttpClient.request`; connect + each
  wait for data for :meth:`~FastHttpClient.stream` (tokens may keep coming for minutes).

Rare calls go to an internal :class:`~routerd.http.HttpxClient` with the same limits: multipart
uploads (``files=``/``data=``), ``params=`` and ``HEAD``. HTTP proxies are not spoken here at all;
:func:`routerd.http.default_client` picks httpx when proxy variables are set.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

import httptools

from routerd.errors import OpenAIError
from routerd.http.base import (
    HttpLimits,
    HttpResponse,
    Inflater,
    LineSplitter,
    StreamResponse,
    connection_error,
    content_decoder,
    pool_full_error,
    redirect_error,
    timeout_error,
    too_large_error,
)
from routerd.http.conn import (
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_POOL_TIMEOUT,
    IDEMPOTENT,
    Connection,
    NoFreeConnection,
    Origin,
    Pool,
    StaleConnection,
    parse_url,
)

if TYPE_CHECKING:
    from routerd.http.httpx_client import HttpxClient

__all__ = ["HEAD_CACHE_SIZE", "FastHttpClient"]

# request headers the client writes itself (a caller's copy would duplicate or contradict them)
_MANAGED: Final = frozenset({"host", "content-length", "connection", "transfer-encoding", "keep-alive"})
_METHODS_WITH_BODY: Final = frozenset({"POST", "PUT", "PATCH"})
# what a failed wait may raise besides TimeoutError and routerd's own errors
_BROKEN = (OSError, httptools.HttpParserError, StaleConnection)
#: request heads a client keeps rendered (see ``FastHttpClient._head``): a deployment sends the same
#: method, URL and headers on every call, so its head is rendered and checked once. Header values can
#: carry per-request data (forwarded headers), so the cache is emptied when it reaches this size:
#: whatever callers send, it never holds more.
HEAD_CACHE_SIZE: Final = 256
# what ends a head after the cached part, by body
_NO_BODY_END: Final = b"Connection: keep-alive\r\n\r\n"
_EMPTY_BODY_END: Final = b"Content-Length: 0\r\n" + _NO_BODY_END
_BODY_END: Final = b"Content-Length: %d\r\n" + _NO_BODY_END


class FastHttpClient:
    """:class:`routerd.http.HttpClient` over asyncio Protocols and httptools (see the module).

    ``ssl_context``: for ``https://`` origins (default: the system's trust store).
    ``max_connections_per_origin``: connections open per origin, busy and idle; at the cap a call
    waits for one within its deadline (:mod:`routerd.http.conn`).
    ``max_idle_per_origin``: idle keep-alive connections kept per origin; more are closed.
    ``idle_timeout``: seconds an idle connection may wait for reuse before it is closed.
    ``connect_timeout``: a bound on connecting when the call has no deadline of its own.
    ``pool_timeout``: a bound on waiting for a free connection at the cap when the call has no
    deadline of its own (a call with one waits within it).
    ``limits``: bounds on what an upstream may send (default: :class:`~routerd.http.base.HttpLimits`).
    """

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        max_connections_per_origin: int = DEFAULT_MAX_CONNECTIONS,
        max_idle_per_origin: int = 128,
        idle_timeout: float = 30.0,
        connect_timeout: float | None = None,
        pool_timeout: float = DEFAULT_POOL_TIMEOUT,
        user_agent: str = "routerd",
        limits: HttpLimits | None = None,
    ) -> None:
        self._ssl = ssl_context
        if max_connections_per_origin < 1:
            raise ValueError("max_connections_per_origin must be at least 1")
        self._max_connections = max_connections_per_origin
        self._max_idle = min(max_idle_per_origin, max_connections_per_origin)
        self._idle_timeout = idle_timeout
        self._connect_timeout = connect_timeout
        self._pool_timeout = pool_timeout
        self._user_agent = user_agent
        self.limits = limits or HttpLimits()
        self._pool: Pool | None = None
        self._fallback: HttpxClient | None = None
        # origins no deployment uses any more (after a reload): their connections are not pooled again
        self._retired: frozenset[tuple[str, str, int]] = frozenset()
        # (method, URL, the header names, their values) -> the head up to its body's framing, whether the caller
        # chose Accept-Encoding, and the URL's origin (bounded by HEAD_CACHE_SIZE)
        self._heads: dict[tuple[str, ...], tuple[bytes, bool, Origin]] = {}

    def retire_origins(self, removed: Iterable[str], kept: Iterable[str] = ()) -> None:
        """Stop pooling connections to the upstreams of removed deployments.

        Idle connections to them close now; busy ones close when their request ends, so nothing in
        flight is cut. ``kept`` (the bases still in use) takes origins back that a reload re-added.
        """
        gone = {parse_url(url)[0].key for url in removed}
        back = {parse_url(url)[0].key for url in kept}
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
            return await self._general().request(
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
        head, asked, origin = self._head(method, url, headers, content)
        deadline = None if timeout is None else pool.loop.time() + timeout
        request = _Request(method, url, head, content, self.limits.max_body_bytes)
        conn = await self._send(pool, origin, request, deadline, None)
        try:
            try:
                await conn.wait_complete(deadline)
            except StaleConnection:
                conn = await self._send(pool, origin, request, deadline, None, fresh=True)
                await conn.wait_complete(deadline)
        except TimeoutError as exc:
            conn.abort()
            raise timeout_error(url, exc) from None
        except _BROKEN as exc:
            conn.abort()
            raise connection_error(url, _cause(exc)) from None
        except BaseException:
            conn.abort()  # cancelled, or a bound was hit: the upstream sees the disconnect
            raise
        status, response_headers, body = conn.status, conn.headers, conn.take_body()
        self._release(pool, origin, conn)
        if 300 <= status < 400:
            raise redirect_error(url, status)
        inflate = content_decoder(response_headers, url, asked=asked)
        if inflate is not None:
            body = inflate.whole(body, self.limits.max_body_bytes)
        return HttpResponse(status, response_headers, body)

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

    def _get_pool(self) -> Pool:
        loop = asyncio.get_running_loop()
        pool = self._pool
        if pool is None or pool.loop is not loop:
            # first use, or a new event loop (connections cannot move between loops)
            pool = self._pool = Pool(
                loop,
                max_idle=self._max_idle,
                idle_timeout=self._idle_timeout,
                max_connections=self._max_connections,
            )
        return pool

    def _general(self) -> HttpxClient:
        if self._fallback is None:
            # imported here: httpx loads with the first rare call, not with the daemon
            from routerd.http.httpx_client import HttpxClient

            self._fallback = HttpxClient(
                limits=self.limits, max_connections=self._max_connections, pool_timeout=self._pool_timeout
            )
        return self._fallback

    def _head(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        content: bytes | None,
    ) -> tuple[bytes, bool, Origin]:
        """The request head, whether the caller chose its own ``Accept-Encoding``, and the origin.

        All but the body's framing comes from a cache keyed on everything it is made of (see
        :data:`HEAD_CACHE_SIZE`): a head is rendered and checked for CR/LF once per distinct
        request, not once per call.
        """
        try:
            # one flat tuple (n names, then their n values: unambiguous), cheaper to build and hash
            # than a tuple of (name, value) pairs
            key = (method, url, *headers, *headers.values())
            cached = self._heads.get(key)
        except TypeError:  # a value that cannot be hashed: rendered without the cache
            cached = key = None
        if cached is None:
            cached = self._render(method, url, headers)
            if key is not None:
                heads = self._heads
                if len(heads) >= HEAD_CACHE_SIZE:
                    heads.clear()  # per-request values: start over rather than grow
                heads[key] = cached
        start, asked, origin = cached
        if content is not None:
            return start + _BODY_END % len(content), asked, origin
        if method in _METHODS_WITH_BODY:
            return start + _EMPTY_BODY_END, asked, origin
        return start + _NO_BODY_END, asked, origin

    def _render(self, method: str, url: str, headers: Mapping[str, str]) -> tuple[bytes, bool, Origin]:
        """The head up to (without) its body's framing and ``Connection``; refuses CR/LF in headers."""
        origin, target = _url(url)
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
        head = "".join(lines)
        # one CRLF per line and nowhere else: a header value cannot smuggle in another header
        if head.count("\n") != len(lines) + 1 or head.count("\r") != len(lines) + 1:
            raise ValueError("header names and values must not contain CR or LF")
        return head.encode("utf-8"), seen_encoding, origin

    async def _send(
        self,
        pool: Pool,
        origin: Origin,
        request: _Request,
        deadline: float | None,
        connect_timeout: float | None,
        *,
        fresh: bool = False,
    ) -> Connection:
        """Write the request on a pooled or new connection.

        The wait for a free connection (the origin at its cap) and the connect share one deadline.
        """
        conn = None if fresh else pool.take(origin)
        if conn is None:
            deadline = self._connect_deadline(pool.loop, deadline, connect_timeout)
            # a call with no deadline at all still waits for a free connection within a bound
            wait_until = pool.loop.time() + self._pool_timeout if deadline is None else deadline
            try:
                conn = await pool.acquire(origin, wait_until, fresh=True)
            except NoFreeConnection as exc:
                raise pool_full_error(request.url, exc) from None
            if conn is None:
                conn = await self._connect(pool, origin, request.url, deadline)
        conn.send(
            request.head,
            request.content,
            resend_ok=request.method in IDEMPOTENT,
            max_body=request.max_body,
            url=request.url,
        )
        return conn

    def _connect_deadline(
        self, loop: asyncio.AbstractEventLoop, deadline: float | None, connect_timeout: float | None
    ) -> float | None:
        if connect_timeout is not None:
            bound = loop.time() + connect_timeout
            return bound if deadline is None else min(deadline, bound)
        if deadline is None and self._connect_timeout is not None:
            return loop.time() + self._connect_timeout
        return deadline

    async def _connect(self, pool: Pool, origin: Origin, url: str, deadline: float | None) -> Connection:
        """Open a connection in the slot ``pool.acquire`` reserved (freed again if this fails)."""
        loop = pool.loop
        tls: ssl.SSLContext | None = None
        if origin.tls:
            tls = self._ssl = self._ssl or ssl.create_default_context()
        conn = Connection(pool, origin.key)
        try:
            async with asyncio.timeout_at(deadline):
                await loop.create_connection(
                    lambda: conn,
                    origin.host,
                    origin.port,
                    ssl=tls,
                    server_hostname=origin.host if tls is not None else None,
                )
        except BaseException as exc:
            conn.abort()  # frees the slot, once, even if the connection was made and lost
            if isinstance(exc, TimeoutError):
                raise timeout_error(url, exc) from None
            if isinstance(exc, OSError):
                raise connection_error(url, exc) from None
            raise
        pool.all.add(conn)
        return conn

    def _release(self, pool: Pool, origin: Origin, conn: Connection) -> None:
        if conn.reusable and pool is self._pool and origin.key not in self._retired:
            pool.put(origin, conn)
        else:
            pool.all.discard(conn)
            conn.close()


class _Request:
    """What sending one request (and sending it again) needs."""

    __slots__ = ("content", "head", "max_body", "method", "url")

    def __init__(self, method: str, url: str, head: bytes, content: bytes | None, max_body: int | None):
        self.method = method
        self.url = url
        self.head = head
        self.content = content
        self.max_body = max_body


def _url(url: str) -> tuple[Origin, str]:
    try:
        return parse_url(url)
    except ValueError as exc:
        raise connection_error(url, exc) from None


def _cause(exc: BaseException) -> BaseException:
    # a stale connection reports what closed it
    if isinstance(exc, StaleConnection) and exc.__cause__ is not None:
        return exc.__cause__
    return exc


def _after(loop: asyncio.AbstractEventLoop, timeout: float | None) -> float | None:
    return None if timeout is None else loop.time() + timeout


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
        self._conn: Connection | None = None
        self._origin: Origin | None = None
        self._pool: Pool | None = None

    async def __aenter__(self) -> StreamResponse:
        client, url, timeout = self._client, self._url, self._timeout
        pool = self._pool = client._get_pool()
        head, asked, origin = client._head(self._method, url, self._headers, self._content)
        self._origin = origin
        request = _Request(self._method, url, head, self._content, None)
        conn = await client._send(pool, origin, request, None, timeout)
        try:
            try:
                await conn.wait_head(_after(pool.loop, timeout))
            except StaleConnection:
                conn = await client._send(pool, origin, request, None, timeout, fresh=True)
                await conn.wait_head(_after(pool.loop, timeout))
            if 300 <= conn.status < 400:
                raise redirect_error(url, conn.status)
            stream = _FastStream(conn, url, timeout, pool.loop, client.limits, asked)
        except TimeoutError as exc:
            conn.abort()
            raise timeout_error(url, exc) from None
        except _BROKEN as exc:
            conn.abort()
            raise connection_error(url, _cause(exc)) from None
        except BaseException:
            conn.abort()
            raise
        self._conn = conn
        return stream

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
        self,
        conn: Connection,
        url: str,
        timeout: float | None,
        loop: asyncio.AbstractEventLoop,
        limits: HttpLimits,
        asked: bool,
    ) -> None:
        self._conn = conn
        self._loop = loop
        self._url = url
        self._timeout = timeout
        self._limits = limits
        self.status = conn.status
        self.headers: Mapping[str, str] = conn.headers
        self._inflate: Inflater | None = content_decoder(conn.headers, url, asked=asked)

    async def _next_chunk(self) -> bytes:
        """The body received since the last call; ``b""`` at the end of the body."""
        inflate = self._inflate
        if inflate is not None and inflate.has_pending:
            data = self._inflated(inflate, b"")  # decoded in steps: a bomb stays small
            if data:
                return data
        conn = self._conn
        while True:
            try:
                timeout = self._timeout  # (not _after: one call less per chunk)
                await conn.wait_body(None if timeout is None else self._loop.time() + timeout)
            except TimeoutError as exc:
                conn.abort()
                raise timeout_error(self._url, exc) from None
            except (OSError, httptools.HttpParserError) as exc:
                conn.abort()
                raise connection_error(self._url, exc) from None
            except OpenAIError:
                conn.abort()
                raise
            if not conn.body:
                return b""  # complete
            data = conn.take_body()
            if inflate is None:
                return data
            data = self._inflated(inflate, data)
            if data:
                return data

    #: the body received since the last call, ``b""`` at its end: what :meth:`aiter_bytes` yields,
    #: for a reader that wants no async generator between it and the connection
    next_chunk = _next_chunk

    def _inflated(self, inflate: Inflater, data: bytes) -> bytes:
        try:
            return inflate.step(data)
        except OpenAIError:
            self._conn.abort()
            raise

    async def aiter_lines(self) -> AsyncIterator[bytes]:
        splitter = LineSplitter(self._limits.max_line_bytes, self._url)
        while True:
            chunk = await self._next_chunk()
            if not chunk:
                break
            try:
                lines = splitter.feed(chunk)
            except OpenAIError:
                self._conn.abort()
                raise
            for line in lines:
                yield line
        for line in splitter.close():
            yield line

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        while True:
            chunk = await self._next_chunk()
            if not chunk:
                return
            yield chunk

    async def aread(self) -> bytes:
        limit = self._limits.max_body_bytes
        parts: list[bytes] = []
        size = 0
        while True:
            chunk = await self._next_chunk()
            if not chunk:
                return b"".join(parts)
            size += len(chunk)
            if size > limit:
                self._conn.abort()
                raise too_large_error(self._url, "a body", limit)
            parts.append(chunk)
