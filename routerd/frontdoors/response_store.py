"""Stored Responses (``store: true``), for ``previous_response_id`` and ``GET /v1/responses/{id}``.

A stored response keeps the Response object routerd answered with and the whole conversation input
that produced it (the previous response's input and output items, then the new request's), so a
follow-up needs one lookup, never a walk down a chain. Records are scoped by an owner (a digest of the
client key that created them, never the key itself: a shared store keeps it at rest): another key's
lookup finds nothing, exactly as a missing id.

:class:`ResponseStore` is the interface (async, so a Redis version can follow);
:class:`MemoryResponseStore` is the in-process default, bounded in lifetime, entries and bytes.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from routerd.frontdoors.limits import (
    RESPONSE_STORE_MAX_ENTRIES,
    RESPONSE_STORE_MAX_ENTRY_BYTES,
    RESPONSE_STORE_MAX_TOTAL_BYTES,
    RESPONSE_STORE_TTL_SECONDS,
)

if TYPE_CHECKING:
    from routerd.settings import Settings

JSON = dict[str, Any]


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """One stored response: the Response object and the input items it answered."""

    response: JSON
    input_items: list[JSON]

    def conversation(self) -> list[JSON]:
        """The items a follow-up continues from: this response's input, then its output."""
        return [*self.input_items, *self.response.get("output", [])]


class ResponseStore(Protocol):
    """Where stored responses live; every call is scoped to the ``owner`` that stored them."""

    async def get(self, response_id: str, owner: str) -> StoredResponse | None:
        """The stored response, or None when absent, expired or stored by another owner."""
        ...

    async def put(self, response_id: str, owner: str, record: StoredResponse) -> bool:
        """Store ``record``; False when it is larger than one entry may be (it is not stored)."""
        ...

    async def delete(self, response_id: str, owner: str) -> bool:
        """Remove the response; False when there was none for this owner."""
        ...


@dataclass(frozen=True, slots=True)
class _Entry:
    data: bytes  # the record as JSON: its size is exact and nobody can change it after it is stored
    expires: float


class MemoryResponseStore:
    """Stored responses in one process, oldest first; lost on restart.

    Bounds: ``ttl`` seconds of life; at most ``max_entries`` records and ``max_total_bytes`` bytes
    (the oldest are evicted to make room); records above ``max_entry_bytes`` are refused. ``clock``
    is injected so expiry is tested without sleeping.
    """

    def __init__(
        self,
        *,
        ttl: float = RESPONSE_STORE_TTL_SECONDS,
        max_entries: int = RESPONSE_STORE_MAX_ENTRIES,
        max_entry_bytes: int = RESPONSE_STORE_MAX_ENTRY_BYTES,
        max_total_bytes: int = RESPONSE_STORE_MAX_TOTAL_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.max_entry_bytes = max_entry_bytes
        self.max_total_bytes = max_total_bytes
        self._clock = clock
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self.total_bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, response_id: str, owner: str) -> StoredResponse | None:
        self._expire()
        entry = self._entries.get((owner, response_id))
        if entry is None:
            return None
        raw = orjson.loads(entry.data)
        return StoredResponse(response=raw["response"], input_items=raw["input_items"])

    async def put(self, response_id: str, owner: str, record: StoredResponse) -> bool:
        data = orjson.dumps({"response": record.response, "input_items": record.input_items})
        if len(data) > self.max_entry_bytes:
            return False
        self._remove((owner, response_id))
        self._expire()
        while self._entries and (
            len(self._entries) >= self.max_entries or self.total_bytes + len(data) > self.max_total_bytes
        ):
            self._remove(next(iter(self._entries)))
        self._entries[(owner, response_id)] = _Entry(data, self._clock() + self.ttl)
        self.total_bytes += len(data)
        return True

    async def delete(self, response_id: str, owner: str) -> bool:
        self._expire()
        return self._remove((owner, response_id))

    def _remove(self, key: tuple[str, str]) -> bool:
        entry = self._entries.pop(key, None)
        if entry is None:
            return False
        self.total_bytes -= len(entry.data)
        return True

    def _expire(self) -> None:
        # Every entry lives ``ttl``, so insertion order is expiry order: stop at the first live one.
        now = self._clock()
        while self._entries:
            key, entry = next(iter(self._entries.items()))
            if entry.expires > now:
                return
            self._remove(key)


def response_store(
    settings: Settings, clock: Callable[[], float] = time.monotonic, shared: Any = None
) -> ResponseStore:
    """The store of ``/v1/responses`` answers, entries living ``ROUTERD_RESPONSES_TTL`` seconds: in
    Redis when the router's health store is shared there (``shared``), else in memory (the other
    bounds are the constants in :mod:`routerd.frontdoors.limits`)."""
    client = getattr(shared, "client", None)
    if client is not None:
        from routerd.frontdoors.response_store_redis import RedisResponseStore

        return RedisResponseStore(
            client, ttl=settings.responses_ttl, prefix=f"{getattr(shared, 'namespace', 'routerd:')}responses:"
        )
    return MemoryResponseStore(ttl=settings.responses_ttl, clock=clock)
