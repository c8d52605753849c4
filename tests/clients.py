"""Synchronous SDK and HTTP clients that tests open in helpers, closed after every test.

A helper such as ``client_for(server)`` returns a client that the test uses inline; rather than make
every call site a ``with`` block, the helper passes it through :func:`tracked` and the root conftest's
autouse fixture closes whatever was tracked once the test ends, so no socket outlives its test (the
suite runs with ``filterwarnings = ["error"]``: a leaked socket's ResourceWarning fails a later test).
"""

from __future__ import annotations

from typing import Protocol, TypeVar


class _Closable(Protocol):
    def close(self) -> None: ...


C = TypeVar("C", bound=_Closable)

_open: list[_Closable] = []


def tracked(client: C) -> C:
    """Return ``client``, to be closed when the running test ends."""
    _open.append(client)
    return client


def close_tracked() -> int:
    """Close every tracked client (newest first); return how many were closed."""
    closed = 0
    while _open:
        _open.pop().close()
        closed += 1
    return closed
