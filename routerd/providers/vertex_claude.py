"""Claude on Vertex AI (``vertex_ai/claude-*``): Anthropic's Messages format on Google's endpoint.

``POST .../publishers/anthropic/models/{model}:rawPredict`` (``:streamRawPredict`` for streams, whose
body is Anthropic's SSE event stream) with the deployment's OAuth token. The body is a Messages
request without ``model`` (the URL names it) and with ``anthropic_version`` set to
:data:`VERTEX_ANTHROPIC_VERSION`; beta features stay in the ``anthropic-beta`` header. Chat requests
are translated to that body (the Anthropic translation); ``/v1/messages`` requests go as the client
wrote them. Errors come in Anthropic's shape (from the model) or Google's (quota, credentials: from
Vertex itself); both are mapped.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

import orjson

from routerd.errors import AuthenticationError, OpenAIError
from routerd.http import HttpClient
from routerd.providers import anthropic_translate, google_translate
from routerd.providers.anthropic_wire import (
    ErrorMapper,
    chat_chunks,
    chat_payload,
    native_payload,
    post_message,
    stream_events,
)
from routerd.providers.base import JSON, Endpoint, UpstreamRequest, UpstreamResponse
from routerd.providers.errors import ErrorContext

if TYPE_CHECKING:
    from routerd.providers.vertex import VertexAdapter

#: the ``anthropic_version`` Vertex AI expects in the body
VERTEX_ANTHROPIC_VERSION = "vertex-2023-10-16"
RAW_PREDICT = "rawPredict"
STREAM_RAW_PREDICT = "streamRawPredict"
#: the publisher whose models speak Anthropic's format
PUBLISHER = "anthropic"


def is_claude(model: str) -> bool:
    """Whether a Vertex model id is one of Anthropic's (``claude-sonnet-4-5@20250929``, ...)."""
    return model.startswith("claude")


def vertex_body(payload: JSON) -> bytes:
    """A Messages request as Vertex takes it: no ``model``, Vertex's ``anthropic_version``."""
    payload.pop("model", None)
    # setdefault: a deployment's extra_body may pin another version
    payload.setdefault("anthropic_version", VERTEX_ANTHROPIC_VERSION)
    return orjson.dumps(payload)


def vertex_error(
    status: int | None, body: Any, headers: Mapping[str, str], errors: ErrorContext
) -> OpenAIError:
    """The routerd error for a Vertex answer: Anthropic's shape from the model, else Google's."""
    if isinstance(body, Mapping) and body.get("type") == "error":
        return anthropic_translate.error_from_body(status, body, headers, errors)
    return google_translate.error_from_body(status, body, headers, errors)


async def chat(adapter: VertexAdapter, http: HttpClient, request: UpstreamRequest) -> UpstreamResponse:
    """An OpenAI chat request, translated, answered in OpenAI's shape."""
    target = adapter.target(request.deployment)
    message = await _post(
        adapter, http, request, chat_payload(request, target.params, target.errors, stream=False)
    )
    return UpstreamResponse(anthropic_translate.to_openai_completion(message, created=int(time.time())))


def chat_stream(adapter: VertexAdapter, http: HttpClient, request: UpstreamRequest) -> AsyncIterator[JSON]:
    """A streamed OpenAI chat request, translated; yields OpenAI chunks."""
    target = adapter.target(request.deployment)
    payload = chat_payload(request, target.params, target.errors, stream=True)
    return chat_chunks(_stream(adapter, http, request, payload), request)


async def messages(adapter: VertexAdapter, http: HttpClient, request: UpstreamRequest) -> UpstreamResponse:
    """A ``/v1/messages`` request sent as it is; Anthropic's answer as it came."""
    target = adapter.target(request.deployment)
    return UpstreamResponse(
        await _post(adapter, http, request, native_payload(request, target.params, stream=False))
    )


def messages_stream(
    adapter: VertexAdapter, http: HttpClient, request: UpstreamRequest
) -> AsyncIterator[JSON]:
    """A streamed ``/v1/messages`` request sent as it is; yields Anthropic's events unchanged."""
    target = adapter.target(request.deployment)
    return _stream(adapter, http, request, native_payload(request, target.params, stream=True))


async def _post(adapter: VertexAdapter, http: HttpClient, request: UpstreamRequest, payload: JSON) -> JSON:
    endpoint = await _endpoint(adapter, request, RAW_PREDICT)
    error = _rejecting(adapter, request)
    message, _ = await post_message(http, endpoint, vertex_body(payload), request.timeout, error)
    return message


async def _stream(
    adapter: VertexAdapter, http: HttpClient, request: UpstreamRequest, payload: JSON
) -> AsyncGenerator[JSON, None]:
    endpoint = await _endpoint(adapter, request, STREAM_RAW_PREDICT)
    error = _rejecting(adapter, request)
    async for event in stream_events(http, endpoint, vertex_body(payload), request.timeout, error):
        yield event


async def _endpoint(adapter: VertexAdapter, request: UpstreamRequest, method: str) -> Endpoint:
    endpoint = await adapter.endpoint(request.deployment, method)
    # Forwarded headers (anthropic-beta: Vertex takes beta features as a header) add to ours and
    # never replace the credentials; the client's anthropic-version is the body's business here.
    forwarded = {k.lower(): v for k, v in request.extra_headers.items()}
    forwarded.pop("anthropic-version", None)
    return Endpoint(endpoint.url, {**forwarded, **endpoint.headers}, endpoint.errors)


def _rejecting(adapter: VertexAdapter, request: UpstreamRequest) -> ErrorMapper:
    """:func:`vertex_error`, dropping the cached token when Vertex refused it (it may be revoked)."""

    def error(status: int | None, body: Any, headers: Mapping[str, str], errors: ErrorContext) -> OpenAIError:
        exc = vertex_error(status, body, headers, errors)
        if isinstance(exc, AuthenticationError):
            adapter.auth_rejected(request.deployment)
        return exc

    return error
