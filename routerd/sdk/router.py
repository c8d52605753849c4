"""``routerd.Router``: the daemon's router, in-process.

Built from a ``model_list`` (LiteLLM's list of ``{"model_name", "litellm_params", "model_info"}``
dicts) plus router settings as keyword arguments, or from a routing file. Either way the deployments
go through the daemon's config pipeline and the calls through the daemon's
:class:`routerd.routing.executor.CallRouter`: the same strategies, retries with jittered backoff,
cooldowns and fallbacks. One implementation, two front doors.

::

    router = routerd.Router(
        model_list=[
            {"model_name": "gpt-4o", "litellm_params": {"model": "azure/gpt-4o-eu", "api_base": ..., "api_key": ...}},
            {"model_name": "gpt-4o", "litellm_params": {"model": "openai/gpt-4o"}},
            {"model_name": "claude", "litellm_params": {"model": "anthropic/claude-3-5-sonnet-20241022"}},
        ],
        routing_strategy="latency-based-routing",
        num_retries=2,
        fallbacks=[{"gpt-4o": ["claude"]}],
    )
    response = router.completion(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import httpx

from routerd.config import load_config
from routerd.config.table import RoutingTable
from routerd.errors import BadRequestError
from routerd.events import EventBus
from routerd.http import HttpClient, HttpxClient
from routerd.providers.base import CHAT, COMPLETIONS, EMBEDDINGS
from routerd.routing.executor import CallRouter as CoreRouter
from routerd.routing.explain import explain, health_report
from routerd.sdk.caching import active_cache
from routerd.sdk.calls import CREDENTIAL_KWARGS, finish_async, finish_sync, split_call_args
from routerd.sdk.engine import CallSpec, compile_mapping, mock_twin
from routerd.sdk.errors import raises_sdk_errors
from routerd.sdk.loop import background_loop, shared_http
from routerd.sdk.params import headers_param, mock_exception, timeout_seconds
from routerd.sdk.resolve import DEPLOYMENT_KWARGS

__all__ = ["Router"]

# Router keyword arguments that belong to ``litellm_settings``; every other one is a
# ``router_settings`` key (validated there, with a did-you-mean for typos).
_LITELLM_SETTINGS = frozenset({"drop_params", "request_timeout"})


class Router:
    """Load balancing, retries, cooldowns and fallbacks over a list of deployments.

    ``model_list``: the deployments (LiteLLM's format; ``os.environ/NAME`` values are resolved).
    ``config``: a routing file path instead of ``model_list`` (its own settings apply).
    ``http_client``: an ``httpx.AsyncClient`` (or a :class:`routerd.http.HttpClient`) to call
    upstreams with; by default the SDK's per-event-loop clients (:func:`routerd.http.default_client`). An injected client belongs to
    one event loop, so use the ``a``-prefixed methods on that loop with it.
    ``**settings``: ``router_settings`` keys (``routing_strategy``, ``num_retries``, ``fallbacks``,
    ``context_window_fallbacks``, ``cooldown_time``, ``allowed_fails``, ``timeout``, ``retry_policy``,
    ``model_group_alias``, ...) plus ``drop_params`` / ``request_timeout``.

    Raises :class:`routerd.ConfigError` listing every problem when the deployments or settings are
    invalid.
    """

    def __init__(
        self,
        model_list: list[dict[str, Any]] | None = None,
        *,
        config: str | os.PathLike[str] | None = None,
        http_client: httpx.AsyncClient | HttpClient | None = None,
        **settings: Any,
    ) -> None:
        if (model_list is None) == (config is None):
            raise TypeError("routerd.Router needs a model_list or a config path (not both)")
        if config is not None and settings:
            raise TypeError(f"settings come from the config file; unexpected: {', '.join(sorted(settings))}")
        self._settings = dict(settings)
        self._config_path = config
        self._model_list = list(model_list) if model_list is not None else None
        table = self._compile(self._model_list) if self._model_list is not None else load_config(config)  # type: ignore[arg-type]
        http: HttpClient
        if http_client is None:
            http = shared_http()
        elif isinstance(http_client, httpx.AsyncClient):
            http = HttpxClient(http_client, owned=False)
        else:
            http = http_client
        self._http = http
        self._core = CoreRouter(table, http=http)
        self._mock: CoreRouter | None = None
        self._closed = False

    @classmethod
    def from_config(cls, path: str | os.PathLike[str], **kwargs: Any) -> Router:
        """A router over the routing file at ``path``."""
        return cls(config=path, **kwargs)

    def _compile(self, model_list: list[dict[str, Any]]) -> RoutingTable:
        router_settings = {k: v for k, v in self._settings.items() if k not in _LITELLM_SETTINGS}
        litellm_settings = {k: v for k, v in self._settings.items() if k in _LITELLM_SETTINGS}
        config: dict[str, Any] = {"model_list": model_list}
        if router_settings:
            config["router_settings"] = router_settings
        if litellm_settings:
            config["litellm_settings"] = litellm_settings
        return compile_mapping(config, "<routerd.Router>")

    # --- the table -------------------------------------------------------------------------------

    @property
    def table(self) -> RoutingTable:
        """The compiled routing table calls use now."""
        return self._core.table

    @property
    def model_list(self) -> list[dict[str, Any]] | None:
        """The ``model_list`` this router was built from (None when built from a file)."""
        return list(self._model_list) if self._model_list is not None else None

    @property
    def events(self) -> EventBus:
        """The router's event bus (retries, fallbacks, cooldowns, attempts) for subscribers."""
        return self._core.events

    def get_model_names(self) -> list[str]:
        """Model names callers can ask for: groups and aliases."""
        return self._core.table.public_names()

    def set_model_list(self, model_list: list[dict[str, Any]]) -> None:
        """Replace the deployments (same settings). All or nothing: on a ConfigError nothing changes.

        Calls in flight finish on the table they started with; health state of deployments that are
        still present carries over.
        """
        table = self._compile(list(model_list))
        self._core.publish(table)
        self._model_list = list(model_list)
        self._mock = None

    def reload(self) -> None:
        """Re-read the routing file (routers built with ``config=``), publishing it if it is valid."""
        if self._config_path is None:
            raise TypeError("reload() is for routers built from a config file; use set_model_list()")
        self._core.publish(load_config(self._config_path))
        self._mock = None

    def health(self) -> dict[str, Any]:
        """Per-deployment health (state, cooldowns, usage windows), as the daemon's ``/health``."""
        return health_report(self._core)

    def explain(self, model: str, **kwargs: Any) -> dict[str, Any]:
        """Where calls for ``model`` would go and why, without calling any provider."""
        return explain(self._core, model, **kwargs)

    # --- calls -----------------------------------------------------------------------------------

    def _spec(self, endpoint: str, model: str, args: Mapping[str, Any]) -> CallSpec:
        if self._closed:
            raise RuntimeError("this routerd.Router is closed")
        body, options = split_call_args(args)
        misplaced = sorted(
            k for k in options if k in CREDENTIAL_KWARGS or k in DEPLOYMENT_KWARGS or k == "model_list"
        )
        if misplaced:
            raise BadRequestError(
                f"{', '.join(misplaced)} belong(s) in the model_list's litellm_params, not in a Router call",
                param=misplaced[0],
            )
        core = self._core
        if "mock_response" in body:
            error = mock_exception(body["mock_response"], model)
            if error is not None:
                raise error
            core = self._mock_core()
        body["model"] = model
        timeout = timeout_seconds(options.get("timeout", options.get("request_timeout")))
        headers = headers_param(options.get("extra_headers"), options.get("headers"))
        spec = CallSpec(core, endpoint, body, model, timeout, headers)
        spec.cache = active_cache(endpoint, model, body, stream=spec.stream)  # routerd.cache, as calls'
        return spec

    def _mock_core(self) -> CoreRouter:
        # mock_response answers on a twin of the table served by the mock provider: real routing,
        # no network. Built on first use, per published table.
        if self._mock is None or self._mock.table.content_hash != f"mock:{self._core.table.content_hash}":
            self._mock = CoreRouter(mock_twin(self._core.table), http=self._http)
        return self._mock

    @raises_sdk_errors
    def completion(self, model: str, messages: list[Any], **kwargs: Any) -> Any:
        """A chat completion routed over this router's deployments; arguments as :func:`routerd.completion`."""
        return finish_sync(self._spec(CHAT, model, {"messages": messages, **kwargs}))

    @raises_sdk_errors
    async def acompletion(self, model: str, messages: list[Any], **kwargs: Any) -> Any:
        """:meth:`completion` on the running event loop."""
        return await finish_async(self._spec(CHAT, model, {"messages": messages, **kwargs}))

    @raises_sdk_errors
    def text_completion(self, model: str, prompt: Any, **kwargs: Any) -> Any:
        """A text completion (``/v1/completions``): ``response.choices[0].text``."""
        return finish_sync(self._spec(COMPLETIONS, model, {"prompt": prompt, **kwargs}))

    @raises_sdk_errors
    async def atext_completion(self, model: str, prompt: Any, **kwargs: Any) -> Any:
        """:meth:`text_completion` on the running event loop."""
        return await finish_async(self._spec(COMPLETIONS, model, {"prompt": prompt, **kwargs}))

    @raises_sdk_errors
    def embedding(self, model: str, input: Any, **kwargs: Any) -> Any:
        """Embeddings of ``input``: ``response.data[0].embedding``."""
        return finish_sync(self._spec(EMBEDDINGS, model, {"input": input, **kwargs}))

    @raises_sdk_errors
    async def aembedding(self, model: str, input: Any, **kwargs: Any) -> Any:
        """:meth:`embedding` on the running event loop."""
        return await finish_async(self._spec(EMBEDDINGS, model, {"input": input, **kwargs}))

    # --- lifecycle -------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Release the router's resources. Shared HTTP clients stay open for other routers; a client
        passed in as ``http_client`` stays open too (it is the caller's)."""
        if self._closed:
            return
        self._closed = True
        await self._core.aclose()
        if self._mock is not None:
            await self._mock.aclose()

    def close(self) -> None:
        """:meth:`aclose` from synchronous code."""
        if not self._closed:
            background_loop.run(self.aclose())

    def __enter__(self) -> Router:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    async def __aenter__(self) -> Router:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        table = self._core.table
        return f"routerd.Router(models={table.public_names()!r}, strategy={table.policy.routing_strategy!r})"
