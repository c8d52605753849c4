"""LiteLLM's per-request cache controls (``"cache": {...}`` in the body), parsed and checked.

``no-cache``: do not answer from the cache (the fresh answer is still stored); ``no-store``: do not
store this answer; ``ttl``: store it for this many seconds; ``s-maxage``: accept a cached answer only
if it is at most this many seconds old; ``namespace``: read and write under this namespace;
``use-cache``: opt in when the cache's mode is ``default_off``. Wrong types are a 400, never ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from routerd.errors import BadRequestError

__all__ = ["CacheControls", "parse_controls"]

#: Longest per-request TTL or s-maxage honoured (a client cannot pin an entry for years).
MAX_CONTROL_SECONDS = 30 * 24 * 3600
#: Longest namespace accepted (it becomes part of every key).
MAX_NAMESPACE_CHARS = 128


@dataclass(frozen=True, slots=True)
class CacheControls:
    no_cache: bool = False
    no_store: bool = False
    ttl: float | None = None
    s_maxage: float | None = None
    namespace: str | None = None
    use_cache: bool | None = None


NONE = CacheControls()


def _seconds(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or value != value:
        raise BadRequestError(f"cache.{name} must be a non-negative number of seconds", param=f"cache.{name}")
    return float(min(value, MAX_CONTROL_SECONDS))


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise BadRequestError(f"cache.{name} must be true or false", param=f"cache.{name}")
    return value


def parse_controls(value: Any) -> CacheControls:
    """The controls in a request's ``cache`` field (absent or null: none)."""
    if value is None:
        return NONE
    if not isinstance(value, Mapping):
        raise BadRequestError("cache must be an object of cache controls", param="cache")
    unknown = sorted(set(value) - {"no-cache", "no-store", "ttl", "s-maxage", "namespace", "use-cache"})
    if unknown:
        raise BadRequestError(f"unknown cache control {unknown[0]!r}", param="cache")
    namespace = value.get("namespace")
    if namespace is not None and (not isinstance(namespace, str) or len(namespace) > MAX_NAMESPACE_CHARS):
        raise BadRequestError(
            f"cache.namespace must be a string of at most {MAX_NAMESPACE_CHARS} characters",
            param="cache.namespace",
        )
    return CacheControls(
        no_cache=_flag("no-cache", value["no-cache"]) if "no-cache" in value else False,
        no_store=_flag("no-store", value["no-store"]) if "no-store" in value else False,
        ttl=_seconds("ttl", value["ttl"]) if value.get("ttl") is not None else None,
        s_maxage=_seconds("s-maxage", value["s-maxage"]) if value.get("s-maxage") is not None else None,
        namespace=namespace,
        use_cache=_flag("use-cache", value["use-cache"]) if "use-cache" in value else None,
    )
