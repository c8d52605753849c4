"""LiteLLM's read endpoints that front-ends and scripts call, in LiteLLM's shapes.

* ``GET /model/info`` and ``/v1/model/info``: one entry per deployment (``model_name``,
  ``litellm_params`` without credentials, ``model_info`` with routerd's id, provider and prices).
* ``GET /model_group/info``: one entry per model group (providers, limits, prices, mode).
* ``GET /health?model=<group>``: an on-demand check of that group's deployments -- one tiny call to
  each, at once -- answered as ``healthy_endpoints`` / ``unhealthy_endpoints``. ``/health`` without
  the query stays routerd's own report (:func:`routerd.server.ops.health`).

A client key sees only the groups it may call; no key, token or credential-bearing setting is shown.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from routerd.access.table import allowed_groups
from routerd.config.table import Deployment, Group, RoutingTable
from routerd.cost import lookup_price
from routerd.errors import BadRequestError, NotFoundError, OpenAIError
from routerd.providers.base import CHAT, EMBEDDINGS, UpstreamRequest
from routerd.server import ops
from routerd.server.auth import require_key
from routerd.server.errors import error_response
from routerd.server.gate import identify
from routerd.server.state import AppState

JSON = dict[str, Any]

#: seconds each deployment of an on-demand ``/health?model=`` check may take
HEALTH_CHECK_TIMEOUT = 30.0
#: the prompt of a health check call (and its ``max_tokens``): as small as a call can be
HEALTH_CHECK_PROMPT = "ping"
HEALTH_CHECK_MAX_TOKENS = 1


def _json(body: Any) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")


def _visible_groups(state: AppState, request: Request) -> list[Group]:
    """The groups the caller may use (all for the master key or an open gateway); 401 for a bad key."""
    table = state.table
    policy = identify(table, state.master_key, request.headers, time.time())
    names = list(table.groups)
    if policy is not None:
        names = allowed_groups(policy, names, table.access.access_groups)
    return [table.groups[name] for name in names]


def _safe_base(api_base: str | None) -> str | None:
    """``api_base`` without user information (a URL may carry a password)."""
    if not api_base:
        return api_base
    parts = urlsplit(api_base)
    if "@" not in parts.netloc:
        return api_base
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def _mode(dep: Deployment) -> str:
    return dep.info.mode or "chat"


def deployment_entry(dep: Deployment) -> JSON:
    """One ``/model/info`` entry (LiteLLM's shape); credentials are never included."""
    params: JSON = {"model": dep.litellm_model}
    optional = {
        "api_base": _safe_base(dep.api_base),
        "api_version": dep.api_version,
        "rpm": dep.rpm,
        "tpm": dep.tpm,
        "weight": dep.weight,
        "order": dep.order,
        "timeout": dep.timeout,
        "stream_timeout": dep.stream_timeout,
        "region_name": dep.region_name,
        "tags": list(dep.tags) or None,
    }
    params.update({key: value for key, value in optional.items() if value is not None})
    price = lookup_price(dep.litellm_model, deployment=dep)
    info = dep.info
    return {
        "model_name": dep.group,
        "litellm_params": params,
        "model_info": {
            "id": dep.id,
            "db_model": False,
            "litellm_provider": dep.provider,
            "mode": _mode(dep),
            "base_model": info.base_model,
            "max_input_tokens": info.max_input_tokens,
            "max_output_tokens": info.max_output_tokens,
            "max_tokens": info.max_output_tokens,
            "input_cost_per_token": price.input_cost_per_token if price else None,
            "output_cost_per_token": price.output_cost_per_token if price else None,
        },
    }


def group_entry(group: Group) -> JSON:
    """One ``/model_group/info`` entry (LiteLLM's shape)."""
    deps = group.deployments
    prices = [p for p in (lookup_price(d.litellm_model, deployment=d) for d in deps) if p is not None]
    return {
        "model_group": group.name,
        "providers": sorted({d.provider for d in deps}),
        "mode": _mode(deps[0]) if deps else "chat",
        "max_input_tokens": _smallest(d.info.max_input_tokens for d in deps),
        "max_output_tokens": _smallest(d.info.max_output_tokens for d in deps),
        "input_cost_per_token": max((p.input_cost_per_token for p in prices), default=None),
        "output_cost_per_token": max((p.output_cost_per_token for p in prices), default=None),
        "tpm": _total(d.tpm for d in deps),
        "rpm": _total(d.rpm for d in deps),
        "deployments": len(deps),
    }


def _smallest(values: Iterable[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return min(known) if known else None


def _total(values: Iterable[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


async def model_info(request: Request) -> Response:
    """``GET /model/info`` (optionally ``?litellm_model_id=<deployment id>``)."""
    state: AppState = request.app.state.routerd
    try:
        groups = _visible_groups(state, request)
    except Exception as exc:
        return error_response(exc)
    wanted = request.query_params.get("litellm_model_id")
    data = [
        deployment_entry(dep)
        for group in groups
        for dep in group.deployments
        if wanted is None or dep.id == wanted
    ]
    return _json({"data": data})


async def model_group_info(request: Request) -> Response:
    """``GET /model_group/info`` (optionally ``?model_group=<name>``)."""
    state: AppState = request.app.state.routerd
    try:
        groups = _visible_groups(state, request)
        wanted = request.query_params.get("model_group")
        if wanted is not None:
            groups = [g for g in groups if g.name == wanted]
            if not groups:
                raise NotFoundError(
                    f"no model group {wanted[:128]!r} visible to this key", param="model_group"
                )
    except Exception as exc:
        return error_response(exc)
    return _json({"data": [group_entry(g) for g in groups]})


async def health(request: Request) -> Response:
    """``GET /health``: with ``?model=``, an on-demand check of that group; else routerd's report."""
    model = request.query_params.get("model")
    if model is None:
        return await ops.health(request)
    state: AppState = request.app.state.routerd
    try:
        require_key(request.headers, state.master_key)
        if not model:
            raise BadRequestError("query parameter 'model' must name a model group", param="model")
        report = await check_group(state, state.table, model)
    except Exception as exc:
        return error_response(exc)
    return _json(report)


async def check_group(state: AppState, table: RoutingTable, model: str) -> JSON:
    """Call every deployment of ``model``'s group once, concurrently; LiteLLM's health report."""
    router = state.router
    prepared = router.resolve(model)
    if prepared is None:
        raise NotFoundError(
            f"model '{model[:128]}' is not served here; GET /v1/models lists them", param="model"
        )
    checks = [
        _check(router.http, adapter, candidate.deployment)
        for adapter, candidate in zip(prepared.adapters, prepared.plan.candidates, strict=True)
    ]
    results = await asyncio.gather(*checks)
    healthy: list[JSON] = [entry for entry, ok in results if ok]
    unhealthy: list[JSON] = [entry for entry, ok in results if not ok]
    return {
        "healthy_endpoints": healthy,
        "unhealthy_endpoints": unhealthy,
        "healthy_count": len(healthy),
        "unhealthy_count": len(unhealthy),
    }


async def _check(http: Any, adapter: Any, dep: Deployment) -> tuple[JSON, bool]:
    entry: JSON = {"model": dep.litellm_model, "model_id": dep.id, "api_base": _safe_base(dep.api_base)}
    body: JSON
    if _mode(dep) == "embedding":
        endpoint, body = EMBEDDINGS, {"model": dep.group, "input": HEALTH_CHECK_PROMPT}
    else:
        body = {
            "model": dep.group,
            "messages": [{"role": "user", "content": HEALTH_CHECK_PROMPT}],
            "max_tokens": HEALTH_CHECK_MAX_TOKENS,
        }
        endpoint = CHAT
    request = UpstreamRequest(deployment=dep, body=body, timeout=HEALTH_CHECK_TIMEOUT)
    method = adapter.embedding if endpoint == EMBEDDINGS else adapter.chat
    try:
        async with asyncio.timeout(HEALTH_CHECK_TIMEOUT):
            await method(http, request)
    except OpenAIError as exc:
        entry["error"] = exc.message[:500]
        entry["status_code"] = exc.upstream_status or exc.status_code
        return entry, False
    except TimeoutError:
        entry["error"] = f"no answer within {HEALTH_CHECK_TIMEOUT:g}s"
        return entry, False
    return entry, True


def model_info_routes() -> list[BaseRoute]:
    """The LiteLLM-compatible read endpoints (``/health`` included: it dispatches on ``?model=``)."""
    return [
        Route("/model/info", model_info, methods=["GET"]),
        Route("/v1/model/info", model_info, methods=["GET"]),
        Route("/model_group/info", model_group_info, methods=["GET"]),
        Route("/v1/model_group/info", model_group_info, methods=["GET"]),
    ]
