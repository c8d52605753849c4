"""The HTTP clients every provider adapter talks through.

Adapters never touch a client library directly; they call :class:`HttpClient`. Two implementations:

* :class:`FastHttpClient` (asyncio Protocols + httptools, :mod:`routerd.http.fast`): the daemon's and
  the SDK's default, measured on the hot path (``bench/bench_proxy.py``).
* :class:`HttpxClient` wraps any ``httpx.AsyncClient``: the interface users inject (their own
  proxies, certificates, or ``httpx.MockTransport`` in tests); also the client when an HTTP proxy is
  configured, and the fast client's helper for multipart uploads and query parameters.

Both bound what an upstream may send (:class:`HttpLimits`), never follow redirects, and translate
transport failures into routerd's errors (:mod:`routerd.http.base`).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from routerd.http.base import (
    HttpClient,
    HttpLimits,
    HttpResponse,
    StreamResponse,
)
from routerd.http.fast import FastHttpClient

if TYPE_CHECKING:
    from routerd.http.httpx_client import HttpxClient
    from routerd.settings import HttpSettings

__all__ = [
    "FastHttpClient",
    "HttpClient",
    "HttpLimits",
    "HttpResponse",
    "HttpxClient",
    "StreamResponse",
    "default_client",
    "limits_from",
]

_PROXY_VARS = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy", "all_proxy")
_MIB = 1024 * 1024


def __getattr__(name: str) -> Any:
    # httpx is imported with the first HttpxClient, not with this package: a daemon that never makes
    # one (no proxy, no multipart upload) starts without loading httpx
    if name == "HttpxClient":
        from routerd.http.httpx_client import HttpxClient

        return HttpxClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def limits_from(settings: HttpSettings) -> HttpLimits:
    """The :class:`HttpLimits` the settings ask for."""
    return HttpLimits(
        max_body_bytes=int(settings.upstream_max_body_mb * _MIB),
        max_line_bytes=int(settings.upstream_max_line_mb * _MIB),
    )


def default_client(settings: HttpSettings | None = None) -> HttpClient:
    """The daemon's client: :class:`FastHttpClient`, or :class:`HttpxClient` behind a proxy.

    ``settings`` default to ``ROUTERD_*`` environment variables (``routerd serve`` exports its
    settings there for every worker). httpx is used when ``ROUTERD_HTTP_CLIENT=httpx``, and under
    ``auto`` when any ``HTTP(S)_PROXY`` / ``ALL_PROXY`` variable is set: the fast client speaks no
    proxy protocol, and httpx honours those variables (and ``NO_PROXY``).
    """
    if settings is None:
        from routerd.settings import HttpSettings  # the ROUTERD_* reader: only when a client is made

        settings = HttpSettings()
    limits = limits_from(settings)
    choice = settings.http_client
    if choice == "httpx" or (choice == "auto" and any(os.environ.get(name) for name in _PROXY_VARS)):
        from routerd.http.httpx_client import HttpxClient

        return HttpxClient(
            limits=limits,
            max_connections=settings.upstream_max_connections,
            pool_timeout=settings.upstream_pool_timeout,
        )
    return FastHttpClient(
        limits=limits,
        max_connections_per_origin=settings.upstream_max_connections,
        pool_timeout=settings.upstream_pool_timeout,
    )
