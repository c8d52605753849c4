"""OpenAI's fine-tuning jobs API: ``/v1/fine_tuning/jobs`` create, list, retrieve, cancel, events, checkpoints.

Answers are in OpenAI's ``fine_tuning.job`` shapes whatever the provider. The provider comes from
``custom_llm_provider`` (JSON body for POSTs, query string, or ``custom-llm-provider`` header; default
``openai``) and must have a ``finetune_settings`` entry.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from routerd.finetune.serving import PROVIDER_FIELD, ManagementCall, handle
from routerd.finetune.types import FINE_TUNING
from routerd.finetune.validation import job_request, page_query
from routerd.server.inference import parse_json, read_body


async def _optional_body(request: Request, limit: int) -> dict[str, Any]:
    """A POST body that may be absent (cancel): ``{}`` when empty, else a JSON object."""
    raw = await read_body(request, limit)
    if not raw.strip():
        return {}
    body = parse_json(raw)
    return body if isinstance(body, dict) else {}


async def create_job(request: Request) -> Response:
    async def work(call: ManagementCall) -> Any:
        body = parse_json(await read_body(request, call.state.max_body_bytes))
        provider = call.choose_provider(body.get(PROVIDER_FIELD) if isinstance(body, dict) else None)
        job = job_request(body)
        return await call.client(provider).create_job(job)

    return await handle(request, FINE_TUNING, "create", work)


async def list_jobs(request: Request) -> Response:
    async def work(call: ManagementCall) -> Any:
        page = page_query(request.query_params)
        return await call.client(call.choose_provider()).list_jobs(page)

    return await handle(request, FINE_TUNING, "list", work)


async def retrieve_job(request: Request) -> Response:
    async def work(call: ManagementCall) -> Any:
        return await call.client(call.choose_provider()).retrieve_job(request.path_params["job_id"])

    return await handle(request, FINE_TUNING, "retrieve", work)


async def cancel_job(request: Request) -> Response:
    async def work(call: ManagementCall) -> Any:
        body = await _optional_body(request, call.state.max_body_bytes)
        provider = call.choose_provider(body.get(PROVIDER_FIELD))
        return await call.client(provider).cancel_job(request.path_params["job_id"])

    return await handle(request, FINE_TUNING, "cancel", work)


async def list_events(request: Request) -> Response:
    async def work(call: ManagementCall) -> Any:
        page = page_query(request.query_params)
        client = call.client(call.choose_provider())
        return await client.list_events(request.path_params["job_id"], page)

    return await handle(request, FINE_TUNING, "events", work)


async def list_checkpoints(request: Request) -> Response:
    async def work(call: ManagementCall) -> Any:
        page = page_query(request.query_params)
        client = call.client(call.choose_provider())
        return await client.list_checkpoints(request.path_params["job_id"], page)

    return await handle(request, FINE_TUNING, "checkpoints", work)


def fine_tuning_routes() -> list[BaseRoute]:
    """The fine-tuning jobs routes, each with and without the ``/v1`` prefix."""
    routes: list[BaseRoute] = []
    for prefix in ("/v1", ""):
        jobs = f"{prefix}/fine_tuning/jobs"
        routes += [
            Route(jobs, create_job, methods=["POST"]),
            Route(jobs, list_jobs, methods=["GET"]),
            Route(f"{jobs}/{{job_id}}", retrieve_job, methods=["GET"]),
            Route(f"{jobs}/{{job_id}}/cancel", cancel_job, methods=["POST"]),
            Route(f"{jobs}/{{job_id}}/events", list_events, methods=["GET"]),
            Route(f"{jobs}/{{job_id}}/checkpoints", list_checkpoints, methods=["GET"]),
        ]
    return routes
