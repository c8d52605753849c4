"""The SDK's side of the one routing core: tables, cached routers, and turning results into objects.

Every SDK call ends in :meth:`routerd.routing.executor.CallRouter.call`, the method the daemon's HTTP
handlers call; the SDK only decides which routing table to call it on:

* ``routerd.Router(model_list=...)`` compiles its ``model_list`` once, through the config pipeline
  (:func:`compile_mapping`), exactly as the daemon compiles a file;
* ``routerd.completion(model=...)`` uses a small table built on the fly (see
  :mod:`routerd.sdk.resolve`), compiled once per distinct set of resolved parameters and kept in a
  bounded LRU (:class:`RouterCache`), so a loop of calls reuses one router and its connections.

Every router the SDK builds shares :func:`~routerd.sdk.loop.shared_http`, one HTTP client per event
loop. Tables built for plain ``completion()`` calls disable cooldowns: a one-off call to one
deployment should reach it (and report its error) rather than be refused because earlier calls failed.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import orjson

from routerd.config import check_text
from routerd.config.table import Deployment, Group, RoutingTable
from routerd.cost import request_cost
from routerd.errors import APIConnectionError, ConfigError, InternalServerError, OpenAIError, Timeout
from routerd.providers.base import CHAT, COMPLETIONS, EMBEDDINGS
from routerd.routing.attempt import AttemptTracer
from routerd.routing.executor import CallRouter as CoreRouter
from routerd.routing.types import CallResult
from routerd.sdk.caching import CacheLookup
from routerd.sdk.loop import shared_http
from routerd.sdk.types import EmbeddingResponse, ModelResponse, TextCompletionResponse, build

__all__ = [
    "CallSpec",
    "RouterCache",
    "compile_mapping",
    "hidden_params",
    "mock_twin",
    "new_core_router",
    "response_object",
    "router_cache",
]

RESPONSE_CLASSES: Mapping[
    str, type[ModelResponse] | type[TextCompletionResponse] | type[EmbeddingResponse]
] = {
    CHAT: ModelResponse,
    COMPLETIONS: TextCompletionResponse,
    EMBEDDINGS: EmbeddingResponse,
}


def compile_mapping(config: Mapping[str, Any], source: str = "<model_list>") -> RoutingTable:
    """A routing table from a config held in memory (``{"model_list": [...], "router_settings": ...}``).

    It goes through the same load -> validate -> compile stages as a file (``os.environ/NAME``
    references included), serialised as JSON, which is YAML, so errors carry a line and the YAML path.
    Raises :class:`~routerd.errors.ConfigError` listing every problem.
    """
    try:
        text = orjson.dumps(config, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode()
    except TypeError as exc:
        raise ConfigError([f"{source}: the configuration must be plain JSON-like data: {exc}"]) from None
    result = check_text(text, source)
    if result.table is None:
        raise ConfigError(list(result.errors))
    return result.table


def new_core_router(table: RoutingTable) -> CoreRouter:
    """The daemon's router over ``table``, on the SDK's per-loop HTTP clients."""
    return CoreRouter(table, http=shared_http())


def mock_twin(table: RoutingTable) -> RoutingTable:
    """``table`` with every deployment served by the ``mock`` provider (same groups, ids, policy).

    ``Router.completion(..., mock_response=...)`` runs on it: the routing (strategies, retries,
    fallbacks) is the real one, and no request leaves the process.
    """

    def mocked(dep: Deployment) -> Deployment:
        return dataclasses.replace(dep, provider="mock", prepared=None)

    def group(g: Group) -> Group:
        return Group(g.name, tuple(mocked(d) for d in g.deployments))

    return dataclasses.replace(
        table,
        groups=MappingProxyType({name: group(g) for name, g in table.groups.items()}),
        wildcard_groups=tuple(group(g) for g in table.wildcard_groups),
        deployments=MappingProxyType({key: mocked(d) for key, d in table.deployments.items()}),
        content_hash=f"mock:{table.content_hash}",
    )


class RouterCache:
    """A bounded LRU of core routers, keyed by values that identify their tables (never raw secrets)."""

    def __init__(self, maxsize: int = 64) -> None:
        self.maxsize = maxsize
        self._routers: OrderedDict[Hashable, CoreRouter] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._routers)

    def get(self, key: Hashable, table: Callable[[], RoutingTable]) -> CoreRouter:
        """The router for ``key``, building its table with ``table()`` on a miss."""
        with self._lock:
            router = self._routers.get(key)
            if router is not None:
                self._routers.move_to_end(key)
                return router
        # Compiling takes milliseconds; do it outside the lock (a rare duplicate build is harmless).
        router = new_core_router(table())
        with self._lock:
            existing = self._routers.get(key)
            if existing is not None:
                return existing
            self._routers[key] = router
            while len(self._routers) > self.maxsize:
                # Evicted routers hold no connections of their own (those are in shared_http()).
                self._routers.popitem(last=False)
        return router

    def clear(self) -> None:
        with self._lock:
            self._routers.clear()


router_cache = RouterCache()


@dataclass(slots=True)
class CallSpec:
    """One call, ready for the core router."""

    router: CoreRouter
    endpoint: str
    body: dict[str, Any]
    model: str  # as the caller named it
    timeout: float | None = None
    extra_headers: Mapping[str, str] | None = None
    error: BaseException | None = None  # a mock_response exception, raised instead of calling
    tracer: AttemptTracer | None = None  # told of each upstream attempt (OpenTelemetry's attempt spans)
    cache: CacheLookup | None = None  # routerd.cache's lookup for this call (None: not cached)

    @property
    def stream(self) -> bool:
        return self.endpoint != EMBEDDINGS and bool(self.body.get("stream"))

    async def run(self) -> CallResult:
        if self.error is not None:
            raise self.error
        return await self.router.call(
            self.endpoint,
            self.body,
            timeout=self.timeout,
            extra_headers=self.extra_headers,
            tracer=self.tracer,
        )


def sdk_error(exc: BaseException, spec: CallSpec | None = None) -> None:
    """Give an error raised to an SDK caller LiteLLM's attributes (in place).

    The daemon answers an upstream 500 with 502, a refused connection with 502 and a timeout with 504
    (right for a gateway); the SDK's exceptions carry what LiteLLM's carry instead: the upstream's own
    5xx status, 500 for a connection error, 408 for a timeout, and ``num_retries`` / ``max_retries`` /
    ``litellm_debug_info``.
    """
    if not isinstance(exc, OpenAIError):
        return
    upstream = exc.upstream_status
    if isinstance(exc, Timeout):
        exc.status_code = 408
    elif isinstance(exc, APIConnectionError):
        exc.status_code = 500
    elif isinstance(exc, InternalServerError) and upstream is not None and upstream >= 500:
        exc.status_code = upstream
    routing = exc.routing
    retries = getattr(routing, "retries", None)
    exc.num_retries = retries if isinstance(retries, int) else None
    exc.max_retries = spec.body.get("num_retries") if spec is not None else None
    if getattr(exc, "litellm_debug_info", None) is None:
        exc.litellm_debug_info = (
            f"model={exc.model or (spec.model if spec else None)} provider={exc.llm_provider}"
        )


def hidden_params(result: CallResult) -> dict[str, Any]:
    """How a call was served (``response._hidden_params``); no secrets."""
    dep, info = result.deployment, result.info
    return {
        "model_id": dep.id,
        "model_group": info.group,
        "custom_llm_provider": dep.provider,
        "api_base": dep.api_base,
        "attempts": info.attempts,
        "retries": info.retries,
        "fallbacks": info.fallbacks,
    }


def response_object(
    endpoint: str, result: CallResult
) -> ModelResponse | TextCompletionResponse | EmbeddingResponse:
    """The SDK object for a complete (not streamed) result, with ``_hidden_params`` filled in."""
    assert result.response is not None
    body = result.response.body
    response = build(RESPONSE_CLASSES[endpoint], body)
    hidden = hidden_params(result)
    hidden["response_cost"] = _cost(result.deployment, body)
    hidden["headers"] = dict(result.response.headers)
    # LiteLLM's spelling of the upstream's headers, and its timing field (upstream time, ms)
    hidden["additional_headers"] = {f"llm_provider-{k}": v for k, v in result.response.headers.items()}
    hidden["_response_ms"] = result.info.upstream_latency * 1000
    response._hidden_params = hidden
    response._response_ms = hidden["_response_ms"]
    return response


def _cost(deployment: Deployment, body: Mapping[str, Any]) -> float | None:
    usage = body.get("usage")
    if not isinstance(usage, Mapping):
        return None
    model = body.get("model")
    return request_cost(
        deployment,
        int(usage.get("prompt_tokens") or 0),
        int(usage.get("completion_tokens") or 0),
        response_model=model if isinstance(model, str) else None,
    )
