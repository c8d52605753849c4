"""The HTTP client every provider adapter talks through.

Adapters never touch a client library directly; they call :class:`HttpClient`. Two implementations:

* :class:`HttpxClient` wraps any ``httpx.AsyncClient``. This is the interface users inject (their own
  proxies, certificates, or ``httpx.MockTransport`` in tests).
* :class:`AiohttpClient` wraps an ``aiohttp.ClientSession``: on this machine plain httpx costs ~780 us
  per request at 1 in flight and degrades with concurrency, aiohttp ~190 us (see bench/).
* :class:`routerd.fasthttp.FastHttpClient` (asyncio Protocols + httptools) is leaner still and is the
  daemon's default through :func:`default_client`; multipart uploads and query params go to aiohttp.

Both translate transport failures into routerd's errors (:class:`~routerd.errors.Timeout`,
:class:`~routerd.errors.APIConnectionError`), so adapters only deal with HTTP statuses.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import httpx

from routerd.errors import APIConnectionError, Timeout


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


def _timeout_error(url: str, exc: BaseException | None = None) -> Timeout:
    return Timeout(f"upstream did not answer in time ({_origin(url)})")


def _connection_error(url: str, exc: BaseException) -> APIConnectionError:
    return APIConnectionError(f"cannot reach upstream {_origin(url)}: {type(exc).__name__}")


def _origin(url: str) -> str:
    # Only scheme://host:port: query strings may carry keys (Gemini's ?key=...).
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0].split('?', 1)[0]}"


# --- httpx ---------------------------------------------------------------------------------------


class _HttpxStream:
    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self.status = response.status_code
        self.headers: Mapping[str, str] = response.headers

    async def aiter_lines(self) -> AsyncIterator[bytes]:
        buffer = b""
        async for chunk in self._response.aiter_bytes():
            buffer += chunk
            while True:
                newline = buffer.find(b"\n")
                if newline < 0:
                    break
                line, buffer = buffer[:newline], buffer[newline + 1 :]
                yield line.rstrip(b"\r")
        if buffer:
            yield buffer.rstrip(b"\r")

    async def aread(self) -> bytes:
        return await self._response.aread()


class HttpxClient:
    """:class:`HttpClient` over an ``httpx.AsyncClient`` (injected, or created with defaults)."""

    def __init__(self, client: httpx.AsyncClient | None = None, *, owned: bool | None = None) -> None:
        self._client = client or httpx.AsyncClient(timeout=None)
        self._owned = owned if owned is not None else client is None

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
        try:
            response = await self._client.request(
                method,
                url,
                headers=headers,
                content=content,
                files=files,
                data=data,
                params=params,
                timeout=httpx.Timeout(timeout),
            )
        except httpx.TimeoutException as exc:
            raise _timeout_error(url, exc) from exc
        except httpx.TransportError as exc:
            raise _connection_error(url, exc) from exc
        return HttpResponse(response.status_code, response.headers, response.content)

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
        request = self._client.build_request(
            method, url, headers=headers, content=content, timeout=httpx.Timeout(timeout)
        )
        try:
            response = await self._client.send(request, stream=True)
        except httpx.TimeoutException as exc:
            raise _timeout_error(url, exc) from exc
        except httpx.TransportError as exc:
            raise _connection_error(url, exc) from exc
        try:
            yield _HttpxStream(response)
        except httpx.TimeoutException as exc:
            raise _timeout_error(url, exc) from exc
        except httpx.TransportError as exc:
            raise _connection_error(url, exc) from exc
        finally:
            await response.aclose()

    async def aclose(self) -> None:
        if self._owned:
            await self._client.aclose()


# --- aiohttp -------------------------------------------------------------------------------------


class _AiohttpStream:
    def __init__(self, response: aiohttp.ClientResponse, url: str) -> None:
        self._response = response
        self._url = url
        self.status = response.status
        self.headers: Mapping[str, str] = {k.lower(): v for k, v in response.headers.items()}

    async def aiter_lines(self) -> AsyncIterator[bytes]:
        content = self._response.content
        try:
            while True:
                line = await content.readline()
                if not line:
                    return
                yield line.rstrip(b"\r\n")
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise _timeout_error(self._url, exc) from exc
        except aiohttp.ClientError as exc:
            raise _connection_error(self._url, exc) from exc

    async def aread(self) -> bytes:
        return await self._response.read()


class AiohttpClient:
    """:class:`HttpClient` over an ``aiohttp.ClientSession``, created lazily on the running loop."""

    def __init__(self, session: aiohttp.ClientSession | None = None, *, limit: int = 0) -> None:
        self._session = session
        self._owned = session is None
        self._limit = limit

    def _get_session(self) -> aiohttp.ClientSession:
        session = self._session
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(limit=self._limit, ttl_dns_cache=300, keepalive_timeout=30)
            # auto_decompress stays on; raise_for_status stays off: adapters read error bodies. Provider
            # APIs set no cookies routerd should keep, and the cookie jar costs time on every request.
            session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None),
                cookie_jar=aiohttp.DummyCookieJar(),
                # HTTP(S)_PROXY / NO_PROXY are honoured: default_client() picks this client when they are set
                trust_env=True,
            )
            self._session = session
        return session

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
        body: Any = content
        if files is not None:
            body = _multipart(files, data or {})
        elif data is not None:
            body = dict(data)
        try:
            async with self._get_session().request(
                method,
                url,
                headers=dict(headers),
                data=body,
                params=_clean_params(params),
                timeout=_total_timeout(timeout),
            ) as response:
                payload = await response.read()
                return HttpResponse(
                    response.status, {k.lower(): v for k, v in response.headers.items()}, payload
                )
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise _timeout_error(url, exc) from exc
        except aiohttp.ClientError as exc:
            raise _connection_error(url, exc) from exc

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
        # For streams the deadline bounds the wait for the response head and each read, not the
        # whole body: a long generation is fine as long as tokens keep coming.
        client_timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout)
        try:
            response = await self._get_session().request(
                method, url, headers=dict(headers), data=content, timeout=client_timeout
            )
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise _timeout_error(url, exc) from exc
        except aiohttp.ClientError as exc:
            raise _connection_error(url, exc) from exc
        try:
            yield _AiohttpStream(response, url)
        finally:
            response.release()
            if not response.closed:
                response.close()

    async def aclose(self) -> None:
        if self._owned and self._session is not None and not self._session.closed:
            await self._session.close()
            # aiohttp recommends a short sleep so SSL transports finish closing before the loop ends.
            await asyncio.sleep(0)


# --- the default ---------------------------------------------------------------------------------

_PROXY_VARS = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy", "all_proxy")


def default_client() -> HttpClient:
    """The daemon's client: :class:`routerd.fasthttp.FastHttpClient`, or :class:`AiohttpClient`.

    aiohttp is used when ``ROUTERD_HTTP_CLIENT=aiohttp`` is set, and when any ``HTTP(S)_PROXY`` /
    ``ALL_PROXY`` variable is set: the fast client speaks no proxy protocol.
    """
    choice = os.environ.get("ROUTERD_HTTP_CLIENT", "").strip().lower()
    if choice == "aiohttp" or any(os.environ.get(name) for name in _PROXY_VARS):
        return AiohttpClient()
    from routerd.fasthttp import FastHttpClient  # here: fasthttp imports this module

    return FastHttpClient()


@functools.lru_cache(maxsize=256)
def _total_timeout(seconds: float | None) -> aiohttp.ClientTimeout:
    # the same few deadlines recur on every call: build each ClientTimeout once
    return aiohttp.ClientTimeout(total=seconds)


def _clean_params(params: Mapping[str, Any] | None) -> dict[str, str] | None:
    if not params:
        return None
    return {k: str(v) for k, v in params.items() if v is not None}


def _multipart(files: Any, data: Mapping[str, Any]) -> aiohttp.FormData:
    form = aiohttp.FormData()
    for key, value in data.items():
        form.add_field(key, str(value))
    items = files.items() if isinstance(files, Mapping) else files
    for key, spec in items:
        filename, payload, content_type = ([*list(spec), None, None])[:3]
        form.add_field(
            key, payload, filename=filename, content_type=content_type or "application/octet-stream"
        )
    return form
