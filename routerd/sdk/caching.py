"""``routerd.cache = routerd.Cache(...)``: LiteLLM's SDK response cache, on the daemon's cache parts.

The key (:func:`routerd.cache.key.cache_key`: the endpoint, the model as called and every body field
that can change the answer), the per-call controls (``cache={"no-cache": True, "ttl": ...}``, parsed
by :func:`routerd.cache.controls.parse_controls`) and the stores (:class:`~routerd.cache.local.LocalCache`,
:class:`~routerd.cache.redis_cache.RedisCache`) are the daemon's. With ``routerd.cache`` set, every
``completion`` / ``text_completion`` / ``embedding`` call (and their async twins, and streams: a hit
is replayed as chunks, a streamed answer is stored when its stream ends complete) of a call type the
cache covers is looked up first (mode ``default_on``, as LiteLLM's);
``caching=False`` on a call skips the cache, and in mode ``default_off`` only calls with
``caching=True`` (or ``cache={"use-cache": True}``) use it. A hit makes no upstream call; its
``_hidden_params["cache_hit"]`` is True.

A setting the cache cannot honour is refused when the :class:`Cache` is built (an unknown type or
argument, a call type routerd does not cache), never ignored; ``routerd.cache`` set to anything but a
:class:`Cache` (or None) fails the call with a ``TypeError``.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import orjson
from pydantic import ValidationError

from routerd.cache.controls import CacheControls, parse_controls
from routerd.cache.key import cache_key
from routerd.cache.local import LocalCache
from routerd.cache.redis_cache import RedisCache
from routerd.cache.replay import answer_from_chunks, chunks_from_answer
from routerd.cache.spec import CacheParams, endpoints_for

__all__ = ["REDIS_TIMEOUT", "Cache", "CacheLookup", "active_cache", "replayed", "storing"]

#: seconds a Redis cache read or write may take before it counts as a miss (the call goes upstream)
REDIS_TIMEOUT = 0.5


class Cache:
    """LiteLLM's ``Cache``: ``type="local"`` (an in-process LRU, bounded by ``ROUTERD_CACHE_MAX_MB`` and
    ``ROUTERD_CACHE_MAX_ENTRY_KB`` as the daemon's) or ``type="redis"`` (``host`` / ``port`` /
    ``password``, or ``url``), with ``namespace``, ``ttl`` (seconds, default 600), ``mode``
    (``"default_on"`` or ``"default_off"``) and ``supported_call_types``."""

    def __init__(
        self,
        type: str = "local",
        host: str | None = None,
        port: int | str | None = None,
        password: str | None = None,
        namespace: str | None = None,
        ttl: float | None = None,
        mode: str = "default_on",
        supported_call_types: list[str] | tuple[str, ...] | None = None,
        url: str | None = None,
        **kwargs: Any,
    ) -> None:
        if kwargs:
            raise TypeError(f"routerd.Cache does not support {', '.join(sorted(kwargs))}")
        if type not in ("local", "redis"):
            raise ValueError(f"cache type {type!r} is not implemented by routerd (use 'local' or 'redis')")
        fields: dict[str, Any] = {"type": type, "mode": getattr(mode, "value", mode)}
        optional = {"host": host, "port": port, "password": password, "namespace": namespace, "url": url}
        fields.update({k: v for k, v in optional.items() if v is not None})
        if ttl is not None:
            fields["ttl"] = ttl
        if supported_call_types is not None:
            fields["supported_call_types"] = tuple(supported_call_types)
        try:
            self.params = CacheParams(**fields)
        except ValidationError as exc:
            raise ValueError(f"routerd.Cache: {exc}") from None
        self.endpoints, skipped = endpoints_for(self.params)
        if skipped:
            raise ValueError(f"routerd.Cache does not cache call types {', '.join(skipped)}")
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()  # the local LRU is shared by the SDK's loop and callers' loops
        self._local: LocalCache | None = None
        if type == "local":
            from routerd.settings import Settings

            settings = Settings()
            self._local = LocalCache(
                max_bytes=settings.cache_max_mb << 20, max_entry_bytes=settings.cache_max_entry_kb << 10
            )
        # redis.asyncio clients belong to one event loop: one per loop that uses the cache
        self._redis: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, RedisCache] = (
            weakref.WeakKeyDictionary()
        )

    # --- the store -------------------------------------------------------------------------------
    async def get(self, key: str, *, max_age: float | None = None) -> bytes | None:
        """The stored answer for ``key`` (bytes of its JSON), or None."""
        if self._local is not None:
            with self._lock:
                entry = self._local.get(key, max_age=max_age)
        else:
            entry = await self._redis_store().get(key, max_age=max_age)
        return None if entry is None else entry.value

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        """Store an answer for ``ttl`` seconds (entries over the size bound are not stored)."""
        if self._local is not None:
            with self._lock:
                self._local.set(key, value, ttl)
        else:
            await self._redis_store().set(key, value, ttl)

    def _redis_store(self) -> RedisCache:
        loop = asyncio.get_running_loop()
        store = self._redis.get(loop)
        if store is None:
            import redis.asyncio as redis

            params = self.params
            if params.url:
                client = redis.Redis.from_url(params.url)
            else:
                client = redis.Redis(
                    host=params.host or "127.0.0.1", port=params.port or 6379, password=params.password
                )
            namespace = f"routerd:{params.namespace + ':' if params.namespace else ''}"
            store = RedisCache(client, namespace=namespace, max_entry_bytes=1 << 20, timeout=REDIS_TIMEOUT)
            self._redis[loop] = store
        return store

    async def aclose(self) -> None:
        """Close the Redis connections of the running loop (a local cache holds none)."""
        store = self._redis.pop(asyncio.get_running_loop(), None)
        if store is not None:
            await store.aclose()


@dataclass(slots=True)
class CacheLookup:
    """One call's use of the cache: its key and controls."""

    cache: Cache
    key: str
    controls: CacheControls

    async def answer(self) -> dict[str, Any] | None:
        """The cached answer, unless the call said ``no-cache``."""
        if self.controls.no_cache:
            return None
        raw = await self.cache.get(self.key, max_age=self.controls.s_maxage)
        if raw is None:
            self.cache.misses += 1
            return None
        self.cache.hits += 1
        answer: dict[str, Any] = orjson.loads(raw)
        return answer

    async def store(self, body: Mapping[str, Any]) -> None:
        if self.controls.no_store:
            return
        ttl = self.controls.ttl if self.controls.ttl is not None else self.cache.params.ttl
        await self.cache.set(self.key, orjson.dumps(body), ttl)


def active_cache(endpoint: str, model: str, body: dict[str, Any], *, stream: bool) -> CacheLookup | None:
    """The cache lookup of a call (``body``'s ``cache`` / ``caching`` are taken out), or None when the
    call does not use the cache: ``routerd.cache`` unset, an endpoint it does not cover,
    ``caching=False``, or mode ``default_off`` without an opt-in. A streamed and a complete call of one
    request share an entry (``stream`` is not in the key)."""
    from routerd.module_settings import setting

    controls = parse_controls(body.pop("cache", None))
    caching = body.pop("caching", None)
    cache = setting("cache")
    # routerd.cache is also the name of the cache subpackage: importing it sets the package attribute
    # to that module, which means "no cache set" as None does
    if cache is None or cache is False or isinstance(cache, ModuleType):
        return None
    if not isinstance(cache, Cache):
        raise TypeError(f"routerd.cache must be a routerd.Cache (or None), not {type(cache).__name__}")
    if endpoint not in cache.endpoints or caching is False or controls.use_cache is False:
        return None
    if cache.params.mode == "default_off" and not (caching is True or controls.use_cache):
        return None
    namespace = controls.namespace or cache.params.namespace or ""
    try:
        key = cache_key(endpoint, model, body, namespace=namespace)
    except TypeError:  # a body with objects JSON cannot hold (a mock_response exception): not cached
        return None
    return CacheLookup(cache, key, controls)


async def replayed(endpoint: str, answer: Mapping[str, Any], *, include_usage: bool) -> AsyncIterator[Any]:
    """A cached answer as the chunks of a stream (a hit on a ``stream=True`` call)."""
    for chunk in chunks_from_answer(endpoint, answer, include_usage=include_usage):
        yield chunk


async def storing(source: Any, lookup: CacheLookup, endpoint: str) -> AsyncIterator[Any]:
    """``source``'s chunks, passed on; when the stream ends complete, the answer they add up to is
    stored (a stream closed early, or cut by an error, stores nothing)."""
    seen: list[Any] = []
    try:
        async for chunk in source:
            seen.append(chunk)
            yield chunk
    finally:
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            await aclose()
    answer = answer_from_chunks(endpoint, seen)
    if answer is not None:
        await lookup.store(answer)
