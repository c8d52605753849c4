"""Bounds on client connections, and the answers routerd writes itself below the ASGI layer.

A client that has not yet sent a complete request head has not authenticated, so everything it can hold
before that point -- bytes of head, time, a connection -- must be bounded, or an anonymous flood shuts
out everyone else (issue 21, M2). :class:`routerd.server.protocol.RouterdHttpProtocol` enforces these
limits; they come from :class:`routerd.settings.Settings` (``ROUTERD_*`` / ``routerd serve`` flags).
"""

from __future__ import annotations

import random
import resource
from dataclasses import dataclass

import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE

from routerd.settings import Settings

__all__ = ["ConnectionLimits", "default_max_connections", "new_request_id", "raw_error"]

#: the fewest connections the derived default allows, whatever the open-file limit
MIN_CONNECTIONS = 64

# Request ids need to be unique, not secret: the random module's generator (seeded from the OS,
# re-seeded in a forked child) gives 128 bits without the system call os.urandom makes every time.
_random_bits = random.getrandbits


def new_request_id() -> str:
    """A fresh request id (32 hex digits)."""
    return f"{_random_bits(128):032x}"


def default_max_connections() -> int:
    """Half the process's open-file limit: the other half stays for upstream connections, files, logs.

    Past the limit the kernel refuses ``accept`` for everyone alike, which is the failure to avoid; below
    it routerd chooses whom to close (the longest-idle connection first).
    """
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 32_768
    return max(MIN_CONNECTIONS, soft // 2)


def raise_open_file_limit(ceiling: int = 65_536) -> None:
    """Raise the soft open-file limit towards the hard one (as Go's runtime does at start).

    Distributions default the soft limit to 1,024, which a few hundred keep-alive clients plus their
    upstream connections exhaust. Best effort: a failure leaves the limit as it was.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = ceiling if hard == resource.RLIM_INFINITY else min(hard, ceiling)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """What one client connection may hold before and between its requests."""

    max_header_bytes: int = 65_536
    header_timeout: float = 10.0
    body_timeout: float = 300.0
    keep_alive_timeout: float = 15.0
    max_connections: int = 10_000

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionLimits:
        return cls(
            max_header_bytes=settings.max_header_bytes,
            header_timeout=settings.header_timeout,
            body_timeout=settings.body_timeout,
            keep_alive_timeout=settings.keep_alive_timeout,
            max_connections=settings.max_connections or default_max_connections(),
        )


def raw_error(status: int, message: str, code: str, *, error_type: str = "invalid_request_error") -> bytes:
    """A complete HTTP/1.1 answer in OpenAI's error shape that closes the connection.

    For the answers the protocol writes before (or instead of) the application: malformed requests,
    over-large heads, refused connections.
    """
    body = orjson.dumps({"error": {"message": message, "type": error_type, "param": None, "code": code}})
    return b"".join(
        (
            STATUS_LINE[status],
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"x-request-id: ",
            new_request_id().encode(),
            b"\r\nconnection: close\r\n\r\n",
            body,
        )
    )
