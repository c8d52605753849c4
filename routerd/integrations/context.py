"""The incoming request's headers, for callbacks of the daemon (OpenTelemetry reads ``traceparent``).

The inference handler sets :data:`REQUEST_HEADERS` once per request; the router runs in the same
context, so the pre-call hooks (:mod:`routerd.integrations.proxy`) see that request's headers.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar

__all__ = ["REQUEST_HEADERS"]

#: lower-cased header names -> values of the request being served (None outside a request)
REQUEST_HEADERS: ContextVar[Mapping[str, str] | None] = ContextVar("routerd_request_headers", default=None)
