"""The OpenAI inference endpoints: chat completions, text completions, embeddings.

This is the hot path. Per request: read the body once (bounded), parse it once with orjson, check
the key and the field types, hand the dict to the router, and write the router's dict back with
orjson. Streams are relayed chunk by chunk as they arrive; nothing is buffered.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import anyio
import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse

from routerd.cost import request_cost, response_cost_header
from routerd.errors import APIError, BadRequestError, RequestTooLargeError
from routerd.events import RequestFinished, RequestStarted
from routerd.providers.base import CHAT, COMPLETIONS, EMBEDDINGS
from routerd.routing.types import CallResult, RoutingInfo
from routerd.server.auth import require_key
from routerd.server.errors import error_response, sse_error_event
from routerd.server.state import AppState
from routerd.server.validation import validate_body

_SSE_DONE = b"data: [DONE]\n\n"


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than ``limit`` bytes without reading them all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestTooLargeError(f"request body of {declared} bytes exceeds the {limit}-byte limit")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestTooLargeError(f"request body exceeds the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(raw: bytes) -> Any:
    if not raw:
        raise BadRequestError("request body is empty; send a JSON object", code="invalid_request_body")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(f"request body is not valid JSON: {exc}", code="invalid_json") from None


def routing_headers(request_id: str, info: RoutingInfo | None) -> dict[str, str]:
    headers = {"x-request-id": request_id}
    if info is not None:
        if info.deployment_id:
            headers["x-routerd-model-id"] = info.deployment_id
        headers["x-routerd-attempts"] = str(info.attempts)
        headers["x-routerd-attempted-retries"] = str(info.retries)
        headers["x-routerd-attempted-fallbacks"] = str(info.fallbacks)
    return headers


def _usage(body: dict[str, Any] | None) -> tuple[int, int]:
    usage = body.get("usage") if body else None
    if not isinstance(usage, dict):
        return 0, 0
    return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)


class _RequestLog:
    """Collects what the RequestFinished event reports; emitted exactly once per request."""

    __slots__ = ("endpoint", "model", "request_id", "started", "state", "stream")

    def __init__(self, state: AppState, endpoint: str, request_id: str, started: float) -> None:
        self.state = state
        self.endpoint = endpoint
        self.request_id = request_id
        self.started = started
        self.model = ""
        self.stream = False

    def finish(
        self,
        status: int,
        info: RoutingInfo | None,
        tokens: tuple[int, int] = (0, 0),
        error: str | None = None,
        cost: float | None = None,
    ) -> None:
        info = info or RoutingInfo()
        self.state.events.emit(
            RequestFinished(
                request_id=self.request_id,
                endpoint=self.endpoint,
                model=self.model,
                group=info.group,
                deployment_id=info.deployment_id,
                provider=info.provider,
                status=status,
                stream=self.stream,
                attempts=info.attempts,
                retries=info.retries,
                fallbacks=info.fallbacks,
                latency=time.perf_counter() - self.started,
                upstream_latency=info.upstream_latency,
                ttft=info.ttft,
                prompt_tokens=tokens[0],
                completion_tokens=tokens[1],
                cost=cost,
                error=error,
            )
        )


async def handle(request: Request, endpoint: str) -> Response:
    """Serve one inference request for ``endpoint`` (chat, completions or embeddings)."""
    started = time.perf_counter()
    state: AppState = request.app.state.routerd
    request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
    log = _RequestLog(state, endpoint, request_id, started)
    state.events.emit(RequestStarted(request_id, endpoint))
    try:
        require_key(request, state.master_key)
        body = validate_body(endpoint, parse_json(await read_body(request, state.max_body_bytes)))
        log.model = body["model"]
        log.stream = bool(body.get("stream"))
        timeout = body.get("timeout")
        result = await state.router.call(
            endpoint, body, request_id=request_id, timeout=float(timeout) if timeout is not None else None
        )
    except ClientDisconnect:
        log.finish(499, None, error="ClientDisconnect")
        return Response(status_code=499)
    except Exception as exc:
        info: RoutingInfo | None = getattr(exc, "routing", None)
        status = exc.status_code if isinstance(exc, APIError) else 500
        log.finish(status, info, error=type(exc).__name__)
        return error_response(exc, routing_headers(request_id, info))

    headers = routing_headers(request_id, result.info)
    if result.stream is not None:
        return StreamingResponse(
            _relay(result, log),
            media_type="text/event-stream",
            headers={**headers, "cache-control": "no-cache"},
        )
    response_body = result.response.body if result.response is not None else {}
    tokens = _usage(response_body)
    cost = request_cost(result.deployment, *tokens, response_model=response_body.get("model"))
    log.finish(200, result.info, tokens, cost=cost)
    headers.update(response_cost_header(cost))
    return Response(orjson.dumps(response_body), media_type="application/json", headers=headers)


async def _relay(result: CallResult, log: _RequestLog) -> AsyncIterator[bytes]:
    """Relay chunks as SSE; an error after the first byte becomes an in-band error event."""
    assert result.stream is not None
    stream = result.stream
    tokens = (0, 0)
    status = 200
    error: str | None = None
    cost: float | None = None
    try:
        async for chunk in stream:
            if chunk.get("usage"):
                tokens = _usage(chunk)
            yield b"data: " + orjson.dumps(chunk) + b"\n\n"
        yield _SSE_DONE
    except Exception as exc:
        # Headers (200) are gone already: the only honest signal left is an error event, then closing
        # the stream without [DONE], so no client mistakes a truncated answer for a complete one.
        status = exc.status_code if isinstance(exc, APIError) else 500
        error = type(exc).__name__
        yield sse_error_event(exc)
    except BaseException:
        status, error = 499, "ClientDisconnect"  # cancelled: the client went away
        raise
    finally:
        # Closing the router's stream closes the upstream connection; shielded because this runs while
        # the task is being cancelled when the client disconnects.
        with anyio.CancelScope(shield=True):
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
        if tokens != (0, 0):
            cost = request_cost(result.deployment, *tokens)
        log.finish(status, result.info, tokens, error=error, cost=cost)


async def chat_completions(request: Request) -> Response:
    return await handle(request, CHAT)


async def completions(request: Request) -> Response:
    return await handle(request, COMPLETIONS)


async def embeddings(request: Request) -> Response:
    return await handle(request, EMBEDDINGS)
