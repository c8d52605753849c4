"""What the ``gemini/`` and ``vertex_ai/`` adapters share: the generateContent call, plain and streamed.

The two services speak the same JSON (:mod:`routerd.providers.google_translate`); they differ in
URLs and credentials, which subclasses supply through :meth:`GoogleAdapter.endpoint`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson

from routerd.config.table import Deployment
from routerd.errors import AuthenticationError, OpenAIError
from routerd.http import HttpClient
from routerd.providers import google_translate as translate
from routerd.providers.base import (
    JSON,
    BaseAdapter,
    Endpoint,
    ParamPolicy,
    UpstreamRequest,
    UpstreamResponse,
)
from routerd.providers.client_input import translating_client_input
from routerd.providers.errors import ErrorContext
from routerd.providers.google_stream import StreamTranslator
from routerd.providers.openai_parts import DeploymentParams
from routerd.providers.sse import iter_data

__all__ = ["GENERATE", "STREAM", "Endpoint", "GoogleAdapter", "json_or_none"]

GENERATE = "generateContent"
STREAM = "streamGenerateContent"


class GoogleAdapter(BaseAdapter):
    """Chat completions over ``generateContent`` / ``streamGenerateContent?alt=sse``."""

    policy: ParamPolicy

    async def endpoint(self, deployment: Deployment, method: str) -> Endpoint:
        """The URL and headers for ``method`` (``generateContent``, ``streamGenerateContent``, ...)."""
        raise NotImplementedError

    def deployment_params(self, deployment: Deployment) -> DeploymentParams:
        """The deployment's defaults, drops, extra body and headers (from its prepared target)."""
        raise NotImplementedError

    def auth_rejected(self, deployment: Deployment) -> None:
        """Called when the upstream refused the credentials (a token may have been revoked)."""

    async def chat(self, http: HttpClient, request: UpstreamRequest) -> UpstreamResponse:
        deployment = request.deployment
        payload = self._payload(request)
        endpoint = await self.endpoint(deployment, GENERATE)
        errors = endpoint.errors
        data = await self._post_json(http, request, endpoint.url, _merge(endpoint, request), payload, errors)
        body = translate.to_openai_completion(
            data, model=deployment.model, created=int(time.time()), errors=errors
        )
        return UpstreamResponse(body, {})

    async def _post_json(
        self,
        http: HttpClient,
        request: UpstreamRequest,
        url: str,
        headers: Mapping[str, str],
        payload: bytes,
        errors: ErrorContext,
    ) -> JSON:
        """POST ``payload`` and return the JSON object answered, or raise the translated error."""
        try:
            response = await http.request(
                "POST", url, headers=headers, content=payload, timeout=request.timeout
            )
        except OpenAIError as exc:
            errors.annotate(exc)
            raise
        if response.status >= 400:
            raise self._error(request.deployment, response.status, response.content, response.headers, errors)
        data = json_or_none(response.content)
        if not isinstance(data, dict):
            raise errors.bad_gateway(
                f"{self.name} answered a body that is not a JSON object", upstream_status=200
            )
        return data

    async def chat_stream(self, http: HttpClient, request: UpstreamRequest) -> AsyncIterator[JSON]:
        deployment = request.deployment
        payload = self._payload(request)
        endpoint = await self.endpoint(deployment, STREAM)
        errors = endpoint.errors
        translator = StreamTranslator(
            created=int(time.time()),
            model=deployment.model,
            errors=errors,
            # always: the router's relay meters it and hides it from clients that did not ask
            include_usage=True,
        )
        try:
            async with http.stream(
                "POST",
                endpoint.url,
                headers=_merge(endpoint, request),
                content=payload,
                timeout=request.timeout,
            ) as response:
                if response.status >= 400:
                    raw = await response.aread()
                    raise self._error(deployment, response.status, raw, response.headers, errors)
                async for _event, data in iter_data(response.aiter_lines()):
                    event = json_or_none(data)
                    if not isinstance(event, dict):
                        raise errors.bad_gateway(f"{self.name} sent a stream event that is not a JSON object")
                    for chunk in translator.feed(event):
                        yield chunk
            for chunk in translator.close():
                yield chunk
        except OpenAIError as exc:
            errors.annotate(exc)
            raise

    def _payload(self, request: UpstreamRequest) -> bytes:
        deployment = request.deployment
        drop = request.drop_params or bool(deployment.drop_params)
        params = self.deployment_params(deployment)
        try:
            body = translate.apply_param_policy(
                params.client_body(request.body), self.policy, drop, deployment.model
            )
            with translating_client_input(self.name):
                request_body = translate.to_gemini_request(body)
            return orjson.dumps(params.upstream_body(request_body))
        except OpenAIError as exc:
            _annotate(exc, self.name, deployment)
            raise

    def _error(
        self,
        deployment: Deployment,
        status: int,
        content: bytes,
        headers: Mapping[str, str],
        errors: ErrorContext,
    ) -> OpenAIError:
        error = translate.error_from_body(status, json_or_none(content), headers, errors)
        if isinstance(error, AuthenticationError):
            self.auth_rejected(deployment)
        return error


def _merge(endpoint: Endpoint, request: UpstreamRequest) -> Mapping[str, str]:
    if not request.extra_headers:
        return endpoint.headers
    headers = {**{k.lower(): v for k, v in request.extra_headers.items()}, **endpoint.headers}
    return headers  # ours last: forwarded headers never replace the credentials


def json_or_none(content: bytes) -> Any:
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return None


def _annotate(exc: OpenAIError, provider: str, deployment: Deployment) -> None:
    exc.llm_provider = exc.llm_provider or provider
    exc.model = exc.model or deployment.model
    exc.deployment_id = exc.deployment_id or deployment.id
