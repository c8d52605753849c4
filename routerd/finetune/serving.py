"""What every files / fine-tuning endpoint does around its operation.

Per request: check the master key, find the provider the client asked for (form/body field, query
string, ``custom-llm-provider`` header; default ``openai``), look up its settings entry in the *current*
routing table (so a reload takes effect on the next request), build the provider client, run the
operation, render errors in OpenAI's shape, and emit one :class:`routerd.events.ManagementRequest`.

These endpoints are not on the hot path (uploads, job polls): each request gets its own upstream HTTP
client (:func:`routerd.http.default_client`: never follows redirects, httpx behind a proxy), closed when it ends, so nothing needs a lifecycle of its own. Tests (or an embedding
application) may set ``app.state.routerd_management_http`` to an :class:`HttpClient` to use instead.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from routerd.errors import OpenAIError
from routerd.events import ManagementRequest
from routerd.finetune.providers import make_client, normalize_provider, settings_for
from routerd.finetune.types import FILES, OPENAI, ProviderClient
from routerd.http import HttpClient, default_client
from routerd.server.auth import require_key
from routerd.server.errors import error_response
from routerd.server.state import AppState

PROVIDER_FIELD = "custom_llm_provider"
PROVIDER_HEADER = "custom-llm-provider"


class ManagementCall:
    """One request to the files or fine-tuning API, from authentication to the event it emits."""

    def __init__(self, request: Request, api: str, operation: str) -> None:
        self.request = request
        self.api = api
        self.operation = operation
        self.state: AppState = request.app.state.routerd
        self.request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        self.provider = ""
        self._http: HttpClient | None = None
        self._owned_http = False

    def choose_provider(self, from_body: Any = None) -> str:
        """The provider named in the body/form, else the query, else the header, else openai."""
        raw = from_body
        if raw is None or raw == "":
            raw = self.request.query_params.get(PROVIDER_FIELD) or self.request.headers.get(PROVIDER_HEADER)
        self.provider = normalize_provider(raw or OPENAI)
        return self.provider

    def client(self, provider: str) -> ProviderClient:
        """The provider's client, configured from the table this request runs with."""
        table = self.state.table
        entries = table.files_settings if self.api == FILES else table.finetune_settings
        settings = settings_for(entries, provider, self.api)
        return make_client(settings, self._http_client())

    def http(self) -> HttpClient:
        """The request's upstream HTTP client (for clients built outside :meth:`client`)."""
        return self._http_client()

    def _http_client(self) -> HttpClient:
        if self._http is None:
            injected = getattr(self.request.app.state, "routerd_management_http", None)
            if injected is not None:
                self._http = injected
            else:
                self._http, self._owned_http = default_client(self.state.settings), True
        return self._http

    async def close(self) -> None:
        if self._http is not None and self._owned_http:
            await self._http.aclose()


async def handle(
    request: Request,
    api: str,
    operation: str,
    work: Callable[[ManagementCall], Awaitable[Any]],
    *,
    keyed: bool = False,
) -> Response:
    """Run ``work``; a dict result is answered as JSON, a :class:`Response` as is. The master key is
    required, unless ``keyed``: then ``work`` identifies the caller itself (client keys are let in)."""
    started = time.perf_counter()
    call = ManagementCall(request, api, operation)
    status, error = 200, None
    try:
        if not keyed:
            require_key(request.headers, call.state.master_key)
        result = await work(call)
        response = result if isinstance(result, Response) else json_response(result)
        response.headers["x-request-id"] = call.request_id
        status = response.status_code
        return response
    except ClientDisconnect:
        status, error = 499, "ClientDisconnect"
        return Response(status_code=499)
    except Exception as exc:
        status = exc.status_code if isinstance(exc, OpenAIError) else 500
        error = type(exc).__name__
        return error_response(exc, {"x-request-id": call.request_id})
    finally:
        await call.close()
        call.state.events.emit(
            ManagementRequest(
                request_id=call.request_id,
                api=api,
                operation=operation,
                provider=call.provider,
                status=status,
                latency=time.perf_counter() - started,
                error=error,
            )
        )


def json_response(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")
