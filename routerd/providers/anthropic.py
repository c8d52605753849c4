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
from typing import cast

import orjson

from routerd.config.table import Deployment
from routerd.errors import AuthenticationError
from routerd.http import HttpClient
from routerd.providers import anthropic_translate as translate
from routerd.providers.anthropic_wire import (
    chat_chunks,
    chat_payload,
    native_payload,
    post_message,
    stream_events,
)
from routerd.providers.base import (
    CHAT,
    JSON,
    Adapter,
    BaseAdapter,
    Endpoint,
    UpstreamRequest,
    UpstreamResponse,
    register,
)
from routerd.providers.errors import ErrorContext
from routerd.providers.openai_parts import DeploymentParams, keep_headers

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
        errors = ErrorContext(
            self.name, deployment.model, deployment.id, secrets=(api_key,) if api_key else ()
        )
        return AnthropicTarget(messages_url(api_base), headers, bool(api_key), errors, params)

    def endpoint(self, request: UpstreamRequest, *, native: bool) -> tuple[AnthropicTarget, Endpoint]:
        """The deployment's target and where its Messages calls go, with the headers they carry."""
        deployment = request.deployment
        target = deployment.prepared
        if not isinstance(target, AnthropicTarget):
            target = self.prepare(deployment)
        if not target.has_key:
            raise target.errors.make(
                AuthenticationError, f"no API key for {self.name}: set api_key or {API_KEY_ENV}"
            )
        headers = _native_headers(target, request) if native else _chat_headers(target, request)
        return target, Endpoint(target.url, headers, target.errors)

    async def chat(self, http: HttpClient, request: UpstreamRequest) -> UpstreamResponse:
        target, endpoint = self.endpoint(request, native=False)
        payload = chat_payload(request, target.params, target.errors, stream=False)
        message, headers = await post_message(http, endpoint, orjson.dumps(payload), request.timeout)
        body = translate.to_openai_completion(message, created=int(time.time()))
        return UpstreamResponse(body, keep_headers(headers, _KEPT_HEADERS))

    def chat_stream(self, http: HttpClient, request: UpstreamRequest) -> AsyncIterator[JSON]:
        target, endpoint = self.endpoint(request, native=False)
        content = orjson.dumps(chat_payload(request, target.params, target.errors, stream=True))
        return chat_chunks(stream_events(http, endpoint, content, request.timeout), request)

    # --- native: /v1/messages requests passed through as they are ---------------------------------

    async def messages(self, http: HttpClient, request: UpstreamRequest) -> UpstreamResponse:
        """A Messages API request sent as it is (unknown fields included); the answer as it came."""
        target, endpoint = self.endpoint(request, native=True)
        content = orjson.dumps(native_payload(request, target.params, stream=False))
        message, headers = await post_message(http, endpoint, content, request.timeout)
        return UpstreamResponse(message, keep_headers(headers, _KEPT_HEADERS))

    def messages_stream(self, http: HttpClient, request: UpstreamRequest) -> AsyncIterator[JSON]:
        """A streamed Messages API request sent as it is; yields Anthropic's event dicts unchanged."""
        target, endpoint = self.endpoint(request, native=True)
        content = orjson.dumps(native_payload(request, target.params, stream=True))
        return stream_events(http, endpoint, content, request.timeout)


def _native_headers(target: AnthropicTarget, request: UpstreamRequest) -> Mapping[str, str]:
    # The client's anthropic-version / anthropic-beta win over the deployment's defaults; the
    # credential is always the deployment's.
    headers = dict(target.headers)
    for name, value in request.extra_headers.items():
        headers[name.lower()] = value
    headers.pop("authorization", None)
    if "x-api-key" in target.headers:
        headers["x-api-key"] = target.headers["x-api-key"]
    return headers


def _chat_headers(target: AnthropicTarget, request: UpstreamRequest) -> Mapping[str, str]:
    if not request.extra_headers:
        return target.headers
    # Forwarded headers (anthropic-beta, say) add to ours, never replace them or the credential.
    return {**{k.lower(): v for k, v in request.extra_headers.items()}, **target.headers}


# cast: BaseAdapter declares ``name`` as a ClassVar, the Adapter protocol as an instance attribute.
register(cast(Adapter, AnthropicAdapter()))
