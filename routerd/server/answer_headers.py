"""The routing headers of an answer, and their pre-rendered form for the direct path (issue 20).

Every answer carries ``x-request-id``, the ``x-routerd-*`` routing headers and their ``x-litellm-*``
twins (the names LiteLLM's proxy sends, which its users' tooling reads): :func:`routing_headers`.

Building them as a dict, encoding each name and value and checking each again while rendering the
head cost ~800 Python opcodes per request, close to a tenth of routerd's own work on a streamed
answer. So on routerd's direct path (:mod:`routerd.server.protocol`) an answer's
``http.response.start`` message carries them as one block of ready header lines under
:data:`HEAD_BLOCK` (:func:`routing_block`): the lines that depend on the route (model id, group, api
base, attempts, retries, fallbacks) are rendered and checked once per route and remembered, the request
id is added per request. The remembered routes are bounded (:data:`MAX_ROUTES`; wildcard groups and
their deployments are named by clients). A ``send`` that does not take blocks (uvicorn's, Starlette's,
any ASGI middleware) gets the usual header list (:func:`asgi_start`).

Header values are client-influenced (a wildcard group is the model the client named, ``x-request-id``
may be the client's): :func:`header_value` keeps a value that can be sent as it is (printable
Latin-1) and percent-encodes the UTF-8 of any other, so no model name can fail an answer or add a line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import quote, urlsplit, urlunsplit

from starlette.types import Message

from routerd.routing.types import RoutingInfo

__all__ = [
    "HEAD_BLOCK",
    "MAX_ROUTES",
    "asgi_start",
    "header_lines",
    "header_value",
    "public_api_base",
    "routing_block",
    "routing_headers",
]

#: the start-message key of the pre-rendered header lines (``name: value\r\n`` each), which only a
#: ``send`` with a true ``head_blocks`` attribute is given
HEAD_BLOCK = "routerd.head"
#: routes whose header lines are remembered; past it the table starts again (a client naming new
#: wildcard models costs a rendering per request, never memory)
MAX_ROUTES = 1024

# printable ASCII but "%": what percent-encoding leaves alone
_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if c != 0x25)

_routes: dict[tuple[str, str, str, int, int, int], bytes] = {}


def header_value(value: str) -> str:
    """``value`` as a header value: unchanged when it is printable Latin-1 (a tab allowed), else the
    percent-encoded UTF-8 of it (non-Latin-1 text, control characters)."""
    if value.isascii() and value.isprintable():
        return value
    if all(c == "\t" or (c.isprintable() and c <= "\xff") for c in value):
        return value
    return quote(value, safe=_SAFE)


def routing_headers(request_id: str, info: RoutingInfo | None) -> dict[str, str]:
    """``x-request-id``, the ``x-routerd-*`` routing headers and their ``x-litellm-*`` twins."""
    request_id = header_value(request_id)
    headers = {"x-request-id": request_id, "x-litellm-call-id": request_id}
    if info is not None:
        headers.update(_route_headers(info))
    return headers


def _route_headers(info: RoutingInfo) -> dict[str, str]:
    headers: dict[str, str] = {}
    if info.deployment_id:
        headers["x-routerd-model-id"] = headers["x-litellm-model-id"] = header_value(info.deployment_id)
    headers["x-routerd-attempts"] = str(info.attempts)
    headers["x-routerd-attempted-retries"] = headers["x-litellm-attempted-retries"] = str(info.retries)
    headers["x-routerd-attempted-fallbacks"] = headers["x-litellm-attempted-fallbacks"] = str(info.fallbacks)
    if info.group:
        headers["x-litellm-model-group"] = header_value(info.group)
    base = public_api_base(info.api_base)
    if base:
        headers["x-litellm-model-api-base"] = base
    return headers


def public_api_base(url: str) -> str:
    """``url`` without anything that may hold a credential (user:password@, query, fragment); ""
    when it is not an http(s) URL. Keys are never part of a header routerd sends."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    host = parts.netloc.rpartition("@")[2]
    if parts.scheme not in ("http", "https") or not host:
        return ""
    base = urlunsplit((parts.scheme, host, parts.path, "", ""))
    return base if base.isascii() and base.isprintable() else ""


def header_lines(headers: Mapping[str, str]) -> bytes:
    """``headers`` as ``name: value\\r\\n`` lines (names are routerd's own lower-case constants;
    values pass :func:`header_value`)."""
    return b"".join(
        b"%b: %b\r\n" % (name.encode("ascii"), header_value(value).encode("latin-1"))
        for name, value in headers.items()
    )


def routing_block(request_id: str, info: RoutingInfo) -> bytes:
    """:func:`routing_headers` as header lines, the route's part rendered once (see the module)."""
    key = (info.deployment_id, info.group, info.api_base, info.attempts, info.retries, info.fallbacks)
    lines = _routes.get(key)
    if lines is None:
        if len(_routes) >= MAX_ROUTES:
            _routes.clear()
        lines = _routes[key] = header_lines(_route_headers(info))
    rid = header_value(request_id).encode("latin-1")
    return b"x-request-id: %b\r\nx-litellm-call-id: %b\r\n%b" % (rid, rid, lines)


def _parsed(block: bytes) -> Iterable[tuple[bytes, bytes]]:
    for line in block.split(b"\r\n"):
        if line:
            name, _, value = line.partition(b": ")
            yield name, value


def asgi_start(start: Message) -> Message:
    """A start message for any ``send``: its pre-rendered block, if any, back in its header list."""
    block = start.get(HEAD_BLOCK)
    if block is None:
        return start
    message = {k: v for k, v in start.items() if k != HEAD_BLOCK}
    message["headers"] = [*start.get("headers", ()), *_parsed(block)]
    return message
