"""OpenAI's Batch API: ``/v1/batches`` create, list, retrieve, cancel.

Without ``custom_llm_provider`` a batch is a gateway batch (:mod:`routerd.server.batch_gateway`): any
key may create one from its own upload, for a model group it may call; it runs on one of the group's
OpenAI/Azure deployments, only its creator sees it, and its usage is metered. Naming
``custom_llm_provider`` (body, query string or header) passes the call to that provider's own Batch
API with its ``files_settings`` entry, as for files: the master key only. OpenAI and Azure OpenAI have
the API; another provider answers a 400 naming it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from routerd.errors import BadRequestError
from routerd.finetune.serving import PROVIDER_FIELD, PROVIDER_HEADER, ManagementCall, handle
from routerd.finetune.types import FILES, PageQuery
from routerd.finetune.validation import page_query
from routerd.server import batch_gateway
from routerd.server.batch_input import ENDPOINT_NAMES
from routerd.server.inference import parse_json, read_body

#: the endpoints a batch may run (OpenAI's list)
BATCH_ENDPOINTS = frozenset(ENDPOINT_NAMES)
_FIELDS = frozenset({"input_file_id", "endpoint", "completion_window", "metadata", "output_expires_after"})


def batch_request(body: Any) -> dict[str, Any]:
    """The body to send upstream (routerd's provider field removed); a 400 naming the field otherwise."""
    if not isinstance(body, Mapping):
        raise BadRequestError("request body must be a JSON object", code="invalid_request_body")
    out = {k: v for k, v in body.items() if k != PROVIDER_FIELD}
    unknown = sorted(set(out) - _FIELDS)
    if unknown:
        raise BadRequestError(f"unknown field {unknown[0]!r}", param=unknown[0])
    if not isinstance(out.get("input_file_id"), str) or not out["input_file_id"]:
        raise BadRequestError(
            "'input_file_id' is required: a file uploaded with purpose 'batch'", param="input_file_id"
        )
    if out.get("endpoint") not in BATCH_ENDPOINTS:
        raise BadRequestError(
            f"'endpoint' must be one of {', '.join(sorted(BATCH_ENDPOINTS))}", param="endpoint"
        )
    if out.get("completion_window") != "24h":
        raise BadRequestError("'completion_window' must be '24h'", param="completion_window")
    if out.get("metadata") is not None and not isinstance(out["metadata"], Mapping):
        raise BadRequestError("'metadata' must be an object", param="metadata")
    return out


def _batches(call: ManagementCall, provider: str) -> Any:
    """The provider's client, if it has the Batch API; a 400 naming the provider otherwise."""
    client = call.client(provider)
    if not hasattr(client, "create_batch"):
        raise BadRequestError(f"provider {provider} does not support batches", param=PROVIDER_FIELD)
    return client


def named_provider(request: Request, body: Any = None) -> Any:
    """The ``custom_llm_provider`` the client named (body or form, query, header), or None: a request
    that names one is a provider-level call (master key), one that does not is a gateway call."""
    raw = body.get(PROVIDER_FIELD) if isinstance(body, Mapping) else body
    if raw is None or raw == "":
        raw = request.query_params.get(PROVIDER_FIELD) or request.headers.get(PROVIDER_HEADER)
    return raw or None


_PROVIDER_LEVEL = "a provider-level batch call (custom_llm_provider)"
T = TypeVar("T")


async def create_batch(request: Request) -> Response:
    async def work(call: ManagementCall) -> Any:
        caller = batch_gateway.caller_of(call.state, request.headers)
        body = parse_json(await read_body(request, call.state.max_body_bytes))
        named = named_provider(request, body)
        if named is not None:
            batch_gateway.require_admin(caller, _PROVIDER_LEVEL)
            return await _batches(call, call.choose_provider(named)).create_batch(batch_request(body))
        checked = batch_request(body)
        files = call.client(call.choose_provider())  # where /v1/files put the input file
        return await batch_gateway.create(call, caller, checked, files)

    return await handle(request, FILES, "batch_create", work, keyed=True)


async def _provider_or_gateway(
    request: Request,
    operation: str,
    argument: Callable[[Request], T],
    provider: Callable[[Any, T], Awaitable[Any]],
    gateway: Callable[[ManagementCall, batch_gateway.Caller, T], Awaitable[Any]],
) -> Response:
    """A list/retrieve/cancel call: the provider's own Batch API when the request names
    ``custom_llm_provider`` (the master key only), else the gateway's batches the caller may see.
    ``argument`` (the query, the batch id) is read after the caller is known, before the split."""

    async def work(call: ManagementCall) -> Any:
        caller = batch_gateway.caller_of(call.state, request.headers)
        value = argument(request)
        if named_provider(request) is not None:
            batch_gateway.require_admin(caller, _PROVIDER_LEVEL)
            return await provider(_batches(call, call.choose_provider()), value)
        return await gateway(call, caller, value)

    return await handle(request, FILES, operation, work, keyed=True)


def _query(request: Request) -> PageQuery:
    return page_query(request.query_params)


def _batch_id(request: Request) -> str:
    return str(request.path_params["batch_id"])


async def list_batches(request: Request) -> Response:
    return await _provider_or_gateway(
        request, "batch_list", _query, lambda client, query: client.list_batches(query), batch_gateway.page
    )


async def retrieve_batch(request: Request) -> Response:
    return await _provider_or_gateway(
        request,
        "batch_retrieve",
        _batch_id,
        lambda client, batch_id: client.retrieve_batch(batch_id),
        batch_gateway.retrieve,
    )


async def cancel_batch(request: Request) -> Response:
    return await _provider_or_gateway(
        request,
        "batch_cancel",
        _batch_id,
        lambda client, batch_id: client.cancel_batch(batch_id),
        batch_gateway.cancel,
    )


def batches_routes() -> list[BaseRoute]:
    """The Batch API routes, with and without the ``/v1`` prefix."""
    routes: list[BaseRoute] = []
    for prefix in ("/v1", ""):
        batches = f"{prefix}/batches"
        routes += [
            Route(batches, create_batch, methods=["POST"]),
            Route(batches, list_batches, methods=["GET"]),
            Route(f"{batches}/{{batch_id}}", retrieve_batch, methods=["GET"]),
            Route(f"{batches}/{{batch_id}}/cancel", cancel_batch, methods=["POST"]),
        ]
    return routes
