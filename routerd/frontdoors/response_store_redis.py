"""Stored responses in Redis, for replicas that share them (same interface as the memory store).

One string key per response, ``<prefix><owner>:<response id>``, holding the record as JSON with a
Redis expiry of the store's TTL: a follow-up (``previous_response_id``) on any replica is one ``GET``.
The owner is the digest :func:`routerd.server.frontdoor_serve.owner_of` computes, never a key. One
record is bounded like the memory store's (``RESPONSE_STORE_MAX_ENTRY_BYTES``); the total is bounded
by the Redis server's own ``maxmemory`` and eviction policy (use ``volatile-ttl`` or ``allkeys-lru``).

The client (``redis.asyncio.Redis`` or anything with its ``get``/``set``/``delete``) is injected: the
daemon hands over the shared state store's connection (``ROUTERD_REDIS_URL`` / ``router_settings.redis_*``),
so replicas share stored responses whenever they share health. Redis being unreachable is a 503 for a
lookup (the conversation cannot be continued honestly without it) and a response not stored for a put.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import orjson

from routerd.errors import ServiceUnavailableError
from routerd.frontdoors.limits import RESPONSE_STORE_MAX_ENTRY_BYTES, RESPONSE_STORE_TTL_SECONDS
from routerd.frontdoors.response_store import StoredResponse

log = logging.getLogger("routerd.frontdoors")

#: longest response id looked up or stored (ids routerd and OpenAI make are ~60 characters)
MAX_RESPONSE_ID = 256


class RedisLike(Protocol):
    """The three commands the store uses (``redis.asyncio.Redis`` has them)."""

    async def get(self, name: str) -> Any: ...

    async def set(self, name: str, value: bytes, *, px: int) -> Any: ...

    async def delete(self, *names: str) -> Any: ...


class RedisResponseStore:
    """Stored responses in Redis; see the module docstring."""

    def __init__(
        self,
        client: RedisLike,
        *,
        ttl: float = RESPONSE_STORE_TTL_SECONDS,
        max_entry_bytes: int = RESPONSE_STORE_MAX_ENTRY_BYTES,
        prefix: str = "routerd:responses:",
    ) -> None:
        self.client = client
        self.ttl = ttl
        self.max_entry_bytes = max_entry_bytes
        self.prefix = prefix

    def _key(self, response_id: str, owner: str) -> str | None:
        if not response_id or len(response_id) > MAX_RESPONSE_ID:
            return None
        return f"{self.prefix}{owner}:{response_id}"

    async def get(self, response_id: str, owner: str) -> StoredResponse | None:
        key = self._key(response_id, owner)
        try:
            raw = await self.client.get(key) if key is not None else None
        except Exception as exc:  # the connection, not the request: say so rather than "not found"
            raise ServiceUnavailableError(
                "stored responses are unreachable (the shared state store is down); retry shortly",
                code="response_store_unavailable",
            ) from exc
        if raw is None:
            return None
        record = orjson.loads(raw)
        return StoredResponse(response=record["response"], input_items=record["input_items"])

    async def put(self, response_id: str, owner: str, record: StoredResponse) -> bool:
        key = self._key(response_id, owner)
        data = orjson.dumps({"response": record.response, "input_items": record.input_items})
        if key is None or len(data) > self.max_entry_bytes:
            return False
        try:
            await self.client.set(key, data, px=max(int(self.ttl * 1000), 1))
        except Exception:  # the answer was served; only its follow-ups will miss it
            log.warning(
                "could not store response %s in the shared state store", response_id[:80], exc_info=True
            )
            return False
        return True

    async def delete(self, response_id: str, owner: str) -> bool:
        key = self._key(response_id, owner)
        try:
            return key is not None and bool(await self.client.delete(key))
        except Exception as exc:
            raise ServiceUnavailableError(
                "stored responses are unreachable (the shared state store is down); retry shortly",
                code="response_store_unavailable",
            ) from exc
