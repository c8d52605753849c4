"""Azure OpenAI: ``azure/`` (chat, completions, embeddings) and ``azure_text/`` (completions models).

Azure serves OpenAI's wire format under per-deployment URLs,
``{api_base}/openai/deployments/{deployment}/chat/completions?api-version=...``, authenticates with an
``api-key`` header (or ``Authorization: Bearer`` with a static Entra ID token, ``azure_ad_token``),
and answers errors in OpenAI's shape with Azure's codes: ``content_filter`` (with an
``innererror``) for a prompt its filter rejected, ``429`` with ``retry-after`` / ``retry-after-ms``.
The shared translation (:mod:`routerd.providers.errors`) maps both.

``api_version: v1`` selects Azure's version-less ``{api_base}/openai/v1/...`` API, where the model
travels in the body as with OpenAI.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import ClassVar
from urllib.parse import quote

from routerd.config.table import Deployment
from routerd.errors import ConfigError, UnsupportedParamsError
from routerd.http import HttpClient
from routerd.providers.base import (
    CHAT,
    COMPLETIONS,
    EMBEDDINGS,
    JSON,
    UpstreamRequest,
    UpstreamResponse,
    register,
)
from routerd.providers.infer import DEFAULT_API_VERSION_ENV
from routerd.providers.openai import OpenAIAdapter
from routerd.providers.urlpath import path_segment

__all__ = ["DEFAULT_AZURE_API_VERSION", "AzureAdapter", "AzureTextAdapter"]

#: used when neither the deployment nor AZURE_API_VERSION names one (Azure's current GA version)
DEFAULT_AZURE_API_VERSION = "2024-10-21"
_VERSIONLESS = "v1"


class AzureAdapter(OpenAIAdapter):
    """``azure/<deployment name>``: Azure OpenAI deployments."""

    name = "azure"
    endpoints = frozenset({CHAT, COMPLETIONS, EMBEDDINGS})
    default_api_base: ClassVar[str | None] = None

    def api_base(self, deployment: Deployment) -> str:
        # Users paste anything from the resource URL to a full endpoint URL with its query string;
        # everything from "/openai" on is rebuilt here.
        base = super().api_base(deployment)
        base = base.split("?", 1)[0]
        cut = base.find("/openai")
        return base[:cut] if cut >= 0 else base

    def api_version(self, deployment: Deployment) -> str:
        env = DEFAULT_API_VERSION_ENV.get(self.name)
        return deployment.api_version or (os.environ.get(env) if env else None) or DEFAULT_AZURE_API_VERSION

    def stream_usage(self, deployment: Deployment) -> bool:
        # Azure accepts stream_options from api-version 2024-09-01 (and the version-less v1 API)
        version = self.api_version(deployment)
        return super().stream_usage(deployment) and (version == _VERSIONLESS or version[:10] >= "2024-09-01")

    def url(self, base: str, deployment: Deployment, endpoint: str) -> str:
        version = self.api_version(deployment)
        if version == _VERSIONLESS:
            return f"{base}/openai/v1/{endpoint}"
        if endpoint == "responses":  # not under the deployment: the model goes in the body
            return f"{base}/openai/responses?api-version={quote(version, safe='')}"
        name = path_segment(deployment.model, param="model", what="deployment name")
        return f"{base}/openai/deployments/{name}/{endpoint}?api-version={quote(version, safe='')}"

    def auth_headers(self, deployment: Deployment, key: str | None) -> dict[str, str]:
        token = deployment.extra.get("azure_ad_token")
        if isinstance(token, str) and token:
            return {"authorization": f"Bearer {token}"}
        if not key:
            raise ConfigError(
                [f"deployment {deployment.id} ({deployment.litellm_model}): azure needs api_key"]
            )
        return {"api-key": key}

    async def moderation(self, http: HttpClient, request: UpstreamRequest) -> UpstreamResponse:
        # Azure OpenAI has no moderations endpoint (its content filter runs on every call)
        raise UnsupportedParamsError(
            "provider azure does not support moderations", llm_provider=self.name, param="model"
        )

    async def rerank(self, http: HttpClient, request: UpstreamRequest) -> UpstreamResponse:
        raise UnsupportedParamsError(
            "provider azure does not support rerank", llm_provider=self.name, param="model"
        )

    def chat_stream(self, http: HttpClient, request: UpstreamRequest) -> AsyncIterator[JSON]:
        return _without_filter_results(super().chat_stream(http, request))

    def completion_stream(self, http: HttpClient, request: UpstreamRequest) -> AsyncIterator[JSON]:
        return _without_filter_results(super().completion_stream(http, request))


class AzureTextAdapter(AzureAdapter):
    """``azure_text/<deployment name>``: Azure deployments of completions-only models."""

    name = "azure_text"
    endpoints = frozenset({COMPLETIONS, EMBEDDINGS})
    text_only: ClassVar[bool] = True


async def _without_filter_results(stream: AsyncIterator[JSON]) -> AsyncIterator[JSON]:
    """Drop Azure's extra stream chunks that carry only ``prompt_filter_results`` (no choices, no
    usage): OpenAI never sends them, and clients index ``chunk.choices[0]``."""
    try:
        async for chunk in stream:
            if chunk.get("choices") or chunk.get("usage"):
                yield chunk
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()


register(AzureAdapter())
register(AzureTextAdapter())
