"""OpenAI and every server that speaks its API.

Providers served here:

* ``openai/`` (and bare OpenAI names such as ``gpt-4o`` or ``ft:gpt-4o-mini:my-org:suffix:abc123``):
  ``https://api.openai.com/v1`` unless ``api_base`` points at any OpenAI-compatible server (vLLM,
  LM Studio, llama.cpp, Ollama's ``/v1``); ``custom_openai/`` is an alias.
* ``text-completion-openai/``: models that only have ``/v1/completions`` (``gpt-3.5-turbo-instruct``,
  ``davinci-002``); chat requests are served through that endpoint.
* ``hosted_vllm/``: a vLLM server; ``api_base`` is required and ``/v1`` is appended when missing.
* OpenAI-compatible hosted APIs with their default base URLs (``groq/``, ``mistral/``, ``deepseek/``,
  ``together_ai/``, ``fireworks_ai/``, ``openrouter/``, ``perplexity/``, ``xai/``, ``ollama/``,
  ``lm_studio/``).

Per deployment, :meth:`OpenAIAdapter.prepare` computes the URLs, the headers (authorization,
organization, ``extra_headers``) and the body defaults (provider-specific ``litellm_params`` such as
``top_k`` for vLLM, and ``extra_body``) once, at compile time. A request then costs one dict merge,
one ``orjson.dumps``, one HTTP call and one ``orjson.loads``; bodies are never modelled.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import orjson

from routerd.config.table import Deployment
from routerd.errors import APIConnectionError, ConfigError, OpenAIError
from routerd.http import HttpClient
from routerd.providers import textcompat
from routerd.providers.base import (
    CHAT,
    COMPLETIONS,
    EMBEDDINGS,
    JSON,
    BaseAdapter,
    UpstreamRequest,
    UpstreamResponse,
    register,
)
from routerd.providers.errors import ErrorContext
from routerd.providers.infer import DEFAULT_API_BASE_ENV, DEFAULT_API_KEY_ENV
from routerd.providers.sse import iter_data
from routerd.providers.sse_stream import OpenAIStream, json_body

__all__ = [
    "KEPT_RESPONSE_HEADERS",
    "ROUTERD_REQUEST_KEYS",
    "OpenAIAdapter",
    "OpenAIEndpoint",
    "body_defaults",
    "post_json",
    "stream_json",
    "strip_routerd_keys",
]

OPENAI_API_BASE = "https://api.openai.com/v1"

#: request keys that steer routerd / the LiteLLM SDK and must never reach an upstream
ROUTERD_REQUEST_KEYS = frozenset(
    {
        "mock_response",
        "mock_tool_calls",
        "mock_testing_fallbacks",
        "mock_timeout",
        "fallbacks",
        "context_window_fallbacks",
        "content_policy_fallbacks",
        "num_retries",
        "max_retries",
        "timeout",
        "request_timeout",
        "stream_timeout",
        "api_key",
        "api_base",
        "base_url",
        "api_version",
        "custom_llm_provider",
        "drop_params",
        "additional_drop_params",
        "modify_params",
        "caching",
        "cache",
        "tags",
        "model_list",
        "extra_headers",
        "proxy_server_request",
        "litellm_metadata",
        "litellm_call_id",
        "routerd",
    }
)

# litellm_params keys routerd or the SDK interpret; everything else in ``Deployment.extra`` is a
# provider body parameter (``top_k``, ``repetition_penalty``, ``guided_json``, ...) sent upstream.
_NOT_BODY_KEYS = ROUTERD_REQUEST_KEYS | frozenset(
    {
        "model",
        "model_info",
        "organization",
        "headers",
        "extra_body",
        "use_in_pass_through",
        "use_litellm_proxy",
        "merge_reasoning_content_in_choices",
        "configurable_clientside_auth_params",
        "max_budget",
        "budget_duration",
        "rpm",
        "tpm",
        "weight",
        "order",
        "region_name",
        "tenant_id",
        "client_id",
        "client_secret",
        "cooldown_time",
        "allowed_openai_params",
        "stream_usage",
        "cache_control_injection_points",
        "account_id",
    }
)
_NOT_BODY_PREFIXES = (
    "mock_",
    "vertex_",
    "aws_",
    "azure_",
    "litellm_",
    "routerd_",
    "input_cost",
    "output_cost",
)

#: upstream response headers worth keeping (rate-limit state, for metrics and routing)
KEPT_RESPONSE_HEADERS = (
    "x-ratelimit-remaining-requests",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-limit-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
)

# OpenAI models (and fine-tunes of them) that only have /v1/completions
_TEXT_ONLY_MODEL = re.compile(r"^(?:ft:)?(?:gpt-3\.5-turbo-instruct|davinci-002|babbage-002|text-davinci-)")
_ENDPOINT_TAILS = ("/chat/completions", "/completions", "/embeddings")


@dataclass(frozen=True, slots=True)
class OpenAIEndpoint:
    """What :meth:`OpenAIAdapter.prepare` computes for one deployment (its ``prepared``)."""

    model: str
    chat_url: str
    completions_url: str
    embeddings_url: str
    headers: Mapping[str, str]
    # provider-specific parameters from litellm_params; the client's own values win
    body_defaults: Mapping[str, Any]
    # keys removed from every request (litellm's ``additional_drop_params``)
    drop_keys: frozenset[str]
    errors: ErrorContext
    # the model only has /v1/completions: chat requests go through it
    text_only: bool
    # /v1/completions requests are sent as they are (else served through chat)
    native_completions: bool
    # streams ask the upstream for a final usage chunk (stream_options.include_usage), so every
    # stream is metered; routerd removes that chunk again when the client did not ask for it
    stream_usage: bool = True
    # OpenAI's Responses API (/v1/responses requests are sent there as they are)
    responses_url: str = ""
    moderations_url: str = ""
    images_url: str = ""
    rerank_url: str = ""
    speech_url: str = ""
    transcriptions_url: str = ""
    image_edits_url: str = ""
    # the body defaults as the Responses API names them (native /v1/responses requests)
    responses_defaults: Mapping[str, Any] = field(default_factory=dict)

    def body(self, body: Mapping[str, Any], *, stream: bool | None) -> JSON:
        """The upstream body: defaults, then the client's keys, then the upstream model name.

        ``stream`` True/False forces streaming on/off (``stream_options`` only goes with a stream);
        None leaves both out (embeddings).
        """
        if not ROUTERD_REQUEST_KEYS.isdisjoint(body):
            body = strip_routerd_keys(body)
        out = (
            {**self.body_defaults, **body, "model": self.model}
            if self.body_defaults
            else {**body, "model": self.model}
        )
        if self.drop_keys:
            for key in self.drop_keys.intersection(out):
                del out[key]
        if stream:
            out["stream"] = True
            if self.stream_usage:
                options = out.get("stream_options")
                out["stream_options"] = (
                    {**options, "include_usage": True}
                    if isinstance(options, dict)
                    else {"include_usage": True}
                )
        else:
            out.pop("stream", None)
            out.pop("stream_options", None)
        return out


def strip_routerd_keys(body: Mapping[str, Any]) -> JSON:
    """``body`` without the keys that only steer routerd (see :data:`ROUTERD_REQUEST_KEYS`)."""
    return {key: value for key, value in body.items() if key not in ROUTERD_REQUEST_KEYS}


def body_defaults(extra: Mapping[str, Any]) -> JSON:
    """The body parameters a deployment's provider-specific ``litellm_params`` contribute."""
    defaults = {
        key: value
        for key, value in extra.items()
        if key not in _NOT_BODY_KEYS and not key.startswith(_NOT_BODY_PREFIXES) and value is not None
    }
    extra_body = extra.get("extra_body")
    if isinstance(extra_body, Mapping):
        defaults.update(extra_body)
    return defaults


#: chat body parameters the Responses API takes under the same name
_RESPONSES_SAME_NAME = frozenset(
    {
        "temperature",
        "top_p",
        "top_logprobs",
        "parallel_tool_calls",
        "tool_choice",
        "user",
        "metadata",
        "store",
        "service_tier",
        "safety_identifier",
        "prompt_cache_key",
        "truncation",
        "max_tool_calls",
    }
)
#: chat body parameters the Responses API names differently
_RESPONSES_RENAMED = {"max_tokens": "max_output_tokens", "max_completion_tokens": "max_output_tokens"}


def responses_defaults(extra: Mapping[str, Any]) -> JSON:
    """The body defaults of :func:`body_defaults` for a native Responses request: the chat parameters
    the Responses API has (``max_tokens`` / ``max_completion_tokens`` as ``max_output_tokens``,
    ``reasoning_effort`` as ``reasoning.effort``), then ``extra_body`` as it is. Chat-only parameters
    (``frequency_penalty``, ``stop``, ``seed``, ...) are left out: the Responses API refuses them."""
    defaults: JSON = {}
    chat = body_defaults({k: v for k, v in extra.items() if k != "extra_body"})
    for key, value in chat.items():
        if key in _RESPONSES_SAME_NAME:
            defaults[key] = value
        elif key in _RESPONSES_RENAMED:
            defaults.setdefault(_RESPONSES_RENAMED[key], value)
        elif key == "reasoning_effort":
            defaults["reasoning"] = {"effort": value}
    extra_body = extra.get("extra_body")
    if isinstance(extra_body, Mapping):
        defaults.update(extra_body)
    return defaults


def _extra_headers(extra: Mapping[str, Any]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for key in ("headers", "extra_headers"):
        value = extra.get(key)
        if isinstance(value, Mapping):
            headers.update({str(k).lower(): str(v) for k, v in value.items() if v is not None})
    return headers


def pick_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The upstream headers routerd keeps (:data:`KEPT_RESPONSE_HEADERS`)."""
    kept = {}
    for name in KEPT_RESPONSE_HEADERS:
        value = headers.get(name)
        if value is not None:
            kept[name] = value
    return kept


class OpenAIAdapter(BaseAdapter):
    """``openai/``: chat, completions and embeddings against any OpenAI-compatible base URL."""

    name = "openai"
    endpoints = frozenset({CHAT, COMPLETIONS, EMBEDDINGS})
    #: None: the deployment must name its api_base
    default_api_base: ClassVar[str | None] = OPENAI_API_BASE
    #: append ``/v1`` to an api_base that does not end with it (vLLM users often give the bare host)
    append_v1: ClassVar[bool] = False
    #: every model of this provider only has /v1/completions
    text_only: ClassVar[bool] = False
    #: send /v1/completions natively for every model (else only for text-only models)
    native_completions: ClassVar[bool] = False
    #: client APIs sent natively (see routerd.routing.types.NativeCall): OpenAI's own Responses API;
    #: compatible servers rarely have it, so their adapters clear this
    native_apis: ClassVar[frozenset[str]] = frozenset({"responses"})

    def stream_usage(self, deployment: Deployment) -> bool:
        """Whether streams may ask this upstream for usage (``stream_options.include_usage``).
        ``litellm_params.stream_usage: false`` turns it off for a server that rejects the option."""
        return deployment.extra.get("stream_usage") is not False

    # --- compile time -------------------------------------------------------------------------

    def prepare(self, deployment: Deployment) -> OpenAIEndpoint:
        """URLs, headers and body defaults of ``deployment``; ConfigError when it cannot be called."""
        base = self.api_base(deployment)
        extra = deployment.extra
        text_only = (
            self.text_only
            or deployment.info.mode == "completion"
            or bool(_TEXT_ONLY_MODEL.match(deployment.model))
        )
        key = self.api_key(deployment)
        drop = extra.get("additional_drop_params")
        return OpenAIEndpoint(
            model=deployment.model,
            chat_url=self.url(base, deployment, "chat/completions"),
            completions_url=self.url(base, deployment, "completions"),
            embeddings_url=self.url(base, deployment, "embeddings"),
            headers={
                "content-type": "application/json",
                **_extra_headers(extra),
                **self.auth_headers(deployment, key),
            },
            body_defaults=body_defaults(extra),
            drop_keys=frozenset(drop) if isinstance(drop, list | tuple) else frozenset(),
            errors=ErrorContext(
                provider=self.name,
                model=deployment.model,
                deployment_id=deployment.id,
                secrets=tuple(s for s in (key, extra.get("azure_ad_token")) if isinstance(s, str) and s),
            ),
            text_only=text_only,
            native_completions=text_only or self.native_completions,
            stream_usage=self.stream_usage(deployment),
            responses_url=self.url(base, deployment, "responses"),
            moderations_url=self.url(base, deployment, "moderations"),
            images_url=self.url(base, deployment, "images/generations"),
            rerank_url=self.url(base, deployment, "rerank"),
            speech_url=self.url(base, deployment, "audio/speech"),
            transcriptions_url=self.url(base, deployment, "audio/transcriptions"),
            image_edits_url=self.url(base, deployment, "images/edits"),
            responses_defaults=responses_defaults(extra) if "responses" in self.native_apis else {},
        )

    def api_base(self, deployment: Deployment) -> str:
        """The base URL requests go to: the deployment's, the provider's env variable, the default."""
        env = DEFAULT_API_BASE_ENV.get(self.name)
        base = deployment.api_base or (os.environ.get(env) if env else None) or self.default_api_base
        if not base:
            raise ConfigError(
                [f"deployment {deployment.id} ({deployment.litellm_model}): {self.name} needs api_base"]
            )
        base = base.rstrip("/")
        for tail in _ENDPOINT_TAILS:  # a full endpoint URL pasted as the base
            if base.endswith(tail):
                base = base[: -len(tail)]
                break
        if self.append_v1 and not base.endswith("/v1"):
            base += "/v1"
        return base

    def api_key(self, deployment: Deployment) -> str | None:
        """The deployment's key, else the provider's default environment variable (if any)."""
        if deployment.api_key:
            return deployment.api_key
        env = DEFAULT_API_KEY_ENV.get(self.name)
        return os.environ.get(env) if env else None

    def url(self, base: str, deployment: Deployment, endpoint: str) -> str:
        return f"{base}/{endpoint}"

    def auth_headers(self, deployment: Deployment, key: str | None) -> dict[str, str]:
        headers = {}
        if key:
            headers["authorization"] = f"Bearer {key}"
        if deployment.organization:
            headers["openai-organization"] = deployment.organization
        return headers

    # --- request time -------------------------------------------------------------------------

    def endpoint(self, deployment: Deployment) -> OpenAIEndpoint:
        """The prepared endpoint; wildcard deployments (``prepared is None``) are prepared now."""
        prepared = deployment.prepared
        if isinstance(prepared, OpenAIEndpoint):
            return prepared
        try:
            return self.prepare(deployment)
        except ConfigError as exc:
            raise APIConnectionError(
                f"deployment is not callable: {exc}",
                llm_provider=self.name,
                model=deployment.model,
                deployment_id=deployment.id,
            ) from exc

    async def chat(self, http: HttpClient, request: UpstreamRequest) -> UpstreamResponse:
        ep = self.endpoint(request.deployment)
        if ep.text_only:
            return await self._chat_via_text(http, request, ep)
        body = ep.body(request.body, stream=False)
        return await post_json(http, ep.chat_url, _headers(ep, request), body, request.timeout, ep.errors)

    def chat_stream(self, http: HttpClient, request: UpstreamRequest) -> AsyncIterator[JSON]:
        try:
            ep = self.endpoint(request.deployment)
        except OpenAIError as exc:
            return _RaiseWhenIterated(exc)
        if ep.text_only:
            return self._chat_stream_via_text(http, request, ep)
        body = ep.body(request.body, stream=True)
        return stream_json(http, ep.chat_url, _headers(ep, request), body, request.timeout, ep.errors)

    async def completion(self, http: HttpClient, request: UpstreamRequest) -> UpstreamResponse:
        ep = self.endpoint(request.deployment)
        if not ep.native_completions:
            return await super().completion(http, request)
        body = ep.body(request.body, stream=False)
        return await post_json(
            http, ep.completions_url, _headers(ep, request), body, request.timeout, ep.errors
        )

    def completion_calls(self, deployment: Deployment, body: JSON) -> int:
        """One call when this deployment has /v1/completions, else one chat call per prompt."""
        try:
            native = self.endpoint(deployment).native_completions
        except OpenAIError:
            return 1  # the attempt itself will fail with this error
        return 1 if native else textcompat.prompt_count(body)

    def completion_stream(self, http: HttpClient, request: UpstreamRequest) -> AsyncIterator[JSON]:
        try:
            ep = self.endpoint(request.deployment)
        except OpenAIError as exc:
            return _RaiseWhenIterated(exc)
        if not ep.native_completions:
            return super().completion_stream(http, request)
        body = ep.body(request.body, stream=True)
        return stream_json(http, ep.completions_url, _headers(ep, request), body, request.timeout, ep.errors)

    async def embedding(self, http: HttpClient, request: UpstreamRequest) -> UpstreamResponse:
        ep = self.endpoint(request.deployment)
        body = ep.body(request.body, stream=None)
        return await post_json(
            http, ep.embeddings_url, _headers(ep, request), body, request.timeout, ep.errors
        )

    async def moderation(self, http: HttpClient, request: UpstreamRequest) -> UpstreamResponse:
        """``/v1/moderations`` (OpenAI's, and servers that copy it)."""
        ep = self.endpoint(request.deployment)
        body = ep.body(request.body, stream=None)
        return await post_json(
            http, ep.moderations_url, _headers(ep, request), body, request.timeout, ep.errors
        )

    async def image_generation(self, http: HttpClient, request: UpstreamRequest) -> UpstreamResponse:
        """``/v1/images/generations`` (OpenAI's; on Azure under the deployment)."""
        ep = self.endpoint(request.deployment)
        body = ep.body(request.body, stream=None)
        return await post_json(http, ep.images_url, _headers(ep, request), body, request.timeout, ep.errors)

    async def rerank(self, http: HttpClient, request: UpstreamRequest) -> UpstreamResponse:
        """``/rerank`` in Cohere's shape, on OpenAI-compatible servers that have it (vLLM, Jina, TEI)."""
        ep = self.endpoint(request.deployment)
        body = ep.body(request.body, stream=None)
        return await post_json(http, ep.rerank_url, _headers(ep, request), body, request.timeout, ep.errors)

    async def speech(self, http: HttpClient, request: UpstreamRequest) -> UpstreamResponse:
        """``/audio/speech``: the answer's body is ``{"audio": bytes, "content_type": str}``."""
        ep = self.endpoint(request.deployment)
        content = json_body(ep.body(request.body, stream=None), ep.errors)
        response = await _send(
            http, ep, ep.speech_url, _headers(ep, request), request.timeout, content=content
        )
        return UpstreamResponse(
            {"audio": response.content, "content_type": response.headers.get("content-type") or "audio/mpeg"},
            pick_headers(response.headers),
        )

    async def transcription(self, http: HttpClient, request: UpstreamRequest) -> UpstreamResponse:
        """``/audio/transcriptions``: ``body["file"]`` is (filename, bytes, content type); the answer is
        the upstream's JSON, or ``{"text": ..., "content_type": ...}`` for text formats (srt, vtt)."""
        ep = self.endpoint(request.deployment)
        fields = {
            k: v for k, v in ep.body(request.body, stream=None).items() if k != "file" and v is not None
        }
        data = {k: v if isinstance(v, str) else orjson.dumps(v).decode() for k, v in fields.items()}
        headers = {k: v for k, v in _headers(ep, request).items() if k != "content-type"}  # multipart's own
        response = await _send(
            http,
            ep,
            ep.transcriptions_url,
            headers,
            request.timeout,
            files={"file": request.body["file"]},
            data=data,
        )
        content_type = response.headers.get("content-type") or ""
        if content_type.startswith("application/json"):
            try:
                payload = orjson.loads(response.content)
            except orjson.JSONDecodeError:
                raise ep.errors.bad_gateway("the upstream answered JSON that does not parse") from None
            if isinstance(payload, dict):
                return UpstreamResponse(payload, pick_headers(response.headers))
        text = response.content.decode("utf-8", errors="replace")
        return UpstreamResponse({"text": text, "content_type": content_type or "text/plain"})

    async def image_edit(self, http: HttpClient, request: UpstreamRequest) -> UpstreamResponse:
        """``/images/edits`` (multipart): ``body["image"]`` / ``body["mask"]`` are (filename, bytes, type)."""
        ep = self.endpoint(request.deployment)
        uploads = {name: request.body[name] for name in ("image", "mask") if name in request.body}
        fields = {
            k: v for k, v in ep.body(request.body, stream=None).items() if k not in uploads and v is not None
        }
        data = {k: v if isinstance(v, str) else orjson.dumps(v).decode() for k, v in fields.items()}
        headers = {k: v for k, v in _headers(ep, request).items() if k != "content-type"}
        response = await _send(
            http, ep, ep.image_edits_url, headers, request.timeout, files=uploads, data=data
        )
        try:
            payload = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise ep.errors.bad_gateway("the upstream answered a body that is not JSON") from None
        if not isinstance(payload, dict):
            raise ep.errors.bad_gateway("the upstream answered JSON that is not an object")
        return UpstreamResponse(payload, pick_headers(response.headers))

    async def responses(self, http: HttpClient, request: UpstreamRequest) -> UpstreamResponse:
        """A Responses API request sent as it is (the client's fields, the deployment's model)."""
        ep = self.endpoint(request.deployment)
        body = _native_body(request.body, ep, stream=False)
        response = await post_json(
            http, ep.responses_url, _headers(ep, request), body, request.timeout, ep.errors
        )
        if response.body.get("object") != "response":
            raise ep.errors.bad_gateway(
                "the upstream answered a body that is not a response", upstream_status=200
            )
        return response

    def responses_stream(self, http: HttpClient, request: UpstreamRequest) -> AsyncIterator[JSON]:
        """A streamed Responses API request sent as it is; yields the typed event dicts unchanged."""
        try:
            ep = self.endpoint(request.deployment)
        except OpenAIError as exc:
            return _RaiseWhenIterated(exc)
        body = _native_body(request.body, ep, stream=True)
        return stream_events(http, ep.responses_url, _headers(ep, request), body, request.timeout, ep.errors)

    async def _chat_via_text(
        self, http: HttpClient, request: UpstreamRequest, ep: OpenAIEndpoint
    ) -> UpstreamResponse:
        text_body = textcompat.chat_request_to_text(
            request.body, drop_params=request.drop_params, provider=self.name
        )
        body = ep.body(text_body, stream=False)
        answer = await post_json(
            http, ep.completions_url, _headers(ep, request), body, request.timeout, ep.errors
        )
        return UpstreamResponse(textcompat.text_completion_to_chat(answer.body), answer.headers)

    async def _chat_stream_via_text(
        self, http: HttpClient, request: UpstreamRequest, ep: OpenAIEndpoint
    ) -> AsyncIterator[JSON]:
        text_body = textcompat.chat_request_to_text(
            request.body, drop_params=request.drop_params, provider=self.name
        )
        body = ep.body(text_body, stream=True)
        started: set[int] = set()
        stream = stream_json(
            http, ep.completions_url, _headers(ep, request), body, request.timeout, ep.errors
        )
        try:
            async for chunk in stream:
                yield textcompat.text_chunk_to_chat_chunk(chunk, started)
        finally:
            await stream.aclose()


class _RaiseWhenIterated:
    """A stream that fails on its first ``anext()``.

    Stream methods return their iterator without awaiting anything, so failures found while setting
    up the call surface where every upstream error does: callers need one error path, not two.
    """

    def __init__(self, exc: OpenAIError) -> None:
        self._exc = exc

    def __aiter__(self) -> _RaiseWhenIterated:
        return self

    async def __anext__(self) -> JSON:
        raise self._exc

    async def aclose(self) -> None:
        return None


def _headers(ep: OpenAIEndpoint, request: UpstreamRequest) -> Mapping[str, str]:
    if not request.extra_headers:
        return ep.headers
    # the deployment's credentials win over anything a caller forwards
    return {**{k.lower(): v for k, v in request.extra_headers.items()}, **ep.headers}


async def post_json(
    http: HttpClient,
    url: str,
    headers: Mapping[str, str],
    body: JSON,
    timeout: float,
    errors: ErrorContext,
) -> UpstreamResponse:
    """POST ``body`` as JSON and return the JSON answer; any failure raised translated."""
    content = json_body(body, errors)
    try:
        response = await http.request("POST", url, headers=headers, content=content, timeout=timeout)
    except OpenAIError as exc:
        errors.annotate(exc)
        raise
    status = response.status
    if not 200 <= status < 300:
        raise errors.from_response(status, response.headers, response.content)
    try:
        payload = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        raise errors.bad_gateway(
            f"upstream answered HTTP {status} with a body that is not JSON", upstream_status=status
        ) from None
    if not isinstance(payload, dict):
        raise errors.bad_gateway(
            f"upstream answered HTTP {status} with JSON that is not an object", upstream_status=status
        )
    if "error" in payload and payload["error"] and "choices" not in payload and "data" not in payload:
        # some compatible servers answer 200 with an error body
        raise errors.from_payload(payload)
    return UpstreamResponse(payload, pick_headers(response.headers))


def stream_json(
    http: HttpClient,
    url: str,
    headers: Mapping[str, str],
    body: JSON,
    timeout: float,
    errors: ErrorContext,
) -> OpenAIStream:
    """POST ``body`` and read the chunks of the SSE answer (:class:`~routerd.providers.sse_stream.OpenAIStream`).

    A non-2xx answer is raised by the first read, before any chunk. Closing the stream closes the
    upstream response (the connection is dropped, which cancels the generation upstream).
    """
    return OpenAIStream(http, url, headers, body, timeout, errors)


async def _send(
    http: HttpClient, ep: OpenAIEndpoint, url: str, headers: Mapping[str, str], timeout: float, **kwargs: Any
) -> Any:
    """One upstream call whose answer is not a JSON object (audio); a non-2xx answer raised translated."""
    try:
        response = await http.request("POST", url, headers=headers, timeout=timeout, **kwargs)
    except OpenAIError as exc:
        ep.errors.annotate(exc)
        raise
    if not 200 <= response.status < 300:
        raise ep.errors.from_response(response.status, response.headers, response.content)
    return response


def _native_body(body: Mapping[str, Any], ep: OpenAIEndpoint, *, stream: bool) -> JSON:
    """A native Responses body: the deployment's defaults, then the client's fields, then its model."""
    out = {**ep.responses_defaults, **body, "model": ep.model}
    if ep.drop_keys:
        for key in ep.drop_keys.intersection(out):
            del out[key]
    if stream:
        out["stream"] = True
    else:
        out.pop("stream", None)
        out.pop("stream_options", None)
    return out


#: the events that end a Responses stream
_FINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


async def stream_events(
    http: HttpClient,
    url: str,
    headers: Mapping[str, str],
    body: JSON,
    timeout: float,
    errors: ErrorContext,
) -> AsyncGenerator[JSON, None]:
    """POST ``body`` and yield the typed events of a Responses SSE answer, unchanged.

    A non-2xx answer (or an ``error`` event before any other) is raised before anything is yielded;
    a body that ends before a final event is a cut stream.
    """
    content = json_body(body, errors)
    events = 0
    try:
        async with http.stream("POST", url, headers=headers, content=content, timeout=timeout) as response:
            status = response.status
            if not 200 <= status < 300:
                raise errors.from_response(status, response.headers, await response.aread())
            async for _name, data in iter_data(response.aiter_lines()):
                try:
                    event = orjson.loads(data)
                except orjson.JSONDecodeError:
                    raise errors.bad_gateway("the upstream sent a stream event that is not JSON") from None
                if not isinstance(event, dict):
                    raise errors.bad_gateway("the upstream sent a stream event that is not a JSON object")
                if event.get("type") == "error":
                    raise errors.from_payload({"error": event})
                events += 1
                yield event
                if event.get("type") in _FINAL_EVENTS:
                    return
    except OpenAIError as exc:
        errors.annotate(exc)
        raise
    raise errors.stream_cut(events)


class TextCompletionOpenAIAdapter(OpenAIAdapter):
    """``text-completion-openai/``: /v1/completions models; chat is served through that endpoint."""

    name = "text-completion-openai"
    endpoints = frozenset({COMPLETIONS, EMBEDDINGS})
    text_only: ClassVar[bool] = True
    native_apis: ClassVar[frozenset[str]] = frozenset()


class HostedVLLMAdapter(OpenAIAdapter):
    """``hosted_vllm/``: a vLLM server. It has /v1/completions for every model, so those are native."""

    name = "hosted_vllm"
    default_api_base: ClassVar[str | None] = None
    append_v1: ClassVar[bool] = True
    native_completions: ClassVar[bool] = True
    native_apis: ClassVar[frozenset[str]] = frozenset()


# OpenAI-compatible hosted APIs: (provider, default base URL, append /v1 to a configured base)
_COMPATIBLE: tuple[tuple[str, str, bool], ...] = (
    ("groq", "https://api.groq.com/openai/v1", False),
    ("mistral", "https://api.mistral.ai/v1", False),
    ("deepseek", "https://api.deepseek.com/v1", False),
    ("together_ai", "https://api.together.xyz/v1", False),
    ("fireworks_ai", "https://api.fireworks.ai/inference/v1", False),
    ("openrouter", "https://openrouter.ai/api/v1", False),
    ("perplexity", "https://api.perplexity.ai", False),
    ("xai", "https://api.x.ai/v1", False),
    # local servers, whose base is usually given (OLLAMA_API_BASE, ...) as the bare host
    ("ollama", "http://localhost:11434/v1", True),
    ("lm_studio", "http://localhost:1234/v1", True),
)


def _compatible_adapter(provider: str, base: str, append_v1: bool) -> OpenAIAdapter:
    attributes = {
        "name": provider,
        "default_api_base": base,
        "append_v1": append_v1,
        "native_apis": frozenset(),
        "__doc__": f"``{provider}/``: the OpenAI-compatible API at {base}.",
    }
    adapter: OpenAIAdapter = type(f"OpenAICompatibleAdapter_{provider}", (OpenAIAdapter,), attributes)()
    return adapter


register(OpenAIAdapter(), "custom_openai")
register(TextCompletionOpenAIAdapter())
register(HostedVLLMAdapter())
for _provider, _base, _append_v1 in _COMPATIBLE:
    register(
        _compatible_adapter(_provider, _base, _append_v1),
        *(("ollama_chat",) if _provider == "ollama" else ()),
    )
