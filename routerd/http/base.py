"""What routerd's HTTP clients share: the client protocol, response types, limits and errors.

Both clients (:class:`routerd.http.FastHttpClient`, :class:`routerd.http.HttpxClient`) translate
transport failures into routerd's errors, so adapters only deal with HTTP statuses:

* :class:`~routerd.errors.Timeout` when the upstream does not answer in time;
* :class:`~routerd.errors.APIConnectionError` when it cannot be reached, drops the connection, or
  answers something that is not HTTP (a header line without a colon, a bad status line or chunk
  size): retryable, so the router fails over and counts it against the deployment;
* :class:`~routerd.errors.BadGatewayError` for an answer routerd refuses to read: a redirect (no
  client follows one: it would re-send the deployment's key to another host), a body or an SSE line
  larger than :class:`HttpLimits` allows, or a ``Content-Encoding`` routerd did not ask for.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Final, Protocol

from routerd.errors import APIConnectionError, BadGatewayError, Timeout

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_LINE_BYTES",
    "HttpClient",
    "HttpLimits",
    "HttpResponse",
    "Inflater",
    "LineSplitter",
    "StreamResponse",
    "connection_error",
    "redirect_error",
    "timeout_error",
    "too_large_error",
]

MIB: Final = 1024 * 1024
#: default bound on a (decoded) non-streamed response body: ``ROUTERD_UPSTREAM_MAX_BODY_MB``
DEFAULT_MAX_BODY_BYTES: Final = 64 * MIB
#: default bound on one line of a streamed body: ``ROUTERD_UPSTREAM_MAX_LINE_MB``
DEFAULT_MAX_LINE_BYTES: Final = 16 * MIB
# an inflating stream hands on at most this much decoded data per step (a gzip bomb stays small)
INFLATE_STEP: Final = 256 * 1024
# encodings decoded here; routerd asks for ``identity``, these are what upstreams send regardless
DECODED_ENCODINGS: Final = frozenset({"gzip", "x-gzip", "deflate"})


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """Bounds on what an upstream may send (see ``routerd.settings.HttpSettings``).

    ``max_body_bytes`` bounds a non-streamed body after decoding (and a streamed body read whole,
    such as an error body); ``max_line_bytes`` bounds one line of a streamed body. Every SSE
    ``data:`` line is dispatched on its own, so this also bounds an SSE event as routerd holds it.
    """

    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES


@dataclass(slots=True)
class HttpResponse:
    """A fully read upstream response."""

    status: int
    headers: Mapping[str, str]  # lower-cased names
    content: bytes


class StreamResponse(Protocol):
    """An upstream response whose body is read incrementally."""

    status: int
    headers: Mapping[str, str]

    def aiter_lines(self) -> AsyncIterator[bytes]:
        """Body lines without their line terminators."""
        ...

    def aiter_bytes(self) -> AsyncIterator[bytes]:
        """Body bytes as they arrive, decoded but otherwise unchanged (binary framings: AWS event streams)."""
        ...

    async def aread(self) -> bytes:
        """The rest of the body (used to read an error body)."""
        ...


class HttpClient(Protocol):
    """What adapters need from an HTTP client."""

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
    ) -> HttpResponse: ...

    def stream(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        content: bytes | None = None,
        timeout: float | None = None,
    ) -> AbstractAsyncContextManager[StreamResponse]: ...

    async def aclose(self) -> None: ...


# --- errors --------------------------------------------------------------------------------------


def timeout_error(url: str, exc: BaseException | None = None) -> Timeout:
    """The upstream did not answer within the call's deadline."""
    return Timeout(f"upstream did not answer in time ({origin_of(url)})")


def connection_error(url: str, exc: BaseException) -> APIConnectionError:
    """The upstream could not be reached, dropped the connection, or did not speak HTTP."""
    return APIConnectionError(f"cannot reach upstream {origin_of(url)}: {type(exc).__name__}")


def pool_full_error(url: str, exc: BaseException) -> APIConnectionError:
    """Every connection to the upstream stayed busy for as long as the call could wait for one."""
    return APIConnectionError(
        f"no free connection to upstream {origin_of(url)} in time: {exc} (ROUTERD_UPSTREAM_MAX_CONNECTIONS)"
    )


def redirect_error(url: str, status: int) -> BadGatewayError:
    """A 3xx answer: never followed, since the request carries the deployment's credentials."""
    return BadGatewayError(
        f"upstream {origin_of(url)} answered HTTP {status} (a redirect); routerd does not follow "
        "redirects: point api_base at the final URL"
    )


def too_large_error(url: str, what: str, limit: int) -> BadGatewayError:
    """An answer larger than a bound of :class:`HttpLimits`."""
    return BadGatewayError(f"upstream {origin_of(url)} sent {what} larger than {_size(limit)}")


def encoding_error(url: str, encoding: str) -> BadGatewayError:
    """A ``Content-Encoding`` routerd neither asked for nor decodes."""
    return BadGatewayError(
        f"upstream {origin_of(url)} sent Content-Encoding {encoding[:40]!r}, which was not requested"
    )


def origin_of(url: str) -> str:
    """Only scheme://host:port of ``url``: query strings may carry keys (Gemini's ?key=...)."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0].split('?', 1)[0]}"


def _size(limit: int) -> str:
    return f"{limit / MIB:g} MiB" if limit >= MIB else f"{limit} bytes"


# --- bounded decoding ----------------------------------------------------------------------------


class LineSplitter:
    """Splits a body into lines as chunks arrive, holding at most ``max_line`` bytes of a line.

    A line that arrives over many chunks is kept in one ``bytearray`` and searched for a newline
    only in the newly added bytes, so reading it costs time linear in its length (joining the
    pending bytes to every chunk would copy quadratically).
    """

    __slots__ = ("_max", "_pending", "_scanned", "_url")

    def __init__(self, max_line: int, url: str) -> None:
        self._max = max_line
        self._url = url
        self._pending = bytearray()
        self._scanned = 0

    def feed(self, chunk: bytes) -> list[bytes]:
        """The lines completed by ``chunk``, without their ``\\n`` / ``\\r\\n`` terminators."""
        pending = self._pending
        if pending:
            pending += chunk
            if pending.find(b"\n", self._scanned) < 0:
                self._scanned = len(pending)
                self._check(len(pending))
                return []
            data = bytes(pending)
            pending.clear()
        else:
            data = chunk
        lines = data.split(b"\n")
        rest = lines.pop()
        if rest:
            self._check(len(rest))
            pending += rest
        self._scanned = len(pending)
        if len(data) > self._max:
            for line in lines:
                self._check(len(line))
        return [line[:-1] if line.endswith(b"\r") else line for line in lines]

    def close(self) -> list[bytes]:
        """What is left after the last chunk: a final line without a terminator, if any."""
        if not self._pending:
            return []
        line = bytes(self._pending).rstrip(b"\r")
        self._pending.clear()
        return [line]

    def _check(self, length: int) -> None:
        if length > self._max:
            raise too_large_error(self._url, "a stream line", self._max)


class Inflater:
    """Incremental gzip / deflate decoding that never produces more than asked for at once."""

    __slots__ = ("_tail", "_url", "_z")

    def __init__(self, encoding: str, url: str) -> None:
        # gzip: wbits 16+; deflate: zlib-wrapped as the RFC says
        self._z = zlib.decompressobj(16 + zlib.MAX_WBITS if encoding != "deflate" else zlib.MAX_WBITS)
        self._url = url
        self._tail = b""

    @property
    def has_pending(self) -> bool:
        """Compressed input is left that the last step did not decode."""
        return bool(self._tail)

    def step(self, data: bytes, limit: int = INFLATE_STEP) -> bytes:
        """Decode ``data`` (after any input left over) into at most ``limit`` bytes."""
        if self._tail:
            data = self._tail + data if data else self._tail
        try:
            out = self._z.decompress(data, limit)
        except zlib.error as exc:
            raise connection_error(self._url, exc) from None
        self._tail = self._z.unconsumed_tail
        return out

    def whole(self, data: bytes, max_bytes: int) -> bytes:
        """All of ``data`` decoded, or :func:`too_large_error` past ``max_bytes``."""
        out = self.step(data, max_bytes + 1)
        if len(out) > max_bytes or self._tail:
            raise too_large_error(self._url, "a decoded body", max_bytes)
        return out


def content_decoder(headers: Mapping[str, str], url: str, *, asked: bool) -> Inflater | None:
    """The decoder for the answer's ``Content-Encoding``; None for identity.

    ``asked``: the caller chose ``Accept-Encoding`` itself, so an encoding this module cannot
    decode is handed on as it came. Otherwise routerd asked for ``identity`` and refuses others.
    """
    encoding = headers.get("content-encoding", "").strip().lower()
    if not encoding or encoding == "identity":
        return None
    if encoding in DECODED_ENCODINGS:
        return Inflater(encoding, url)
    if asked:
        return None
    raise encoding_error(url, encoding)


def asks_encoding(headers: Mapping[str, str]) -> bool:
    """Whether the caller set its own ``Accept-Encoding``."""
    return any(name.lower() == "accept-encoding" for name in headers)
