"""The fast client's connections and pools: asyncio Protocols fed to httptools' response parser.

A :class:`Connection` carries one request at a time on a keep-alive HTTP/1.1 connection; the task
that sent the request waits on it for the head, for body data or for the whole response. Whatever
ends a response early wakes that task at once: a parse error (a header line without a colon, a bad
status line or chunk size), a body over its bound, the connection closing. The connection is then
dropped, never pooled again.

**When a request is sent again.** A pooled connection may have been closed by the server just as a
request was written on it (the keep-alive race). Once written, any byte of the request may have
reached the upstream, and for a non-idempotent request (a POST: a completion that is billed) that
cannot be told apart from a server that read the request and died. So a request is sent again, once,
on a fresh connection only when all of these hold: its method is idempotent (``GET``, ``HEAD``,
``OPTIONS``), the connection had served a response before, and it closed before any byte of the
answer. A POST on a stale connection fails with :class:`~routerd.errors.APIConnectionError`, which
the router retries under its own policy (counted, backed off, possibly on another deployment). The
pool never hands out a connection already seen closing (:meth:`Pool.take`), which makes the race
a narrow window rather than the rule.

**How many connections.** A slow upstream under load would otherwise get one more connection (one
more file descriptor) for every call that finds no idle one. :class:`Pool` caps the connections
open or being opened per origin (scheme, host, port): a call that finds none idle and the origin at
its cap waits, in arrival order, for one to come back to the pool (handed over directly) or to close
(its slot handed over to open a new one). The wait counts against the call's deadline; when it runs
out the caller reports a connection error, which the router retries and fails over like any other.
"""

from __future__ import annotations

import asyncio
import functools
import math
from collections import deque
from collections.abc import Iterable
from typing import Final, cast
from urllib.parse import quote, urlsplit

import httptools

from routerd.http.base import too_large_error

__all__ = [
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_POOL_TIMEOUT",
    "IDEMPOTENT",
    "MAX_HEAD_BYTES",
    "Connection",
    "NoFreeConnection",
    "Origin",
    "Pool",
    "StaleConnection",
    "parse_url",
]

#: methods a request may be re-sent with after a stale pooled connection (see the module)
IDEMPOTENT: Final = frozenset({"GET", "HEAD", "OPTIONS"})
#: the most bytes read while a response head is still incomplete (provider heads are a few KiB);
#: past it the answer is refused, so an endless head cannot grow the parser's buffers without bound
MAX_HEAD_BYTES: Final = 256 * 1024
#: connections per origin (busy and idle) unless the client is told otherwise: far above what one
#: healthy provider needs from one worker (a call holds a connection only while it runs, so this is
#: 512 calls in flight to one upstream), yet half of the common 1,024 open-file limit, so one slow
#: upstream cannot take every descriptor the worker has (``ROUTERD_UPSTREAM_MAX_CONNECTIONS``)
DEFAULT_MAX_CONNECTIONS: Final = 512
#: seconds a call with no timeout of its own waits for a free connection at the cap
#: (``ROUTERD_UPSTREAM_POOL_TIMEOUT``): without it such a call would wait without bound
DEFAULT_POOL_TIMEOUT: Final = 60.0
# a stream stops reading from the socket while this much body waits for its consumer
_HIGH_WATER: Final = 256 * 1024
# bodies up to this size are written together with the head (one send); larger ones separately
_COALESCE: Final = 64 * 1024


class StaleConnection(Exception):
    """A pooled connection closed before any byte of the answer to an idempotent request."""


class NoFreeConnection(ConnectionError):
    """The origin was at its connection cap for the whole of the call's wait (see the module)."""


# --- connections ---------------------------------------------------------------------------------


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; parses one response at a time.

    The parser's callbacks fill in the current response; the task that sent the request waits on
    :meth:`wait_head` / :meth:`wait_body` / :meth:`wait_complete`, which wake only for what they
    need (a plain request sleeps until the whole body is in).
    """

    def __init__(self, pool: Pool, key: tuple[str, str, int]) -> None:
        self._pool = pool
        self.key = key  # the origin's, whose connection slot this connection holds until it closes
        self._holds_slot = True
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
        self.resend_ok = False  # the current request may be sent again if this connection was stale
        self.max_body: int | None = None  # bound on the buffered body (None: a stream, read as it comes)
        self.url = ""  # of the current request, for error messages
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
        self._head_bytes = 0  # read while the head was incomplete
        self._body_bytes = 0  # body bytes the parser handed over (never reset by take_body)
        self._bare_bytes = 0  # read since the head without carrying body: chunk framing, trailers
        # the head's header lines as the parser hands them over: name, value, name, value, ...
        # (decoded all at once when the head is complete: see on_headers_complete)
        self._raw: list[bytes] = []

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
        after_head = self.head_done
        body_before = self._body_bytes
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            # not HTTP (a header line without a colon, a bad status line or chunk size): the waiter
            # must learn it now, or it sleeps past every deadline (the close stops the timer)
            self._abandon(exc)
            return
        if not self.receiving:  # the parser completed or abandoned the answer
            return
        if not self.head_done:
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._abandon(too_large_error(self.url, "a response head", MAX_HEAD_BYTES))
        elif after_head:
            # Trailer lines after a chunked body are kept whole by the parser (and then here) until
            # the message ends: the bytes read since the last body byte are bounded like a head.
            carried = self._body_bytes - body_before
            self._bare_bytes = len(data) - carried if carried else self._bare_bytes + len(data)
            if self._bare_bytes > MAX_HEAD_BYTES:
                self._abandon(too_large_error(self.url, "response trailers", MAX_HEAD_BYTES))

    @property
    def receiving(self) -> bool:
        """Whether a request is out and its answer is not complete (nor abandoned)."""
        return self._active

    def eof_received(self) -> bool | None:
        return None  # let the transport close; connection_lost decides what it meant

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._stop_timer()
        self._free_slot()
        if self._active:
            # the socket is gone: the pool no longer has it to close (the requester still reads it)
            self._pool.all.discard(self)
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
        # Called once per header line: only keep the bytes. Decoding them one by one (two decodes,
        # a lower() and a dict insert per line) cost more than the rest of this module per request.
        self._raw.extend((name, value))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        self.status = status
        if 100 <= status < 200:
            # an interim answer (we never send Expect: 100-continue); the real one follows
            self._raw = []
            return
        self.head_done = True
        headers = self.headers = _decode_headers(self._raw)
        self._raw = []
        limit = self.max_body
        declared = headers.get("content-length", "")
        if limit is not None and declared.isdigit() and int(declared) > limit:
            self._abandon(too_large_error(self.url, "a body", limit))
            return
        if (
            "content-length" not in headers
            and "chunked" not in headers.get("transfer-encoding", "").lower()
            and status not in (204, 304)
        ):
            self.until_eof = True
        if self._want == _HEAD:
            self._notify()

    def on_body(self, body: bytes) -> None:
        if self.error is not None:
            return  # abandoned: the rest of this read is dropped with the connection
        self.body.append(body)
        self.buffered += len(body)
        self._body_bytes += len(body)
        if self.max_body is not None and self.buffered > self.max_body:
            self._abandon(too_large_error(self.url, "a body", self.max_body))
            return
        if self._want == _BODY:
            if self.buffered > _HIGH_WATER and not self._paused and self.transport is not None:
                self._paused = True
                self.transport.pause_reading()
            self._notify()

    def on_message_complete(self) -> None:
        if not self.head_done or self.error is not None:
            return  # the end of an interim (1xx) answer, or of an abandoned one
        if self._raw:
            self._add_trailers()
        self.complete = True
        # read it now: once feed_data returns, the parser has moved on and answers False
        self.keep_alive = self._parser.should_keep_alive()
        self._active = False
        self._notify()

    def _add_trailers(self) -> None:
        """Trailer fields after a chunked body join the headers; a name already there keeps its value."""
        headers, raw = self.headers, self._raw
        for index in range(0, len(raw), 2):
            headers.setdefault(
                raw[index].decode("latin-1").lower(), raw[index + 1].decode("utf-8", "surrogateescape")
            )
        self._raw = []

    # --- the requesting side ---------------------------------------------------------------------

    def send(
        self, data: bytes, body: bytes | None, *, resend_ok: bool, max_body: int | None, url: str
    ) -> None:
        """Write a request; the previous response must be complete.

        ``resend_ok``: the request is idempotent (see the module); ``max_body``: the bound on the
        buffered body (None for a stream).
        """
        self._reset()
        self._active = True
        self.resend_ok = resend_ok
        self.max_body = max_body
        self.url = url
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
    # a failed connection raises what broke it, or StaleConnection (see _raise).

    async def wait_head(self, deadline: float | None) -> None:
        """Until the head is in (a failure after it is reported by the body's waits, after its data)."""
        if not (self.head_done or self.error is not None):
            await self._wait(_HEAD, deadline)
        if not self.head_done:
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
        if (
            self.resend_ok
            and self.reused
            and not self.got_bytes
            and isinstance(error, ConnectionError | EOFError)
        ):
            # the server had closed this idle connection, probably before it saw our request
            raise StaleConnection() from error
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

    def _abandon(self, exc: BaseException) -> None:
        """The answer cannot be read on: record why, wake the waiter, drop the connection."""
        self._fail(exc)
        self._notify()
        self.close()

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
        self._free_slot()

    def abort(self) -> None:
        """Drop the connection at once (an abandoned response: the server sees the disconnect)."""
        self._active = False
        self._stop_timer()
        self.closed = True
        if self.transport is not None:
            self.transport.abort()
        self._free_slot()

    def _free_slot(self) -> None:
        # once per connection, whichever of close/abort/connection_lost comes first
        if self._holds_slot:
            self._holds_slot = False
            self._pool.free_slot(self.key)

    @property
    def reusable(self) -> bool:
        return self.complete and self.keep_alive and not self.closed


def _decode_headers(raw: list[bytes]) -> dict[str, str]:
    """The response headers from ``[name, value, name, value, ...]`` as the parser gave them.

    Lower-case ``str`` names (latin-1), values decoded as UTF-8 with ``surrogateescape``; a name
    sent more than once gets its values joined with ``", "`` in the order they came. All names are
    decoded in one call and all values in another, joined by a byte no name or value carries (the
    parser refuses LF in a name and NUL in a value); if one ever did, the counts differ and each is
    decoded on its own. Decoding each line's bytes apart gives the same text: UTF-8 never reads past
    an ASCII byte, so a bad sequence at the end of one value cannot swallow the separator.
    """
    if not raw:
        return {}
    names, values = raw[0::2], raw[1::2]
    keys = b"\n".join(names).decode("latin-1").lower().split("\n")
    texts = b"\0".join(values).decode("utf-8", "surrogateescape").split("\0")
    count = len(names)
    if len(keys) != count or len(texts) != count:
        keys = [name.decode("latin-1").lower() for name in names]
        texts = [value.decode("utf-8", "surrogateescape") for value in values]
    headers = dict(zip(keys, texts, strict=True))
    if len(headers) != count:
        # a repeated name (rare: Set-Cookie, Vary): joined once, not on every repeat (quadratic)
        joined: dict[str, list[str]] = {}
        for key, text in zip(keys, texts, strict=True):
            joined.setdefault(key, []).append(text)
        for key, parts in joined.items():
            if len(parts) > 1:
                headers[key] = ", ".join(parts)
    return headers


_HEAD, _BODY, _DONE = 1, 2, 3


# Event-loop timers may fire up to a millisecond early (libuv's clock has millisecond steps).
_TIMER_SLACK = 0.001


# --- pools ---------------------------------------------------------------------------------------


class Origin:
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
def parse_url(url: str) -> tuple[Origin, str]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"unsupported URL scheme or missing host: {scheme}://")
    port = parts.port or (443 if scheme == "https" else 80)
    # keep escapes already present; escape what a request line cannot carry (spaces, non-ASCII)
    target = quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
    if parts.query:
        target = f"{target}?{quote(parts.query, safe='/%:@!$&()*+,;=-._~?')}"
    return Origin(scheme, parts.hostname, port), target


class Pool:
    """Connections per origin: the idle ones (most recently used first) and a cap on all of them.

    ``max_connections``: connections open or being opened per origin, busy and idle together
    (see the module); ``max_idle``: idle ones kept per origin, more are closed; ``idle_timeout``:
    seconds an idle connection may wait for reuse.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        max_idle: int,
        idle_timeout: float,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        self.loop = loop
        self._max_idle = max_idle
        self._idle_timeout = idle_timeout
        self._max_connections = max_connections
        self._idle: dict[tuple[str, str, int], deque[Connection]] = {}
        self._origin_of: dict[Connection, tuple[str, str, int]] = {}
        self.all: set[Connection] = set()
        # per origin: connections open or being opened (a slot each), and the calls waiting for one;
        # a waiter's future gets a connection handed back, or None: "open one in the freed slot"
        self.open: dict[tuple[str, str, int], int] = {}
        self._waiters: dict[tuple[str, str, int], deque[asyncio.Future[Connection | None]]] = {}
        self._closed = False

    async def acquire(
        self, origin: Origin, deadline: float | None, *, fresh: bool = False
    ) -> Connection | None:
        """An idle connection to ``origin``, or None with a slot reserved to open a new one.

        At the cap, waits until ``deadline`` (loop time; None: no bound) for a connection or a slot
        and raises :class:`NoFreeConnection` past it. ``fresh``: never an idle connection.
        """
        if not fresh:
            conn = self.take(origin)
            if conn is not None:
                return conn
        key = origin.key
        while True:
            count = self.open.get(key, 0)
            if count < self._max_connections:
                self.open[key] = count + 1
                return None
            conn = await self._wait(key, deadline)
            if conn is None or not (conn.closed or conn.transport is None or conn.transport.is_closing()):
                return conn
            # closed by the server after it was handed over (which freed its slot): try again
            self.all.discard(conn)

    async def _wait(self, key: tuple[str, str, int], deadline: float | None) -> Connection | None:
        waiter: asyncio.Future[Connection | None] = self.loop.create_future()
        queue = self._waiters.get(key)
        if queue is None:
            queue = self._waiters[key] = deque()
        queue.append(waiter)
        try:
            async with asyncio.timeout_at(deadline):
                return await waiter
        except BaseException as exc:
            self._give_up(key, waiter)
            if isinstance(exc, TimeoutError):
                raise NoFreeConnection(f"all {self._max_connections} connections busy") from None
            raise

    def _give_up(self, key: tuple[str, str, int], waiter: asyncio.Future[Connection | None]) -> None:
        """A waiting call stopped waiting (deadline, cancellation)."""
        if not waiter.done():
            waiter.cancel()
        if waiter.cancelled() or waiter.exception() is not None:
            queue = self._waiters.get(key)
            if queue is not None:
                try:
                    queue.remove(waiter)  # rare (timeouts, cancellations): a linear scan is fine
                except ValueError:
                    pass
                if not queue:
                    del self._waiters[key]
            return
        # handed a connection or a slot just as the call gave up: pass it on
        conn = waiter.result()
        if conn is None:
            self.free_slot(key)
        else:
            self._put(key, conn)

    def _hand_over(self, key: tuple[str, str, int], conn: Connection | None) -> bool:
        """Give a connection (or, None, a freed slot) to the longest waiting call; False if none waits."""
        queue = self._waiters.get(key)
        while queue:
            waiter = queue.popleft()
            if not queue:
                del self._waiters[key]
            if not waiter.done():
                waiter.set_result(conn)
                return True
        return False

    def free_slot(self, key: tuple[str, str, int]) -> None:
        """A connection to ``key`` closed (or failed to open): its slot goes to a waiter or is freed."""
        if self._closed or not self._hand_over(key, None):
            count = self.open.get(key, 0) - 1
            if count > 0:
                self.open[key] = count
            else:
                self.open.pop(key, None)

    def take(self, origin: Origin) -> Connection | None:
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

    def put(self, origin: Origin, conn: Connection) -> None:
        """A connection whose response is complete: to a waiting call, else to the idle pool."""
        conn.reused = True
        self._put(origin.key, conn)

    def _put(self, key: tuple[str, str, int], conn: Connection) -> None:
        if key in self._waiters and self._hand_over(key, conn):
            return
        idle = self._idle.get(key)
        if idle is None:
            idle = self._idle[key] = deque()
        if len(idle) >= self._max_idle:
            self._drop(conn)
            return
        conn.idle_since = self.loop.time()
        idle.append(conn)
        self._origin_of[conn] = key

    def forget(self, conn: Connection) -> None:
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

    def _drop(self, conn: Connection) -> None:
        self.all.discard(conn)
        conn.close()

    def close_idle(self, keys: Iterable[tuple[str, str, int]]) -> None:
        """Close the idle connections of these origins."""
        for key in keys:
            for conn in self._idle.pop(key, ()):
                self._origin_of.pop(conn, None)
                self._drop(conn)

    def close(self) -> None:
        self._closed = True
        for queue in self._waiters.values():
            for waiter in queue:
                if not waiter.done():
                    waiter.set_exception(NoFreeConnection("the client was closed"))
        self._waiters.clear()
        for conn in list(self.all):
            conn.close()
        self.all.clear()
        self._idle.clear()
        self._origin_of.clear()
        self.open.clear()
