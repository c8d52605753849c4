"""The ``vertex_ai/`` provider: Gemini models (and Anthropic's Claude) on Google Cloud Vertex AI.

``POST https://{location}-aiplatform.googleapis.com/v1/projects/{project}/locations/{location}/
publishers/google/models/{model}:generateContent`` (and ``:streamGenerateContent?alt=sse``), with an
OAuth bearer token. The model may also be a tuned endpoint: its numeric id, or its full resource name
``projects/.../locations/.../endpoints/{id}``. Claude models (``claude-*``) are Anthropic's, served in
Anthropic's Messages format on ``publishers/anthropic/models/{model}:rawPredict``
(:mod:`routerd.providers.vertex_claude`): chat is translated to it, ``/v1/messages`` sent natively.

Settings come from the deployment's ``litellm_params`` or the environment:

* ``vertex_project`` / ``VERTEXAI_PROJECT`` (else the credentials' own project),
* ``vertex_location`` / ``VERTEXAI_LOCATION`` (default ``us-central1``; ``global`` uses the global host),
* ``vertex_credentials`` / ``GOOGLE_APPLICATION_CREDENTIALS``: a service-account key file's path or
  JSON text; ``api_key`` instead is an access token used as is (see :mod:`routerd.providers.google_auth`).
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import google.auth.transport

from routerd.config.table import Deployment
from routerd.errors import AuthenticationError, OpenAIError
from routerd.http import HttpClient
from routerd.providers import google_translate as translate
from routerd.providers import vertex_claude
from routerd.providers.base import CHAT, JSON, Adapter, UpstreamRequest, UpstreamResponse, register
from routerd.providers.errors import ErrorContext
from routerd.providers.google_auth import (
    CLOUD_PLATFORM_SCOPE,
    DEFAULT_REFRESH_MARGIN,
    CredentialsTokenSource,
    StaticToken,
    TokenSource,
    credentials_loader,
    source_fingerprint,
)
from routerd.providers.google_common import STREAM, Endpoint, GoogleAdapter
from routerd.providers.openai_parts import DeploymentParams
from routerd.providers.urlpath import resource_path

PROVIDER = "vertex_ai"
PROJECT_ENV = ("VERTEXAI_PROJECT", "VERTEX_PROJECT", "GOOGLE_CLOUD_PROJECT")
LOCATION_ENV = ("VERTEXAI_LOCATION", "VERTEX_LOCATION")
CREDENTIALS_ENV = "GOOGLE_APPLICATION_CREDENTIALS"
DEFAULT_LOCATION = "us-central1"
DEFAULT_API_VERSION = "v1"
SCOPES = (CLOUD_PLATFORM_SCOPE,)


@dataclass(frozen=True, slots=True)
class VertexTarget:
    """What :meth:`VertexAdapter.prepare` precomputes for one deployment."""

    base: str  # "https://us-central1-aiplatform.googleapis.com/v1"
    location: str
    project: str | None  # None: taken from the credentials on first use
    model: str
    headers: Mapping[str, str]
    auth: TokenSource = field(repr=False)
    errors: ErrorContext = field(repr=False)
    params: DeploymentParams = field(repr=False)
    # an Anthropic model: Messages format on rawPredict (routerd.providers.vertex_claude)
    claude: bool = False


def api_host(location: str) -> str:
    """The regional Vertex AI host (the global location has a host of its own)."""
    if location == "global":
        return "https://aiplatform.googleapis.com"
    return f"https://{location}-aiplatform.googleapis.com"


def model_resource(model: str, project: str, location: str) -> str:
    """The resource name that ``:generateContent`` is called on."""
    if model.startswith("projects/"):
        # a full resource name (tuned endpoint, or another publisher's model)
        return resource_path(model, param="model")
    scope = f"projects/{project}/locations/{location}"
    if model.isascii() and model.isdigit():
        return f"{scope}/endpoints/{model}"  # a tuned model's endpoint id
    publisher = vertex_claude.PUBLISHER if vertex_claude.is_claude(model) else "google"
    # the model may be a wildcard client's choice: escaped (routerd.providers.urlpath)
    return f"{scope}/publishers/{publisher}/models/{resource_path(model, param='model')}"


class VertexAdapter(GoogleAdapter):
    """Chat (plain and streamed) on Vertex AI's generateContent.

    ``auth_request`` (a ``google.auth.transport.Request``), ``clock`` and ``refresh_margin`` are
    injectable so token refreshes can be tested offline against a fake token endpoint.
    """

    name = PROVIDER
    endpoints = frozenset({CHAT})
    policy = translate.param_policy(PROVIDER)

    def __init__(
        self,
        *,
        auth_request: google.auth.transport.Request | None = None,
        clock: Callable[[], float] = time.time,
        refresh_margin: float = DEFAULT_REFRESH_MARGIN,
    ) -> None:
        self._auth_request = auth_request
        self._clock = clock
        self._refresh_margin = refresh_margin
        # one token source per credentials: deployments and reloaded tables share cached tokens
        self._sources: dict[str, CredentialsTokenSource] = {}

    def prepare(self, deployment: Deployment) -> VertexTarget:
        extra = deployment.extra
        project = extra.get("vertex_project") or _env(PROJECT_ENV)
        location = extra.get("vertex_location") or _env(LOCATION_ENV) or DEFAULT_LOCATION
        version = deployment.api_version or DEFAULT_API_VERSION
        base = (deployment.api_base or api_host(location)).rstrip("/")
        if not base.endswith(("/v1", "/v1beta1")):
            base = f"{base}/{version}"
        headers = {"content-type": "application/json"}
        params = DeploymentParams.from_extra(extra)
        headers.update(params.headers)
        auth: TokenSource
        if deployment.api_key:
            auth = StaticToken(deployment.api_key)
        else:
            auth = self.token_source(extra.get("vertex_credentials") or os.environ.get(CREDENTIALS_ENV))
        secrets = (deployment.api_key,) if deployment.api_key else ()
        errors = ErrorContext(self.name, deployment.model, deployment.id, secrets=secrets)
        claude = vertex_claude.is_claude(deployment.model)
        return VertexTarget(
            base, str(location), project, deployment.model, headers, auth, errors, params, claude
        )

    def token_source(self, credentials: str | Mapping[str, Any] | None) -> CredentialsTokenSource:
        """The (shared) token source of one credentials file / JSON text / ADC (``None``)."""
        key = source_fingerprint(credentials, SCOPES)
        source = self._sources.get(key)
        if source is None:
            source = CredentialsTokenSource(
                credentials_loader(credentials, SCOPES),
                provider=self.name,
                request=self._auth_request,
                clock=self._clock,
                refresh_margin=self._refresh_margin,
            )
            self._sources[key] = source
        return source

    def native_for(self, deployment: Deployment, api: str) -> bool:
        """Claude models get ``/v1/messages`` requests as they are (see providers.base.speaks_natively)."""
        return api == "messages" and self.target(deployment).claude

    async def chat(self, http: HttpClient, request: UpstreamRequest) -> UpstreamResponse:
        if self.target(request.deployment).claude:
            return await vertex_claude.chat(self, http, request)
        return await super().chat(http, request)

    def chat_stream(self, http: HttpClient, request: UpstreamRequest) -> AsyncIterator[JSON]:
        if self.target(request.deployment).claude:
            return vertex_claude.chat_stream(self, http, request)
        return super().chat_stream(http, request)

    async def messages(self, http: HttpClient, request: UpstreamRequest) -> UpstreamResponse:
        """A ``/v1/messages`` request for a Claude model, sent as it is."""
        return await vertex_claude.messages(self, http, request)

    def messages_stream(self, http: HttpClient, request: UpstreamRequest) -> AsyncIterator[JSON]:
        """A streamed ``/v1/messages`` request for a Claude model, sent as it is."""
        return vertex_claude.messages_stream(self, http, request)

    def target(self, deployment: Deployment) -> VertexTarget:
        target = deployment.prepared
        return target if isinstance(target, VertexTarget) else self.prepare(deployment)

    def deployment_params(self, deployment: Deployment) -> DeploymentParams:
        return self.target(deployment).params

    async def endpoint(self, deployment: Deployment, method: str) -> Endpoint:
        target = self.target(deployment)
        try:
            project = target.project or await target.auth.project_id()
            if not project:
                raise target.errors.make(
                    AuthenticationError,
                    f"no Google Cloud project for {self.name}: set vertex_project or VERTEXAI_PROJECT",
                )
            token = await target.auth.token()
        except OpenAIError as exc:
            target.errors.annotate(exc)
            raise
        query = "?alt=sse" if method == STREAM else ""
        url = f"{target.base}/{model_resource(target.model, project, target.location)}:{method}{query}"
        headers = {**target.headers, "authorization": f"Bearer {token}"}
        return Endpoint(url, headers, target.errors)

    def auth_rejected(self, deployment: Deployment) -> None:
        # A revoked or expired token: fetch a new one on the next attempt instead of reusing it.
        self.target(deployment).auth.invalidate()


def _env(names: tuple[str, ...]) -> str | None:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


# cast: BaseAdapter declares ``name`` as a ClassVar, the Adapter protocol as an instance attribute.
register(cast(Adapter, VertexAdapter()))
