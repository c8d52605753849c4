"""Operational endpoints: models, health probes, per-deployment health, explain."""

from __future__ import annotations

import time
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from routerd import __version__
from routerd.access.table import allowed_groups, check_model
from routerd.errors import BadRequestError, NotFoundError
from routerd.routing.explain import explain as explain_model
from routerd.routing.explain import health_report
from routerd.server.auth import require_key
from routerd.server.errors import error_response
from routerd.server.gate import identify, preview
from routerd.server.state import AppState


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _state(request: Request) -> AppState:
    state: AppState = request.app.state.routerd
    return state


def _model_card(name: str, created: int) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": created, "owned_by": "routerd"}


def _visible_models(state: AppState, request: Request) -> list[str]:
    """The public model names the caller may use: all of them for the master key (or an open gateway),
    those its key and team allow for a client key. Raises 401 for a bad key."""
    table = state.table
    policy = identify(table, state.master_key, request.headers, time.time())
    names = list(table.public_names())
    if policy is None:
        return names
    return allowed_groups(policy, names, table.access.access_groups)


async def list_models(request: Request) -> Response:
    state = _state(request)
    try:
        names = _visible_models(state, request)
    except Exception as exc:
        return error_response(exc)
    created = int(state.reload.loaded_at)
    return _json({"object": "list", "data": [_model_card(name, created) for name in names]})


async def get_model(request: Request) -> Response:
    state = _state(request)
    model_id = request.path_params["model_id"]
    try:
        table = state.table
        policy = identify(table, state.master_key, request.headers, time.time())
        group = table.resolve(model_id)
        if group is None:
            raise NotFoundError(
                f"model '{model_id}' is not served here; GET /v1/models lists the models this gateway serves",
                param="model",
            )
        if policy is not None:
            check_model(policy, model_id, group.name, table.groups, table.access.access_groups)
    except Exception as exc:
        return error_response(exc)
    return _json(_model_card(model_id, int(state.reload.loaded_at)))


async def liveliness(request: Request) -> Response:
    return _json({"status": "alive"})


async def readiness(request: Request) -> Response:
    state = _state(request)
    if state.draining:
        return _json({"status": "draining"}, 503)
    return _json(
        {
            "status": "ready",
            "version": __version__,
            "config_generation": state.reload.generation,
            "config_hash": state.reload.content_hash,
        }
    )


async def health(request: Request) -> Response:
    state = _state(request)
    try:
        require_key(request.headers, state.master_key)
    except Exception as exc:
        return error_response(exc)
    reload = state.reload
    return _json(
        {
            "status": "ok" if reload.last_error is None else "degraded",
            "version": __version__,
            "config": {
                "path": str(state.config_path) if state.config_path else None,
                "generation": reload.generation,
                "content_hash": reload.content_hash,
                "loaded_at": reload.loaded_at,
                "last_reload_attempt_at": reload.last_attempt_at,
                "last_error": reload.last_error,
                "reload_failures": reload.failures,
                "restart_required": list(reload.restart_required),
                "warnings": list(state.table.warnings),
            },
            "deployments": health_report(state.router),
            "state": state.router.state.status().as_dict(),
        }
    )


async def explain(request: Request) -> Response:
    state = _state(request)
    try:
        require_key(request.headers, state.master_key)
        model = request.query_params.get("model")
        if not model:
            raise BadRequestError("query parameter 'model' is required", param="model")
        samples_raw = request.query_params.get("samples", "1000")
        # isdigit alone accepts "²", which int() refuses
        if not (samples_raw.isascii() and samples_raw.isdigit()) or not 1 <= int(samples_raw) <= 100_000:
            raise BadRequestError("'samples' must be an integer between 1 and 100000", param="samples")
        if state.table.resolve(model) is None:
            raise NotFoundError(
                f"model '{model}' is not served here; GET /v1/models lists them", param="model"
            )
        report = explain_model(state.router, model, samples=int(samples_raw))
        requested = [n for n in request.query_params.get("guardrails", "").split(",") if n]
        report["gate"] = preview(
            state.table,
            model,
            request.query_params.get("endpoint", "chat"),
            requested,
            request.query_params.get("key_alias"),
        )
    except Exception as exc:
        return error_response(exc)
    return _json(report)
