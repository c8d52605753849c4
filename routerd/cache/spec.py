"""The cache configuration in LiteLLM's shape: ``litellm_settings.cache`` and ``cache_params``.

```yaml
litellm_settings:
  cache: true
  cache_params:
    type: redis            # or local (the default)
    host: 127.0.0.1        # redis: host/port/password, or url; the shared-state store's connection is
    port: 6379             # reused when it points at the same server
    namespace: prod
    ttl: 600
    mode: default_on       # default_off: only requests with cache: {use-cache: true}
    supported_call_types: [acompletion, atext_completion, aembedding]
```

LiteLLM cache types routerd does not implement (semantic caches, disk, S3, GCS, ...) and call types it
does not cache are reported as warnings by name, and the cache is then off (a type) or skips them (call
types): never silently different.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["CALL_TYPE_ENDPOINTS", "UNSUPPORTED_TYPES", "CacheParams", "endpoints_for"]

#: LiteLLM call types and the routerd endpoint each one caches.
CALL_TYPE_ENDPOINTS = {
    "completion": "chat",
    "acompletion": "chat",
    "text_completion": "completions",
    "atext_completion": "completions",
    "embedding": "embeddings",
    "aembedding": "embeddings",
}
#: LiteLLM cache types that exist but are not implemented here.
UNSUPPORTED_TYPES = frozenset(
    {"redis-semantic", "valkey-semantic", "qdrant-semantic", "s3", "gcs", "azure-blob", "disk"}
)


class CacheParams(BaseModel):
    """``litellm_settings.cache_params``."""

    model_config = ConfigDict(frozen=True, extra="allow", hide_input_in_errors=True)

    type: str = Field(default="local", description="`local` (in-process LRU) or `redis`.")
    host: str | None = None
    port: Annotated[int, Field(ge=1, le=65535)] | None = None
    password: str | None = None
    url: str | None = Field(default=None, description="A redis:// or rediss:// URL instead of host/port.")
    namespace: str | None = Field(
        default=None, description="Prefix of every key (several gateways, one Redis)."
    )
    ttl: Annotated[float, Field(gt=0)] = Field(default=600, description="Seconds an answer is kept.")
    mode: Literal["default_on", "default_off"] = "default_on"
    supported_call_types: tuple[str, ...] = Field(
        default=(
            "completion",
            "acompletion",
            "text_completion",
            "atext_completion",
            "embedding",
            "aembedding",
        ),
        description="LiteLLM call types to cache.",
    )
    key_includes_user: bool = Field(
        default=False, description="routerd: separate entries per end user (the request's `user` field)."
    )

    def extra(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


def endpoints_for(params: CacheParams) -> tuple[frozenset[str], list[str]]:
    """The endpoints cached and the call types named that routerd does not cache."""
    endpoints = {CALL_TYPE_ENDPOINTS[c] for c in params.supported_call_types if c in CALL_TYPE_ENDPOINTS}
    skipped = [c for c in params.supported_call_types if c not in CALL_TYPE_ENDPOINTS]
    return frozenset(endpoints), skipped


@dataclass(frozen=True, slots=True)
class CacheConfig:
    """The cache as the routing table holds it: on, with these parameters, for these endpoints."""

    params: CacheParams
    endpoints: frozenset[str]

    @property
    def backend(self) -> str:
        return self.params.type


def compile_cache(
    enabled: bool | None, params: CacheParams | None
) -> tuple[CacheConfig | None, list[tuple[tuple[str, ...], str]]]:
    """The table's cache (None when off) and warnings as (YAML path, message)."""
    warnings: list[tuple[tuple[str, ...], str]] = []
    if not enabled:
        if params is not None:
            warnings.append(
                (("litellm_settings", "cache_params"), "cache_params has no effect without `cache: true`")
            )
        return None, warnings
    params = params or CacheParams()
    if params.type in UNSUPPORTED_TYPES:
        warnings.append(
            (
                ("litellm_settings", "cache_params", "type"),
                f"cache type {params.type!r} is not implemented by routerd; caching is off (use local or redis)",
            )
        )
        return None, warnings
    if params.type not in ("local", "redis"):
        warnings.append(
            (
                ("litellm_settings", "cache_params", "type"),
                f"unknown cache type {params.type!r}; caching is off (use local or redis)",
            )
        )
        return None, warnings
    endpoints, skipped = endpoints_for(params)
    for name in skipped:
        warnings.append(
            (
                ("litellm_settings", "cache_params", "supported_call_types"),
                f"call type {name!r} is not cached by routerd",
            )
        )
    for key in sorted(params.extra()):
        warnings.append(
            (("litellm_settings", "cache_params", key), "not a cache setting routerd acts on; ignored")
        )
    return CacheConfig(params, endpoints), warnings
