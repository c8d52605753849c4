"""The ``cohere/`` provider (alias ``cohere_chat/``): Cohere's v2 chat, embed and rerank APIs.

``POST {api_base}/v2/chat`` (plain and SSE-streamed), ``/v2/embed`` and ``/v2/rerank`` with
``Authorization: Bearer <key>``; the key is ``api_key`` or ``COHERE_API_KEY``, the base
``https://api.cohere.com`` unless ``api_base`` / ``COHERE_API_BASE`` says otherwise. Translation is
pure (:mod:`routerd.providers.cohere_translate`); errors are mapped here, at the boundary.

:meth:`CohereAdapter.rerank` takes a LiteLLM-style rerank body (``query``, ``documents``, ``top_n``)
and returns Cohere's answer shape (``results`` of ``index`` + ``relevance_score``), which is what a
``/v1/rerank`` endpoint serves.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import orjson

from routerd.config.table import Deployment
from routerd.errors import AuthenticationError, OpenAIError
from routerd.http import HttpClient, HttpResponse
from routerd.providers import cohere_translate as translate
from routerd.providers.base import (
    CHAT,
    EMBEDDINGS,
    JSON,
    Adapter,
    BaseAdapter,
    UpstreamRequest,
    UpstreamResponse,
    register,
)
from routerd.providers.errors import ErrorContext
from routerd.providers.openai_parts import DeploymentParams
from routerd.providers.shapes import embedding_list
from routerd.providers.sse import iter_data

__all__ = ["DEFAULT_API_BASE", "CohereAdapter", "CohereTarget"]

DEFAULT_API_BASE = "https://api.cohere.com"
API_KEY_ENV = "COHERE_API_KEY"
API_BASE_ENV = "COHERE_API_BASE"


@dataclass(frozen=True, slots=True)
class CohereTarget:
    """What :meth:`CohereAdapter.prepare` precomputes for one deployment."""

    base: str
    headers: Mapping[str, str] = field(repr=False)
    has_key: bool
    input_type: str
    errors: ErrorContext = field(repr=False)
    params: DeploymentParams = field(repr=False)


class CohereAdapter(BaseAdapter):
    """Chat (plain and streamed), embeddings and rerank over Cohere's v2 API."""

    name = translate.PROVIDER
    endpoints = frozenset({CHAT, EMBEDDINGS})

    def prepare(self, deployment: Deployment) -> CohereTarget:
        base = (deployment.api_base or os.environ.get(API_BASE_ENV) or DEFAULT_API_BASE).rstrip("/")
        if base.endswith("/v2"):
            base = base[: -len("/v2")]
        key = deployment.api_key or os.environ.get(API_KEY_ENV) or ""
        params = DeploymentParams.from_extra(deployment.extra)
        headers = {**params.headers, "content-type": "application/json", "accept": "application/json"}
        if key:
            headers["authorization"] = f"Bearer {key}"
        input_type = deployment.extra.get("input_type")
        errors = ErrorContext(self.name, deployment.model, deployment.id, secrets=(key,) if key else ())
        default_input = input_type if isinstance(input_type, str) else "search_document"
        return CohereTarget(base, headers, bool(key), default_input, errors, params)

    def _target(self, deployment: Deployment) -> CohereTarget:
        target = deployment.prepared
        target = target if isinstance(target, CohereTarget) else self.prepare(deployment)
        if not target.has_key:
            raise target.errors.make(
                AuthenticationError, f"no API key for cohere: set api_key or {API_KEY_ENV}"
            )
        return target

    async def _post(
        self, http: HttpClient, target: CohereTarget, path: str, payload: JSON, timeout: float
    ) -> Any:
        try:
            response = await http.request(
                "POST",
                f"{target.base}{path}",
                headers=target.headers,
                content=orjson.dumps(payload),
                timeout=timeout,
            )
        except OpenAIError as exc:
            raise target.errors.annotate(exc) from None
        return _answer(target, response)

    def _chat_body(self, target: CohereTarget, request: UpstreamRequest, *, stream: bool) -> JSON:
        drop = request.drop_params or bool(request.deployment.drop_params)
        try:
            body = translate.POLICY.apply(
                target.params.client_body(request.body), drop, request.deployment.model
            )
            translated = translate.to_cohere_chat(body, request.deployment.model, stream=stream)
            return target.params.upstream_body(translated)
        except OpenAIError as exc:
            raise target.errors.annotate(exc) from None

    async def chat(self, http: HttpClient, request: UpstreamRequest) -> UpstreamResponse:
        target = self._target(request.deployment)
        payload = self._chat_body(target, request, stream=False)
        answer = await self._post(http, target, "/v2/chat", payload, request.timeout)
        if not isinstance(answer, dict) or "message" not in answer:
            raise target.errors.bad_gateway(
                "cohere answered a body that is not a chat response", upstream_status=200
            )
        body = translate.to_openai_completion(
            answer, model=request.deployment.model, created=int(time.time())
        )
        return UpstreamResponse(body)

    async def chat_stream(self, http: HttpClient, request: UpstreamRequest) -> AsyncIterator[JSON]:
        target = self._target(request.deployment)
        errors = target.errors
        content = orjson.dumps(self._chat_body(target, request, stream=True))
        # always: the router's relay meters it and hides it from clients that did not ask (include_usage)
        translator = translate.StreamTranslator(
            model=request.deployment.model,
            created=int(time.time()),
            include_usage=True,
        )
        headers = {**target.headers, "accept": "text/event-stream"}
        events = 0
        try:
            async with http.stream(
                "POST", f"{target.base}/v2/chat", headers=headers, content=content, timeout=request.timeout
            ) as response:
                if response.status >= 400:
                    raise errors.from_response(response.status, response.headers, await response.aread())
                async for _name, data in iter_data(response.aiter_lines()):
                    event = _maybe_json(data)
                    if not isinstance(event, dict):
                        raise errors.bad_gateway("cohere sent a stream event that is not a JSON object")
                    if event.get("type") == "error" or (event.get("message") and "type" not in event):
                        raise errors.from_payload(event, status=500)
                    events += 1
                    for chunk in translator.feed(event):
                        yield chunk
                    if translator.finished:
                        break
        except OpenAIError as exc:
            raise errors.annotate(exc) from None
        if not translator.finished:
            raise errors.stream_cut(events)

    async def embedding(self, http: HttpClient, request: UpstreamRequest) -> UpstreamResponse:
        target = self._target(request.deployment)
        try:
            payload = translate.to_cohere_embed(request.body, request.deployment.model, target.input_type)
        except OpenAIError as exc:
            raise target.errors.annotate(exc) from None
        answer = await self._post(http, target, "/v2/embed", payload, request.timeout)
        embeddings = answer.get("embeddings") if isinstance(answer, dict) else None
        vectors = embeddings.get("float") if isinstance(embeddings, dict) else None
        if not isinstance(vectors, list) or len(vectors) != len(payload["texts"]):
            raise target.errors.bad_gateway(
                "cohere answered without one embedding per text", upstream_status=200
            )
        billed = ((answer.get("meta") or {}).get("billed_units") or {}).get("input_tokens") or 0
        body = embedding_list(
            model=request.deployment.model,
            vectors=vectors,
            prompt_tokens=int(billed),
            encoding_format=request.body.get("encoding_format"),
        )
        return UpstreamResponse(body)

    async def rerank(self, http: HttpClient, request: UpstreamRequest) -> UpstreamResponse:
        """Rank ``documents`` against ``query``; the answer keeps Cohere's shape (``results``, ``meta``)."""
        target = self._target(request.deployment)
        try:
            payload = translate.to_cohere_rerank(request.body, request.deployment.model)
        except OpenAIError as exc:
            raise target.errors.annotate(exc) from None
        answer = await self._post(http, target, "/v2/rerank", payload, request.timeout)
        if not isinstance(answer, dict) or not isinstance(answer.get("results"), list):
            raise target.errors.bad_gateway(
                "cohere answered a rerank body without results", upstream_status=200
            )
        return UpstreamResponse(answer)


def _answer(target: CohereTarget, response: HttpResponse) -> Any:
    if response.status >= 400:
        raise target.errors.from_response(response.status, response.headers, response.content)
    return _maybe_json(response.content)


def _maybe_json(content: bytes) -> Any:
    try:
        return orjson.loads(content) if content else None
    except orjson.JSONDecodeError:
        return None


register(cast(Adapter, CohereAdapter()), "cohere_chat")
