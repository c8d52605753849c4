"""One Messages API call, shared by every platform that serves Anthropic's Messages format.

Anthropic's own API (:mod:`routerd.providers.anthropic`), Claude on Vertex AI
(:mod:`routerd.providers.vertex_claude`) and Claude on Bedrock (:mod:`routerd.providers.bedrock_claude`)
send the same request body and answer the same ``message`` / event stream; they differ in URL,
credentials, a few body fields and the shape of their errors. This module holds what they share:

* the request bodies: a chat request translated (:func:`chat_payload`) or a Messages request as the
  client sent it (:func:`native_payload`), each with the deployment's params applied;
* the HTTP call over SSE (:func:`post_message`, :func:`stream_events`), for the platforms whose
  stream is SSE (Anthropic, Vertex), with the error mapping given by the caller;
* the checks every answer gets (:func:`checked_message`, :func:`checked_events`): a body that is not
  a message, an in-band ``error`` event, a stream that ends without ``message_stop``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from contextlib import aclosing
from typing import Any

import orjson

from routerd.config.table import Deployment
from routerd.errors import OpenAIError
from routerd.http import HttpClient
from routerd.providers import anthropic_translate as translate
from routerd.providers import cache_points
from routerd.providers.anthropic_stream import StreamTranslator
from routerd.providers.base import JSON, Endpoint, UpstreamRequest
from routerd.providers.client_input import translating_client_input
from routerd.providers.errors import ErrorContext
from routerd.providers.openai_parts import DeploymentParams
from routerd.providers.sse import iter_data

#: (HTTP status or None for an in-band error, parsed body, response headers, context) -> the error
ErrorMapper = Callable[[int | None, Any, Mapping[str, str], ErrorContext], OpenAIError]

#: the header that names beta features; Vertex takes it as a header, Bedrock in the body
BETA_HEADER = "anthropic-beta"


def default_max_tokens(deployment: Deployment) -> int:
    """``max_tokens`` for a chat request that gives none (Anthropic requires it)."""
    if deployment.info.max_output_tokens:
        return min(translate.DEFAULT_MAX_TOKENS, deployment.info.max_output_tokens)
    return translate.DEFAULT_MAX_TOKENS


def chat_payload(
    request: UpstreamRequest, params: DeploymentParams, errors: ErrorContext, *, stream: bool
) -> JSON:
    """An OpenAI chat request as a Messages request for ``request.deployment`` (``model`` included)."""
    deployment = request.deployment
    drop = request.drop_params or bool(deployment.drop_params)
    try:
        client_body = params.client_body(request.body)
        points = deployment.extra.get(cache_points.KEY)
        if points:
            client_body = cache_points.inject(client_body, points)
        body = translate.apply_param_policy(client_body, drop, deployment.model)
        with translating_client_input(errors.provider):
            payload = translate.to_anthropic_request(
                body,
                deployment.model,
                default_max_tokens=default_max_tokens(deployment),
                stream=stream,
                modify_params=bool(deployment.extra.get("modify_params")),
            )
        return params.upstream_body(payload)
    except OpenAIError as exc:
        raise errors.annotate(exc) from None


def native_payload(request: UpstreamRequest, params: DeploymentParams, *, stream: bool) -> JSON:
    """A Messages request as the client sent it (unknown fields included), ``model`` set to the
    deployment's; the deployment's ``additional_drop_params`` and ``extra_body`` applied."""
    body = {**request.body, "model": request.deployment.model}
    if params.drop_keys:
        for key in params.drop_keys.intersection(body):
            del body[key]
    params.upstream_body(body)
    if stream:
        body["stream"] = True
    else:
        body.pop("stream", None)
    return body


def beta_features(headers: Mapping[str, str]) -> list[str]:
    """The beta features an ``anthropic-beta`` header names (comma-separated), in order."""
    value = next((v for k, v in headers.items() if k.lower() == BETA_HEADER), "")
    return [name.strip() for name in value.split(",") if name.strip()]


async def post_message(
    http: HttpClient,
    endpoint: Endpoint,
    content: bytes,
    timeout: float,
    error: ErrorMapper = translate.error_from_body,
) -> tuple[JSON, Mapping[str, str]]:
    """POST a Messages body; the ``message`` answered and the response headers, or the error
    ``error`` reads from a failed answer (Anthropic's shape by default)."""
    errors = endpoint.errors
    try:
        response = await http.request(
            "POST", endpoint.url, headers=endpoint.headers, content=content, timeout=timeout
        )
    except OpenAIError as exc:
        raise errors.annotate(exc) from None
    if response.status >= 400:
        raise error(response.status, json_or_none(response.content), response.headers, errors)
    return checked_message(json_or_none(response.content), errors), response.headers


async def stream_events(
    http: HttpClient,
    endpoint: Endpoint,
    content: bytes,
    timeout: float,
    error: ErrorMapper = translate.error_from_body,
) -> AsyncGenerator[JSON, None]:
    """POST a streamed Messages body; yields Anthropic's event dicts as they arrive (SSE). Failures
    (the HTTP status or an in-band ``error`` event) are read by ``error``."""
    errors = endpoint.errors
    try:
        async with http.stream(
            "POST", endpoint.url, headers=endpoint.headers, content=content, timeout=timeout
        ) as response:
            if response.status >= 400:
                raw = await response.aread()
                raise error(response.status, json_or_none(raw), response.headers, errors)
            source = (json_or_none(data) async for _name, data in iter_data(response.aiter_lines()))
            async for event in checked_events(source, errors, error):
                yield event
    except OpenAIError as exc:
        raise errors.annotate(exc) from None


async def chat_chunks(events: AsyncGenerator[JSON, None], request: UpstreamRequest) -> AsyncIterator[JSON]:
    """OpenAI chat chunks for a stream of Anthropic events (any platform's); closing it closes
    ``events`` (and so the upstream call) at once."""
    translator = StreamTranslator(
        created=int(time.time()),
        # always: the router's relay meters it and hides it from clients that did not ask
        include_usage=True,
        model=request.deployment.model,
    )
    async with aclosing(events):
        async for event in events:
            for chunk in translator.feed(event):
                yield chunk


def checked_message(body: Any, errors: ErrorContext) -> JSON:
    """``body`` if it is a Messages answer, else a 502 naming the provider."""
    if not isinstance(body, dict) or body.get("type") != "message":
        raise errors.bad_gateway(
            f"{errors.provider} answered a body that is not a message", upstream_status=200
        )
    return body


async def checked_events(
    source: AsyncGenerator[Any, None], errors: ErrorContext, error: ErrorMapper = translate.error_from_body
) -> AsyncGenerator[JSON, None]:
    """Anthropic's events from ``source``, up to and including ``message_stop``.

    An in-band ``error`` event is raised (its type decides the class); a stream that ends before
    ``message_stop`` is a truncated answer, not a complete one, and raises a stream cut. The source
    is closed when this ends or is closed.
    """
    events = 0
    async with aclosing(source):  # closing this closes the source at once, not when collected
        async for event in source:
            if not isinstance(event, dict):
                raise errors.bad_gateway(f"{errors.provider} sent a stream event that is not a JSON object")
            if event.get("type") == "error":
                raise error(None, event, {}, errors)
            events += 1
            yield event
            if event.get("type") == "message_stop":
                return
    raise errors.stream_cut(events)


def json_or_none(content: bytes) -> Any:
    """``content`` parsed, or None when it is not JSON (an HTML page from a proxy: the status decides)."""
    try:
        return orjson.loads(content) if content else None
    except orjson.JSONDecodeError:
        return None
