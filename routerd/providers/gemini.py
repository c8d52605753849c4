"""The ``gemini/`` provider: Google's Gemini API (generativelanguage.googleapis.com) with an API key.

Chat: ``POST https://generativelanguage.googleapis.com/v1beta/models/{model}:generateContent`` (or
``{api_base}/models/...`` for a configured ``api_base``, as LiteLLM calls it) and
``:streamGenerateContent?alt=sse``. Embeddings: ``:batchEmbedContents``. The key travels in the
``x-goog-api-key`` header, never in the URL, where proxies and access logs would record it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import cast

import orjson

from routerd.config.table import Deployment
from routerd.errors import AuthenticationError, BadRequestError, OpenAIError
from routerd.http import HttpClient
from routerd.providers import google_translate as translate
from routerd.providers import shapes
from routerd.providers.base import (
    CHAT,
    EMBEDDINGS,
    Adapter,
    UpstreamRequest,
    UpstreamResponse,
    register,
)
from routerd.providers.errors import ErrorContext
from routerd.providers.google_common import GENERATE, STREAM, Endpoint, GoogleAdapter
from routerd.providers.openai_parts import DeploymentParams
from routerd.providers.urlpath import resource_path
from routerd.tokens import estimate_tokens

PROVIDER = "gemini"
DEFAULT_API_BASE = "https://generativelanguage.googleapis.com"
DEFAULT_API_VERSION = "v1beta"
API_KEY_ENV = "GEMINI_API_KEY"
API_KEY_ENV_FALLBACK = "GOOGLE_API_KEY"  # the name Google's own SDKs read
_VERSIONS = ("/v1", "/v1beta", "/v1alpha")


@dataclass(frozen=True, slots=True)
class GeminiTarget:
    """What :meth:`GeminiAdapter.prepare` precomputes for one deployment."""

    model_path: str  # "models/gemini-2.0-flash", "tunedModels/..."
    generate: Endpoint
    stream: Endpoint
    embed: Endpoint
    has_key: bool
    errors: ErrorContext = field(repr=False)
    params: DeploymentParams = field(repr=False)


def model_path(model: str) -> str:
    """The resource name of ``model``, escaped for the URL path: bare names live under ``models/``.

    A wildcard deployment's model is the client's choice: escaping keeps ``?``, ``#`` and ``..`` from
    reaching other paths on the configured host (:mod:`routerd.providers.urlpath`).
    """
    if model.startswith(("models/", "tunedModels/")):
        return resource_path(model, param="model")
    return f"models/{resource_path(model, param='model')}"


def versioned_base(api_base: str, version: str) -> str:
    """``api_base`` with the API version appended, unless it already ends with one."""
    base = api_base.rstrip("/")
    return base if base.endswith(_VERSIONS) else f"{base}/{version}"


def base_url(api_base: str | None, api_version: str | None) -> str:
    """Where ``models/...`` lives. Google's own host gets the API version (v1beta by default). A
    configured ``api_base`` elsewhere (a proxy, a Vertex-Express style endpoint) is used as written,
    as LiteLLM does (it calls ``{api_base}/models/...``), unless ``api_version`` is set explicitly."""
    if api_base is None:
        return versioned_base(DEFAULT_API_BASE, api_version or DEFAULT_API_VERSION)
    if api_version is not None or api_base.rstrip("/") == DEFAULT_API_BASE:
        return versioned_base(api_base, api_version or DEFAULT_API_VERSION)
    return api_base.rstrip("/")


class GeminiAdapter(GoogleAdapter):
    """Chat (plain and streamed) and embeddings on the Gemini API."""

    name = PROVIDER
    endpoints = frozenset({CHAT, EMBEDDINGS})
    policy = translate.param_policy(PROVIDER)

    def prepare(self, deployment: Deployment) -> GeminiTarget:
        api_key = (
            deployment.api_key or os.environ.get(API_KEY_ENV) or os.environ.get(API_KEY_ENV_FALLBACK) or ""
        )
        base = base_url(deployment.api_base, deployment.api_version)
        path = model_path(deployment.model)
        headers = {"content-type": "application/json"}
        params = DeploymentParams.from_extra(deployment.extra)
        headers.update(params.headers)
        if api_key:
            headers["x-goog-api-key"] = api_key
        errors = ErrorContext(
            self.name, deployment.model, deployment.id, secrets=(api_key,) if api_key else ()
        )

        def endpoint(method: str, query: str = "") -> Endpoint:
            return Endpoint(f"{base}/{path}:{method}{query}", headers, errors)

        return GeminiTarget(
            model_path=path,
            generate=endpoint(GENERATE),
            stream=endpoint(STREAM, "?alt=sse"),
            embed=endpoint("batchEmbedContents"),
            has_key=bool(api_key),
            errors=errors,
            params=params,
        )

    def target(self, deployment: Deployment) -> GeminiTarget:
        target = deployment.prepared
        if not isinstance(target, GeminiTarget):
            target = self.prepare(deployment)
        if not target.has_key:
            raise target.errors.make(
                AuthenticationError, f"no API key for {self.name}: set api_key or {API_KEY_ENV}"
            )
        return target

    def deployment_params(self, deployment: Deployment) -> DeploymentParams:
        return self.target(deployment).params

    async def endpoint(self, deployment: Deployment, method: str) -> Endpoint:
        target = self.target(deployment)
        return target.stream if method == STREAM else target.generate

    async def embedding(self, http: HttpClient, request: UpstreamRequest) -> UpstreamResponse:
        deployment = request.deployment
        target = self.target(deployment)
        errors = target.errors
        body = target.params.client_body(request.body)
        if body.get("encoding_format") not in (None, "float", "base64"):
            raise errors.make(
                BadRequestError, "encoding_format must be float or base64", param="encoding_format"
            )
        try:
            payload = orjson.dumps(
                target.params.upstream_body(translate.to_batch_embed_request(body, target.model_path))
            )
        except OpenAIError as exc:
            errors.annotate(exc)
            raise
        data = await self._post_json(http, request, target.embed.url, target.embed.headers, payload, errors)
        vectors = translate.embedding_vectors(data)
        inputs = body.get("input")
        texts = [inputs] if isinstance(inputs, str) else list(inputs or [])
        return UpstreamResponse(
            shapes.embedding_list(
                model=deployment.model,
                vectors=vectors,
                # the API reports no token counts for embeddings: an estimate, for usage accounting
                prompt_tokens=sum(estimate_tokens(str(text)) for text in texts),
                encoding_format=body.get("encoding_format"),
            )
        )


# cast: BaseAdapter declares ``name`` as a ClassVar, the Adapter protocol as an instance attribute.
register(cast(Adapter, GeminiAdapter()))
