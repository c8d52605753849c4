"""The local cache: an LRU of serialized answers bounded in bytes, with per-entry expiry.

Values are bytes (the answer as JSON), so the size bound is exact: an entry costs ``len(value)`` plus
a fixed per-entry overhead (:data:`ENTRY_OVERHEAD`, the measured cost of the key string, the entry
tuple and the ordered dict's slot). An entry larger than ``max_entry_bytes`` is not stored; inserting
past ``max_bytes`` evicts the least recently used entries. Time is injected.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["ENTRY_OVERHEAD", "CachedValue", "LocalCache"]

#: Bytes counted per entry besides its value (a 64-char key string ~113 B, the entry ~72 B, the dict
#: slot ~100 B, rounded up).
ENTRY_OVERHEAD = 320


@dataclass(frozen=True, slots=True)
class CachedValue:
    value: bytes
    stored_at: float
    expires_at: float


class LocalCache:
    """A byte-bounded LRU with expiry. Not thread-safe: one per event loop."""

    def __init__(
        self, *, max_bytes: int, max_entry_bytes: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_bytes = max_bytes
        self.max_entry_bytes = max_entry_bytes
        self._clock = clock
        self._entries: OrderedDict[str, CachedValue] = OrderedDict()
        self.bytes = 0
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str, *, max_age: float | None = None) -> CachedValue | None:
        """The entry if present, not expired and (with ``max_age``) young enough; marks it recently used."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        now = self._clock()
        if entry.expires_at <= now:
            self._drop(key, entry)
            return None
        if max_age is not None and now - entry.stored_at > max_age:
            return None
        self._entries.move_to_end(key)
        return entry

    def set(self, key: str, value: bytes, ttl: float) -> bool:
        """Store ``value`` for ``ttl`` seconds; False when it is too large to store (or ttl <= 0)."""
        if ttl <= 0 or len(value) > self.max_entry_bytes or len(value) + ENTRY_OVERHEAD > self.max_bytes:
            return False
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= len(old.value) + ENTRY_OVERHEAD
        now = self._clock()
        self._entries[key] = CachedValue(value, now, now + ttl)
        self.bytes += len(value) + ENTRY_OVERHEAD
        while self.bytes > self.max_bytes:
            oldest, entry = next(iter(self._entries.items()))
            self._drop(oldest, entry)
            self.evictions += 1
        return True

    def clear(self) -> None:
        self._entries.clear()
        self.bytes = 0

    def _drop(self, key: str, entry: CachedValue) -> None:
        del self._entries[key]
        self.bytes -= len(entry.value) + ENTRY_OVERHEAD


class AsyncLocalCache:
    """:class:`LocalCache` behind the same async interface as the Redis cache, so the gate has one."""

    def __init__(self, cache: LocalCache) -> None:
        self.local = cache
        self.max_entry_bytes = cache.max_entry_bytes

    @property
    def evictions(self) -> int:
        return self.local.evictions

    async def get(self, key: str, *, max_age: float | None = None) -> CachedValue | None:
        return self.local.get(key, max_age=max_age)

    async def set(self, key: str, value: bytes, ttl: float) -> bool:
        return self.local.set(key, value, ttl)
