"""Turning one SDK call's arguments into a :class:`~routerd.sdk.engine.CallSpec`, and running it.

Shared by the module-level functions (:mod:`routerd.sdk.main`) and :class:`routerd.Router`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

from routerd.config.table import RoutingTable
from routerd.errors import BadRequestError, ConfigError
from routerd.integrations.callbacks import CallbackRun
from routerd.module_settings import apply_verbose, setting
from routerd.providers.base import CHAT, COMPLETIONS
from routerd.routing.executor import CallRouter as CoreRouter
from routerd.routing.types import CallResult
from routerd.sdk.caching import active_cache, replayed, storing
from routerd.sdk.engine import (
    RESPONSE_CLASSES,
    CallSpec,
    compile_mapping,
    hidden_params,
    mock_twin,
    response_object,
    router_cache,
    sdk_error,
)
from routerd.sdk.loop import background_loop
from routerd.sdk.params import (
    IGNORED_KWARGS,
    headers_param,
    mock_exception,
    response_format_param,
    timeout_seconds,
)
from routerd.sdk.resolve import DEPLOYMENT_KWARGS, Target, resolve_fallbacks, resolve_target
from routerd.sdk.streaming import AsyncStreamWrapper, SyncStreamWrapper, chat_chunk, text_chunk
from routerd.sdk.types import build

__all__ = ["CREDENTIAL_KWARGS", "FALLBACK_KINDS", "finish_async", "finish_sync", "prepare", "split_call_args"]

#: arguments that say where the upstream is and how to authenticate
CREDENTIAL_KWARGS = frozenset(
    {"api_key", "api_base", "base_url", "api_version", "organization", "custom_llm_provider", "deployment_id"}
)
#: per-call fallback lists the router reads from the body
FALLBACK_KINDS = ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks")


def split_call_args(args: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(body parameters, SDK options) from every argument of a call, ``None`` values dropped.

    SDK options are what steers the call without being an upstream parameter: credentials, the
    timeout, headers, ``model_list``, deployment settings. ``mock_response``, ``num_retries``,
    fallbacks, ``metadata`` and ``tags`` stay in the body, where the router reads (and removes) them.
    """
    body: dict[str, Any] = {}
    options: dict[str, Any] = {}
    for key, value in args.items():
        if value is None or key in IGNORED_KWARGS:
            continue
        if key in CREDENTIAL_KWARGS or key in DEPLOYMENT_KWARGS or key in _OPTION_KEYS:
            options[key] = value
        else:
            body[key] = value
    extra_body = options.pop("extra_body", None)
    if extra_body is not None:
        if not isinstance(extra_body, Mapping):
            raise BadRequestError("extra_body must be a mapping", param="extra_body")
        body.update(extra_body)
    if "response_format" in body:
        body["response_format"] = response_format_param(body["response_format"])
    return body, options


_OPTION_KEYS = frozenset(
    {"timeout", "request_timeout", "extra_headers", "headers", "extra_body", "model_list"}
)


def prepare(endpoint: str, model: str, body: dict[str, Any], options: dict[str, Any]) -> CallSpec:
    """The call for ``completion()``-style functions: on ``model_list`` when given, else on a table
    built for the model and its fallbacks (see :mod:`routerd.sdk.resolve`).

    Module settings (:mod:`routerd.module_settings`) fill what the call leaves out: ``model_alias_map``,
    ``num_retries`` (after the call's own ``max_retries``), ``request_timeout``, ``drop_params``,
    ``modify_params``.
    """
    apply_verbose()
    model = _aliased(model)
    _module_defaults(body, options)
    mock = "mock_response" in body
    # raised when the call runs, so failure callbacks see it as they see any error
    error = mock_exception(body["mock_response"], model) if mock else None
    timeout = timeout_seconds(options.get("timeout", options.get("request_timeout")))
    headers = headers_param(options.get("extra_headers"), options.get("headers"))
    model_list = options.get("model_list")
    if model_list is not None:
        router = _model_list_router(model_list, mock)
    else:
        router = _auto_router(model, body, options, mock)
    body["model"] = model
    spec = CallSpec(router, endpoint, body, model, timeout, headers, error)
    cached = active_cache(endpoint, model, body, stream=spec.stream)
    spec.cache = cached if error is None else None
    return spec


def _aliased(model: str) -> str:
    aliases = setting("model_alias_map")
    if isinstance(aliases, Mapping) and isinstance(aliases.get(model), str):
        return str(aliases[model])
    return model


def _module_defaults(body: dict[str, Any], options: dict[str, Any]) -> None:
    """Fill the call's unset retries, timeout, ``drop_params`` and ``modify_params`` from the module settings.

    ``max_retries`` is LiteLLM's per-call retry count (its client's retries), so ``max_retries=0``
    means one upstream call; ``num_retries`` in the same call wins over it.
    """
    # A call's max_retries becomes the router's retry budget and only that: left in the deployment's
    # params it would also repeat calls inside each attempt (litellm_params.max_retries), multiplying them.
    call_retries = options.pop("max_retries", None)
    if "num_retries" not in body:
        retries = call_retries if call_retries is not None else setting("num_retries")
        if retries is not None:
            body["num_retries"] = retries
    if "timeout" not in options and "request_timeout" not in options:
        timeout = setting("request_timeout")
        if timeout is not None:
            options["timeout"] = timeout
    for flag in ("drop_params", "modify_params"):
        if flag not in options and setting(flag) is True:
            options[flag] = True


def _model_list_router(model_list: Any, mock: bool) -> CoreRouter:
    if not isinstance(model_list, list):
        raise BadRequestError("model_list must be a list of deployments", param="model_list")
    try:
        digest = hashlib.sha256(orjson.dumps(model_list, option=orjson.OPT_SORT_KEYS)).hexdigest()
    except TypeError as exc:
        raise BadRequestError(f"model_list must be plain JSON-like data: {exc}", param="model_list") from None

    def table() -> RoutingTable:
        compiled = compile_mapping({"model_list": model_list}, "<model_list>")
        return mock_twin(compiled) if mock else compiled

    return router_cache.get(("model_list", digest, mock), table)


def _auto_router(model: str, body: dict[str, Any], options: dict[str, Any], mock: bool) -> CoreRouter:
    deployment_kwargs = {k: v for k, v in options.items() if k in DEPLOYMENT_KWARGS}
    primary = resolve_target(
        model,
        api_key=_first(options.get("api_key"), setting("api_key")),
        api_base=_first(options.get("api_base", options.get("base_url")), setting("api_base")),
        api_version=_first(options.get("api_version"), setting("api_version")),
        organization=_first(options.get("organization"), setting("organization")),
        custom_llm_provider=options.get("custom_llm_provider"),
        deployment_id=options.get("deployment_id"),
        mock=mock,
        deployment_kwargs=deployment_kwargs,
    )
    targets = [primary]
    for kind in FALLBACK_KINDS:
        entries = body.get(kind)
        if entries is None:
            continue
        if not isinstance(entries, list):
            raise BadRequestError(f"{kind} must be a list of model names", param=kind)
        resolved = resolve_fallbacks(entries, primary, mock=mock)
        targets.extend(resolved)
        body[kind] = [t.group for t in resolved]
    key = ("auto", *(t.cache_key() for t in targets))
    return router_cache.get(key, lambda: _auto_table(model, targets))


def _first(value: Any, default: Any) -> Any:
    return value if value is not None else default


def _auto_table(model: str, targets: list[Target]) -> RoutingTable:
    config = {
        "model_list": [t.model_list_entry() for t in _unique(targets)],
        "router_settings": {"disable_cooldowns": True},
    }
    try:
        return compile_mapping(config, f"<completion model={model}>")
    except ConfigError as exc:
        raise BadRequestError(
            f"cannot call model '{model}': {exc}", model=model, llm_provider=targets[0].provider
        ) from None


def _unique(targets: list[Target]) -> list[Target]:
    seen: set[str] = set()
    out = []
    for target in targets:
        if target.group not in seen:
            seen.add(target.group)
            out.append(target)
    return out


def _converter(endpoint: str) -> Any:
    return chat_chunk if endpoint == CHAT else text_chunk if endpoint == COMPLETIONS else None


def _run_for(spec: CallSpec, *, is_async: bool) -> CallbackRun | None:
    return CallbackRun.from_settings(
        spec.endpoint, spec.model, spec.body, stream=spec.stream, is_async=is_async
    )


async def _execute(spec: CallSpec, run: CallbackRun | None) -> CallResult:
    """The call, between its pre-call and failure callbacks; errors get LiteLLM's attributes."""
    if run is not None:
        await run.pre_call()
        traced = run.outgoing_headers()
        if traced:  # OpenTelemetry's traceparent: the upstream call joins the call's trace
            spec.extra_headers = {**traced, **(spec.extra_headers or {})}
        # one span per upstream attempt (retries, fallbacks), whose traceparent its request carries
        spec.tracer = run.attempt_tracer()
    try:
        return await spec.run()
    except BaseException as exc:
        sdk_error(exc, spec)
        if run is not None and isinstance(exc, Exception):
            await run.failed(exc)
        raise


_HIT = {"cache_hit": True, "response_cost": 0.0}


async def _from_cache(spec: CallSpec, run: CallbackRun | None, *, is_async: bool) -> Any:
    """The answer ``routerd.cache`` holds for the call (None: a miss): a response object, or for a
    stream a wrapper replaying it as chunks. Callbacks hear of a hit as of any call (``cache_hit``)."""
    assert spec.cache is not None
    answer = await spec.cache.answer()
    if answer is None:
        return None
    hidden = {**_HIT, "model_group": spec.model}
    if run is not None:  # LiteLLM reports a cache hit to the callbacks too, at no cost
        await run.pre_call()
        run.kwargs["cache_hit"] = True
    if spec.stream:
        options = spec.body.get("stream_options")
        usage = isinstance(options, dict) and bool(options.get("include_usage"))
        source = replayed(spec.endpoint, answer, include_usage=usage)
        if is_async:
            return AsyncStreamWrapper(
                source, _converter(spec.endpoint), model=spec.model, hidden_params=hidden, observer=run
            )
        return SyncStreamWrapper(
            source,
            _converter(spec.endpoint),
            loop=background_loop,
            model=spec.model,
            hidden_params=hidden,
            observer=run,
        )
    response = build(RESPONSE_CLASSES[spec.endpoint], answer)
    response._hidden_params = hidden
    if run is not None:
        await run.succeeded(response, cost=0.0)
    return response


def _stream_source(spec: CallSpec, result: CallResult) -> Any:
    """The result's chunks; with the cache on, kept and stored when the stream ends complete."""
    assert result.stream is not None
    return result.stream if spec.cache is None else storing(result.stream, spec.cache, spec.endpoint)


async def _complete(spec: CallSpec, result: CallResult, run: CallbackRun | None) -> Any:
    response = response_object(spec.endpoint, result)
    if spec.cache is not None and result.response is not None:
        await spec.cache.store(result.response.body)
    if run is not None:
        await run.succeeded(response, cost=response._hidden_params.get("response_cost"))
    return response


def finish_sync(spec: CallSpec) -> Any:
    """Run ``spec`` on the SDK's background loop; a response object or a :class:`SyncStreamWrapper`."""
    run = _run_for(spec, is_async=False)
    if spec.cache is not None:
        hit = background_loop.run(_from_cache(spec, run, is_async=False))
        if hit is not None:
            return hit
    result = background_loop.run(_execute(spec, run))
    if result.stream is not None:
        return SyncStreamWrapper(
            _stream_source(spec, result),
            _converter(spec.endpoint),
            loop=background_loop,
            model=spec.model,
            hidden_params=hidden_params(result),
            observer=run,
        )
    if run is None and spec.cache is None:
        return response_object(spec.endpoint, result)
    return background_loop.run(_complete(spec, result, run))


async def finish_async(spec: CallSpec) -> Any:
    """Run ``spec`` on the running loop; a response object or an :class:`AsyncStreamWrapper`."""
    run = _run_for(spec, is_async=True)
    if spec.cache is not None:
        hit = await _from_cache(spec, run, is_async=True)
        if hit is not None:
            return hit
    result = await _execute(spec, run)
    if result.stream is not None:
        return AsyncStreamWrapper(
            _stream_source(spec, result),
            _converter(spec.endpoint),
            model=spec.model,
            hidden_params=hidden_params(result),
            observer=run,
        )
    return await _complete(spec, result, run)
