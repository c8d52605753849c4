"""The ``anthropic/`` provider: OpenAI chat completions served by Anthropic's Messages API.

``POST {api_base}/v1/messages`` with ``x-api-key`` and ``anthropic-version`` headers. Translation
lives in :mod:`routerd.providers.anthropic_translate` (pure); this module does the HTTP and maps
upstream failures to :mod:`routerd.errors` at the boundary.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import orjson

from routerd.config.table import Deployment
from routerd.errors import APIError, AuthenticationError
from routerd.http import HttpClient
from routerd.providers import anthropic_translate as translate
from routerd.providers import cache_points
from routerd.providers.anthropic_stream import StreamTranslator
from routerd.providers.base import (
    CHAT,
    JSON,
    Adapter,
    BaseAdapter,
    UpstreamRequest,
    UpstreamResponse,
    register,
)
from routerd.providers.client_input import translating_client_input
from routerd.providers.errors import ErrorContext
from routerd.providers.openai_parts import DeploymentParams, keep_headers
from routerd.providers.sse import iter_data

DEFAULT_API_BASE = "https://api.anthropic.com"
API_KEY_ENV = "ANTHROPIC_API_KEY"
API_BASE_ENV = "ANTHROPIC_API_BASE"

# Anthropic's rate-limit headers under the names routerd's metrics read.
_KEPT_HEADERS = {
    "anthropic-ratelimit-requests-remaining": "x-ratelimit-remaining-requests",
    "anthropic-ratelimit-tokens-remaining": "x-ratelimit-remaining-tokens",
    "anthropic-ratelimit-input-tokens-remaining": "x-ratelimit-remaining-input-tokens",
    "anthropic-ratelimit-output-tokens-remaining": "x-ratelimit-remaining-output-tokens",
}


@dataclass(frozen=True, slots=True)
class AnthropicTarget:
    """What :meth:`AnthropicAdapter.prepare` precomputes for one deployment."""

    url: str
    # includes x-api-key: kept out of reprs
    headers: Mapping[str, str] = field(repr=False)
    has_key: bool
    default_max_tokens: int
    errors: ErrorContext = field(repr=False)
    params: DeploymentParams = field(repr=False)


def messages_url(api_base: str) -> str:
    """The Messages endpoint under ``api_base``, whether it was given with ``/v1`` or without."""
    base = api_base.rstrip("/")
    if base.endswith("/v1/messages"):
        return base
    if base.endswith("/v1"):
        return f"{base}/messages"
    return f"{base}/v1/messages"


class AnthropicAdapter(BaseAdapter):
    """Chat completions (plain and streamed) over Anthropic's Messages API."""

    name = translate.PROVIDER
    endpoints = frozenset({CHAT})
    #: client APIs sent natively (see routerd.routing.types.NativeCall)
    native_apis = frozenset({"messages"})

    def prepare(self, deployment: Deployment) -> AnthropicTarget:
        api_base = deployment.api_base or os.environ.get(API_BASE_ENV) or DEFAULT_API_BASE
        api_key = deployment.api_key or os.environ.get(API_KEY_ENV) or ""
        headers = {
            "content-type": "application/json",
            "accept": "application/json",
            "anthropic-version": deployment.api_version or translate.ANTHROPIC_VERSION,
        }
        params = DeploymentParams.from_extra(deployment.extra)
        headers.update(params.headers)
        if api_key:
            headers["x-api-key"] = api_key
        default_max = translate.DEFAULT_MAX_TOKENS
        if deployment.info.max_output_tokens:
            default_max = min(default_max, deployment.info.max_output_tokens)
        errors = ErrorContext(
            self.name, deployment.model, deployment.id, secrets=(api_key,) if api_key else ()
        )
        return AnthropicTarget(messages_url(api_base), headers, bool(api_key), default_max, errors, params)

    async def chat(self, http: HttpClient, request: UpstreamRequest) -> UpstreamResponse:
        target, content = self._build(request, stream=False)
        errors = target.errors
        try:
            response = await http.request(
                "POST",
                target.url,
                headers=self._headers(target, request),
                content=content,
                timeout=request.timeout,
            )
        except APIError as exc:
            errors.annotate(exc)
            raise
        if response.status >= 400:
            raise translate.error_from_body(
                response.status, _maybe_json(response.content), response.headers, errors
            )
        message = _maybe_json(response.content)
        if not isinstance(message, dict) or message.get("type") != "message":
            raise errors.bad_gateway(
                f"{self.name} answered a body that is not a message", upstream_status=200
            )
        body = translate.to_openai_completion(message, created=int(time.time()))
        return UpstreamResponse(body, keep_headers(response.headers, _KEPT_HEADERS))

    async def chat_stream(self, http: HttpClient, request: UpstreamRequest) -> AsyncIterator[JSON]:
        target, content = self._build(request, stream=True)
        errors = target.errors
        translator = StreamTranslator(
            created=int(time.time()),
            # always: the router's relay meters it and hides it from clients that did not ask
            include_usage=True,
            model=request.deployment.model,
            errors=errors,
        )
        events = 0
        try:
            async with http.stream(
                "POST",
                target.url,
                headers=self._headers(target, request),
                content=content,
                timeout=request.timeout,
            ) as response:
                if response.status >= 400:
                    raw = await response.aread()
                    raise translate.error_from_body(
                        response.status, _maybe_json(raw), response.headers, errors
                    )
                async for _event_name, data in iter_data(response.aiter_lines()):
                    event = _maybe_json(data)
                    if not isinstance(event, dict):
                        raise errors.bad_gateway(f"{self.name} sent a stream event that is not a JSON object")
                    events += 1
                    for chunk in translator.feed(event):
                        yield chunk
                    if translator.finished:
                        break
        except APIError as exc:
            errors.annotate(exc)
            raise
        if not translator.finished:
            # A body that ends without message_stop is a truncated answer, not a complete one.
            raise errors.stream_cut(events)

    # --- native: /v1/messages requests passed through as they are ---------------------------------

    async def messages(self, http: HttpClient, request: UpstreamRequest) -> UpstreamResponse:
        """A Messages API request sent as it is (unknown fields included); the answer as it came."""
        target, content = self._native(request, stream=False)
        errors = target.errors
        try:
            response = await http.request(
                "POST",
                target.url,
                headers=self._native_headers(target, request),
                content=content,
                timeout=request.timeout,
            )
        except APIError as exc:
            errors.annotate(exc)
            raise
        if response.status >= 400:
            raise translate.error_from_body(
                response.status, _maybe_json(response.content), response.headers, errors
            )
        message = _maybe_json(response.content)
        if not isinstance(message, dict) or message.get("type") != "message":
            raise errors.bad_gateway(
                f"{self.name} answered a body that is not a message", upstream_status=200
            )
        return UpstreamResponse(message, keep_headers(response.headers, _KEPT_HEADERS))

    async def messages_stream(self, http: HttpClient, request: UpstreamRequest) -> AsyncIterator[JSON]:
        """A streamed Messages API request sent as it is; yields Anthropic's event dicts unchanged."""
        target, content = self._native(request, stream=True)
        errors = target.errors
        events = 0
        finished = False
        try:
            async with http.stream(
                "POST",
                target.url,
                headers=self._native_headers(target, request),
                content=content,
                timeout=request.timeout,
            ) as response:
                if response.status >= 400:
                    raw = await response.aread()
                    raise translate.error_from_body(
                        response.status, _maybe_json(raw), response.headers, errors
                    )
                async for _event_name, data in iter_data(response.aiter_lines()):
                    event = _maybe_json(data)
                    if not isinstance(event, dict):
                        raise errors.bad_gateway(f"{self.name} sent a stream event that is not a JSON object")
                    if event.get("type") == "error":  # an in-band error: its type decides the class
                        raise translate.error_from_body(None, event, {}, errors)
                    events += 1
                    yield event
                    if event.get("type") == "message_stop":
                        finished = True
                        break
        except APIError as exc:
            errors.annotate(exc)
            raise
        if not finished:
            raise errors.stream_cut(events)

    def _native(self, request: UpstreamRequest, *, stream: bool) -> tuple[AnthropicTarget, bytes]:
        deployment = request.deployment
        target = deployment.prepared
        if not isinstance(target, AnthropicTarget):
            target = self.prepare(deployment)
        if not target.has_key:
            raise target.errors.make(
                AuthenticationError, f"no API key for {self.name}: set api_key or {API_KEY_ENV}"
            )
        body = {**request.body, "model": deployment.model}
        # the deployment's additional_drop_params and extra_body (both in Anthropic's terms here)
        for key in target.params.drop_keys.intersection(body):
            del body[key]
        target.params.upstream_body(body)
        if stream:
            body["stream"] = True
        else:
            body.pop("stream", None)
        return target, orjson.dumps(body)

    @staticmethod
    def _native_headers(target: AnthropicTarget, request: UpstreamRequest) -> Mapping[str, str]:
        # The client's anthropic-version / anthropic-beta win over the deployment's defaults; the
        # credential is always the deployment's.
        headers = {**target.headers, **{k.lower(): v for k, v in request.extra_headers.items()}}
        headers.pop("authorization", None)
        if "x-api-key" in target.headers:
            headers["x-api-key"] = target.headers["x-api-key"]
        return headers

    def _build(self, request: UpstreamRequest, *, stream: bool) -> tuple[AnthropicTarget, bytes]:
        deployment = request.deployment
        target = deployment.prepared
        if not isinstance(target, AnthropicTarget):
            target = self.prepare(deployment)
        if not target.has_key:
            raise target.errors.make(
                AuthenticationError, f"no API key for {self.name}: set api_key or {API_KEY_ENV}"
            )
        drop = request.drop_params or bool(deployment.drop_params)
        try:
            client_body = target.params.client_body(request.body)
            points = deployment.extra.get(cache_points.KEY)
            if points:
                client_body = cache_points.inject(client_body, points)
            body = translate.apply_param_policy(client_body, drop, deployment.model)
            with translating_client_input(self.name):
                payload = translate.to_anthropic_request(
                    body, deployment.model, default_max_tokens=target.default_max_tokens, stream=stream
                )
            target.params.upstream_body(payload)
        except APIError as exc:
            target.errors.annotate(exc)
            raise
        return target, orjson.dumps(payload)

    @staticmethod
    def _headers(target: AnthropicTarget, request: UpstreamRequest) -> Mapping[str, str]:
        if not request.extra_headers:
            return target.headers
        # Forwarded headers (anthropic-beta, say) add to ours, never replace them or the credential.
        return {**{k.lower(): v for k, v in request.extra_headers.items()}, **target.headers}


def _maybe_json(content: bytes) -> Any:
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return None  # an HTML page from a proxy, say: the status decides


# cast: BaseAdapter declares ``name`` as a ClassVar, the Adapter protocol as an instance attribute.
register(cast(Adapter, AnthropicAdapter()))
