""":class:`HttpxClient`: routerd's client interface over any ``httpx.AsyncClient``.

This is the injection point users know (their own proxies, certificates, or ``httpx.MockTransport``
in tests), and the daemon's client when ``HTTP(S)_PROXY`` is set (httpx honours the proxy
variables; the fast client speaks no proxy protocol). Whatever the injected client's settings:

* redirects are never followed (the request carries the deployment's key): a 3xx answer raises;
* ``Accept-Encoding: identity`` is sent unless the caller chose an encoding; the raw body is read
  and decoded here, incrementally and within :class:`~routerd.http.base.HttpLimits`, so a
  compressed bomb cannot inflate without bound;
* a call without a timeout of its own waits at most ``pool_timeout`` seconds for a free connection
  (httpx's pool timeout), then fails as the fast client's does: a retryable connection error.

A client created here opens at most ``max_connections`` connections in all (httpx's pools have no
cap per upstream; behind a proxy every connection goes to the proxy anyway). An injected client
keeps its own pool limits.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx

from routerd.http.base import (
    HttpLimits,
    HttpResponse,
    Inflater,
    LineSplitter,
    StreamResponse,
    asks_encoding,
    connection_error,
    content_decoder,
    pool_full_error,
    redirect_error,
    timeout_error,
    too_large_error,
)
from routerd.http.conn import DEFAULT_MAX_CONNECTIONS, DEFAULT_POOL_TIMEOUT

__all__ = ["HttpxClient"]

# idle keep-alive connections a created client keeps (httpx's own default)
_MAX_KEEPALIVE = 20


class _HttpxStream:
    def __init__(self, response: httpx.Response, url: str, limits: HttpLimits, asked: bool) -> None:
        self._response = response
        self._url = url
        self._limits = limits
        self.status = response.status_code
        self.headers: Mapping[str, str] = response.headers
        self._inflate = content_decoder(response.headers, url, asked=asked)

    async def _chunks(self) -> AsyncIterator[bytes]:
        """Decoded body chunks, each at most one inflate step when the body is compressed."""
        inflate = self._inflate
        if self._response.is_stream_consumed:
            yield self._response.content  # a response built in memory (httpx.MockTransport), decoded
            return
        async for raw in self._response.aiter_raw():
            if inflate is None:
                yield raw
                continue
            data = inflate.step(raw)
            while True:
                if data:
                    yield data
                if not inflate.has_pending:
                    break
                data = inflate.step(b"")

    async def aiter_lines(self) -> AsyncIterator[bytes]:
        splitter = LineSplitter(self._limits.max_line_bytes, self._url)
        async for chunk in self._chunks():
            for line in splitter.feed(chunk):
                yield line
        for line in splitter.close():
            yield line

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        async for chunk in self._chunks():
            yield chunk

    async def aread(self) -> bytes:
        limit = self._limits.max_body_bytes
        parts: list[bytes] = []
        size = 0
        async for chunk in self._chunks():
            size += len(chunk)
            if size > limit:
                raise too_large_error(self._url, "a body", limit)
            parts.append(chunk)
        return b"".join(parts)


class HttpxClient:
    """:class:`~routerd.http.HttpClient` over an ``httpx.AsyncClient`` (injected, or created with defaults).

    ``limits`` bounds what an upstream may send (default: :class:`~routerd.http.base.HttpLimits`).
    A client created here honours ``HTTP(S)_PROXY`` / ``NO_PROXY`` (httpx's ``trust_env``) and opens
    at most ``max_connections`` connections in all (ignored for an injected client).
    ``pool_timeout``: seconds a call without a timeout waits for a free connection.
    """

    def __init__(
        self,
        client: httpx.AsyncClient | None = None,
        *,
        owned: bool | None = None,
        limits: HttpLimits | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        pool_timeout: float = DEFAULT_POOL_TIMEOUT,
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self._client = client or httpx.AsyncClient(
            timeout=None,
            follow_redirects=False,
            # httpx's own default is 100 in all: ROUTERD_UPSTREAM_MAX_CONNECTIONS applies instead
            limits=httpx.Limits(
                max_connections=max_connections,
                max_keepalive_connections=min(_MAX_KEEPALIVE, max_connections),
            ),
        )
        self._pool_timeout = pool_timeout
        self._owned = owned if owned is not None else client is None
        # public, as FastHttpClient.limits: stream readers read the line bound from it
        self.limits = limits or HttpLimits()

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
        asked = asks_encoding(headers)
        request = self._client.build_request(
            method,
            url,
            headers=_identity(headers, asked),
            content=content,
            files=files,
            data=data,
            params=_clean_params(params),
            timeout=self._timeout(timeout),
        )
        try:
            response = await self._client.send(request, stream=True, follow_redirects=False)
            try:
                body = await self._read(response, url, asked)
            finally:
                await response.aclose()
        except httpx.PoolTimeout as exc:
            raise pool_full_error(url, exc) from exc
        except httpx.TimeoutException as exc:
            raise timeout_error(url, exc) from exc
        except httpx.TransportError as exc:
            raise connection_error(url, exc) from exc
        return HttpResponse(response.status_code, response.headers, body)

    async def _read(self, response: httpx.Response, url: str, asked: bool) -> bytes:
        if 300 <= response.status_code < 400:
            raise redirect_error(url, response.status_code)
        limit = self.limits.max_body_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise too_large_error(url, "a body", limit)
        if response.is_stream_consumed:
            # built in memory and already decoded by httpx (a MockTransport's answer)
            if len(response.content) > limit:
                raise too_large_error(url, "a body", limit)
            return response.content
        parts: list[bytes] = []
        size = 0
        async for chunk in response.aiter_raw():
            size += len(chunk)
            if size > limit:
                raise too_large_error(url, "a body", limit)
            parts.append(chunk)
        body = b"".join(parts)
        inflate: Inflater | None = content_decoder(response.headers, url, asked=asked)
        return body if inflate is None else inflate.whole(body, limit)

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        content: bytes | None = None,
        timeout: float | None = None,
    ) -> AsyncIterator[StreamResponse]:
        asked = asks_encoding(headers)
        request = self._client.build_request(
            method, url, headers=_identity(headers, asked), content=content, timeout=self._timeout(timeout)
        )
        try:
            response = await self._client.send(request, stream=True, follow_redirects=False)
        except httpx.PoolTimeout as exc:
            raise pool_full_error(url, exc) from exc
        except httpx.TimeoutException as exc:
            raise timeout_error(url, exc) from exc
        except httpx.TransportError as exc:
            raise connection_error(url, exc) from exc
        try:
            if 300 <= response.status_code < 400:
                raise redirect_error(url, response.status_code)
            yield _HttpxStream(response, url, self.limits, asked)
        except httpx.TimeoutException as exc:
            raise timeout_error(url, exc) from exc
        except httpx.TransportError as exc:
            raise connection_error(url, exc) from exc
        finally:
            await response.aclose()

    def _timeout(self, timeout: float | None) -> httpx.Timeout:
        """The call's timeout for every phase; without one, only the wait for a connection is bounded."""
        if timeout is None:
            return httpx.Timeout(None, pool=self._pool_timeout)
        return httpx.Timeout(timeout)

    async def aclose(self) -> None:
        if self._owned:
            await self._client.aclose()


def _identity(headers: Mapping[str, str], asked: bool) -> Mapping[str, str]:
    # httpx would ask for gzip/deflate/br itself; routerd reads bodies as they come (identity)
    return headers if asked else {**headers, "Accept-Encoding": "identity"}


def _clean_params(params: Mapping[str, Any] | None) -> dict[str, str] | None:
    if not params:
        return None
    return {k: str(v) for k, v in params.items() if v is not None}
