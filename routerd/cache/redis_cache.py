"""The response cache in Redis, shared by every replica (``cache_params.type: redis``).

Entries are plain strings with an expiry: ``SET key <stored-at>|<answer JSON> EX ttl``. Every call is
bounded by the connection's timeout, and any failure -- Redis down, slow, or answering nonsense -- is a
miss (for a read) or a skipped store (for a write), never an error for the client: the call goes
upstream as if the cache were off, and ``errors`` counts it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from routerd.cache.local import CachedValue

__all__ = ["RedisCache"]

log = logging.getLogger("routerd.cache")


class RedisCache:
    """Async get/set over a ``redis.asyncio`` client (single node or Cluster)."""

    def __init__(
        self,
        client: Any,
        *,
        namespace: str,
        max_entry_bytes: int,
        timeout: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.max_entry_bytes = max_entry_bytes
        self.timeout = timeout
        self._clock = clock
        self.errors = 0
        self.evictions = 0  # Redis evicts on its own (maxmemory-policy); routerd does not count it

    def _key(self, key: str) -> str:
        return f"{self.namespace}cache:{key}"

    def _failed(self, what: str, exc: BaseException) -> None:
        self.errors += 1
        if self.errors == 1 or self.errors % 1000 == 0:
            log.warning(
                "redis cache %s failed (%s); treated as a miss (%d failures so far)",
                what,
                type(exc).__name__,
                self.errors,
            )

    async def get(self, key: str, *, max_age: float | None = None) -> CachedValue | None:
        try:
            raw = await asyncio.wait_for(self.client.get(self._key(key)), self.timeout)
        except Exception as exc:  # unreachable, slow, cluster moved...: a miss
            self._failed("read", exc)
            return None
        if not raw:
            return None
        stamp, sep, value = bytes(raw).partition(b"|")
        try:
            stored_at = float(stamp)
        except ValueError:
            return None
        if not sep or (max_age is not None and self._clock() - stored_at > max_age):
            return None
        return CachedValue(value, stored_at, float("inf"))

    async def set(self, key: str, value: bytes, ttl: float) -> bool:
        if ttl <= 0 or len(value) > self.max_entry_bytes:
            return False
        payload = b"%.3f|" % self._clock() + value
        try:
            await asyncio.wait_for(
                self.client.set(self._key(key), payload, px=max(1, int(ttl * 1000))), self.timeout
            )
        except Exception as exc:
            self._failed("write", exc)
            return False
        return True

    async def aclose(self) -> None:
        close = getattr(self.client, "aclose", None) or getattr(self.client, "close", None)
        if close is not None:
            try:
                await close()
            except Exception:
                log.debug("closing the redis cache client failed", exc_info=True)
