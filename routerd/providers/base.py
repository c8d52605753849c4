"""The provider adapter protocol and the registry adapters are found by name.

An adapter turns one OpenAI-shaped request into one upstream call and the upstream answer back into
OpenAI's shape. Translation is pure (request dict in, request bytes out; response dict in, response
dict out) and tested against stored payloads; the HTTP client is injected (:mod:`routerd.http`).

Contract, for every endpoint an adapter supports:

* ``body`` is the client's OpenAI-shaped request (already parsed). ``body["model"]`` is the public
  name the client asked for; the adapter sends ``deployment.model`` upstream instead.
* The result is an :class:`UpstreamResponse` whose ``body`` is OpenAI-shaped.
* Streams are async iterators of OpenAI chunk dicts (``chat.completion.chunk`` /
  ``text_completion``). Any upstream HTTP error is raised *before* the first chunk is yielded, so the
  router can still fail over; errors after that are raised mid-iteration.
* Failures are raised as :mod:`routerd.errors` classes (``raise ... from exc``) carrying
  ``llm_provider``, ``model``, ``deployment_id``, ``upstream_status`` and ``retry_after``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from routerd.config.table import Deployment
from routerd.errors import UnsupportedParamsError
from routerd.http import HttpClient
from routerd.providers.errors import ErrorContext

JSON = dict[str, Any]

CHAT = "chat"
COMPLETIONS = "completions"
EMBEDDINGS = "embeddings"
#: ``/v1/moderations``: OpenAI's own API; other providers answer a 400 naming themselves
MODERATIONS = "moderations"
#: ``/v1/images/generations``: OpenAI and Azure OpenAI (DALL-E, gpt-image); others answer a 400
IMAGES = "images"
#: ``/v1/rerank`` in Cohere's shape, for OpenAI-compatible servers that have it (vLLM, Jina, TEI...)
RERANK = "rerank"
#: ``/v1/audio/speech`` (JSON in, audio bytes out) and ``/v1/audio/transcriptions`` (a file in)
SPEECH = "speech"
TRANSCRIPTIONS = "transcriptions"
#: ``/v1/images/edits`` (an image file in)
IMAGE_EDITS = "image_edits"


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    """One attempt: which deployment, what to send, and how long it may take."""

    deployment: Deployment
    body: JSON
    timeout: float
    # headers the client asked to forward (SDK ``extra_headers``); never the client's routerd key
    extra_headers: Mapping[str, str] = field(default_factory=dict)
    drop_params: bool = False
    request_id: str = ""
    # upstream calls in flight at once when one request fans out (a text completion's prompt list)
    concurrency: int = 8


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where one call goes: its URL, its headers (credentials included) and the error context."""

    url: str
    headers: Mapping[str, str] = field(repr=False)
    errors: ErrorContext = field(repr=False)


@dataclass(slots=True)
class UpstreamResponse:
    """A complete upstream answer, translated to OpenAI's shape."""

    body: JSON
    # upstream headers worth keeping (``x-ratelimit-remaining-*`` for metrics), lower-cased
    headers: Mapping[str, str] = field(default_factory=dict)


class Adapter(Protocol):
    """What every provider adapter implements."""

    name: str
    #: endpoints this provider serves natively: a subset of {CHAT, COMPLETIONS, EMBEDDINGS}
    endpoints: frozenset[str]

    def prepare(self, deployment: Deployment) -> Any:
        """Precompute what does not change per request (URLs, headers). Pure; runs at compile time."""
        ...

    async def chat(self, http: HttpClient, request: UpstreamRequest) -> UpstreamResponse: ...

    def chat_stream(self, http: HttpClient, request: UpstreamRequest) -> AsyncIterator[JSON]: ...

    async def completion(self, http: HttpClient, request: UpstreamRequest) -> UpstreamResponse: ...

    def completion_stream(self, http: HttpClient, request: UpstreamRequest) -> AsyncIterator[JSON]: ...

    async def embedding(self, http: HttpClient, request: UpstreamRequest) -> UpstreamResponse: ...


def speaks_natively(adapter: Adapter, deployment: Deployment, api: str) -> bool:
    """Whether ``deployment`` gets a request of the client API ``api`` (``"messages"``,
    ``"responses"``) as it is, rather than the chat translation.

    An adapter whose answer depends on the model (Claude on Vertex AI or Bedrock, say) decides per
    deployment with ``native_for(deployment, api)``; the others list ``native_apis``.
    """
    native_for = getattr(adapter, "native_for", None)
    if native_for is not None:
        return bool(native_for(deployment, api))
    return api in getattr(adapter, "native_apis", ())


_REGISTRY: dict[str, Adapter] = {}
_ALIASES: dict[str, str] = {}


def register(adapter: Adapter, *aliases: str) -> Adapter:
    """Make ``adapter`` available under its name (and aliases) to configs and the SDK."""
    _REGISTRY[adapter.name] = adapter
    for alias in aliases:
        _ALIASES[alias] = adapter.name
    return adapter


_OPENAI = "routerd.providers.openai"
_PRESETS = "routerd.providers.presets"

#: The module that registers each built-in adapter, by canonical name (the values of
#: :data:`routerd.providers.infer.PROVIDER_PREFIXES`). A module is imported when one of its adapters is
#: first asked for, so a routing file of mock deployments never loads the Bedrock or Vertex code; a
#: name not listed here loads every built-in module (:mod:`routerd.providers.builtin`).
#: tests/providers/test_registry.py checks that each module registers the names listed for it.
BUILTIN_MODULES: Mapping[str, str] = {
    **dict.fromkeys(
        (
            "openai",
            "text-completion-openai",
            "hosted_vllm",
            "groq",
            "mistral",
            "deepseek",
            "together_ai",
            "fireworks_ai",
            "openrouter",
            "perplexity",
            "xai",
            "ollama",
            "lm_studio",
        ),
        _OPENAI,
    ),
    **dict.fromkeys(
        (
            "cerebras",
            "github",
            "nvidia_nim",
            "cloudflare",
            "sambanova",
            "deepinfra",
            "novita",
            "nebius",
            "hyperbolic",
            "lambda_ai",
            "zai",
            "dashscope",
            "moonshot",
            "featherless_ai",
            "custom",
        ),
        _PRESETS,
    ),
    "azure": "routerd.providers.azure",
    "azure_text": "routerd.providers.azure",
    "mock": "routerd.providers.mock",
    "anthropic": "routerd.providers.anthropic",
    "gemini": "routerd.providers.gemini",
    "vertex_ai": "routerd.providers.vertex",
    "bedrock": "routerd.providers.bedrock",
    "sagemaker": "routerd.providers.sagemaker",
    "sagemaker_chat": "routerd.providers.sagemaker",
    "cohere": "routerd.providers.cohere",
}


def canonical_provider(name: str) -> str | None:
    """The registered name for a provider prefix, or None when routerd has no such provider."""
    found = _registered(name)
    if found is None:
        _load_for(name)
        found = _registered(name)
    return found


def get_adapter(name: str) -> Adapter:
    """The adapter registered under ``name`` (or one of its aliases). KeyError if none."""
    canonical = canonical_provider(name)
    if canonical is None:
        raise KeyError(name)
    return _REGISTRY[canonical]


def provider_names() -> list[str]:
    """Every accepted provider prefix, aliases included."""
    _ensure_loaded()
    return sorted({*_REGISTRY, *_ALIASES})


def _registered(name: str) -> str | None:
    if name in _REGISTRY:
        return name
    return _ALIASES.get(name)


def _load_for(name: str) -> None:
    """Import the built-in module that registers ``name`` (every one when it is not a known prefix)."""
    from routerd.providers.infer import PROVIDER_PREFIXES

    module = BUILTIN_MODULES.get(PROVIDER_PREFIXES.get(name, name))
    if module is None:
        _ensure_loaded()
    else:
        _import_adapters(module)


_loaded = False


def _ensure_loaded() -> None:
    # Adapters register themselves on import; importing the package that lists them is enough.
    global _loaded
    if not _loaded:
        _loaded = True
        _import_adapters("routerd.providers.builtin")


def _import_adapters(module: str) -> None:
    """Import an adapter module; adapters registered before it (a test's, a user's) keep their names."""
    import importlib
    import sys

    if module in sys.modules:
        return
    before = dict(_REGISTRY)
    importlib.import_module(module)
    _REGISTRY.update(before)


class ParamPolicy:
    """Which OpenAI parameters a provider accepts, and what to do with the others.

    With ``drop_params`` the unsupported ones are removed; without it the call fails with a 400 that
    names the parameter and the provider, before anything is sent.
    """

    def __init__(self, provider: str, unsupported: frozenset[str]) -> None:
        self.provider = provider
        self.unsupported = unsupported

    def apply(self, body: JSON, drop_params: bool, model: str | None = None) -> JSON:
        present = [key for key in body if key in self.unsupported and body[key] is not None]
        if not present:
            return body
        if drop_params:
            return {k: v for k, v in body.items() if k not in self.unsupported}
        raise UnsupportedParamsError(
            f"{self.provider} does not support parameter(s) {', '.join(sorted(present))}; "
            "remove them or set drop_params: true",
            llm_provider=self.provider,
            model=model,
            param=sorted(present)[0],
        )


class BaseAdapter:
    """Shared behaviour: a chat-only provider serves ``/v1/completions`` through chat.

    The prompt is sent as a user message and the chat answer is returned in ``text_completion`` shape.
    Subclasses with a native completions endpoint override :meth:`completion`.
    """

    # an instance-level annotation (not ClassVar) so subclasses satisfy the Adapter protocol's ``name``
    name: str = ""
    endpoints: frozenset[str] = frozenset({CHAT})

    def prepare(self, deployment: Deployment) -> Any:
        return None

    async def chat(self, http: HttpClient, request: UpstreamRequest) -> UpstreamResponse:
        raise _unsupported(self.name, CHAT)

    def chat_stream(self, http: HttpClient, request: UpstreamRequest) -> AsyncIterator[JSON]:
        raise _unsupported(self.name, "streamed chat")

    async def completion(self, http: HttpClient, request: UpstreamRequest) -> UpstreamResponse:
        # one chat call per prompt (concurrently), answers converted with chat_to_text_completion
        from routerd.providers.textcompat import complete_via_chat

        return await complete_via_chat(self, http, request)

    def completion_stream(self, http: HttpClient, request: UpstreamRequest) -> AsyncIterator[JSON]:
        # chunks converted with chat_chunk_to_text_chunk; one id and one summed usage chunk
        from routerd.providers.textcompat import stream_via_chat

        return stream_via_chat(self, http, request)

    async def embedding(self, http: HttpClient, request: UpstreamRequest) -> UpstreamResponse:
        raise _unsupported(self.name, EMBEDDINGS)

    async def moderation(self, http: HttpClient, request: UpstreamRequest) -> UpstreamResponse:
        raise _unsupported(self.name, MODERATIONS)

    async def image_generation(self, http: HttpClient, request: UpstreamRequest) -> UpstreamResponse:
        raise _unsupported(self.name, "image generation")

    async def rerank(self, http: HttpClient, request: UpstreamRequest) -> UpstreamResponse:
        raise _unsupported(self.name, RERANK)

    async def speech(self, http: HttpClient, request: UpstreamRequest) -> UpstreamResponse:
        raise _unsupported(self.name, "audio speech")

    async def transcription(self, http: HttpClient, request: UpstreamRequest) -> UpstreamResponse:
        raise _unsupported(self.name, "audio transcriptions")

    async def image_edit(self, http: HttpClient, request: UpstreamRequest) -> UpstreamResponse:
        raise _unsupported(self.name, "image edits")

    def completion_calls(self, deployment: Deployment, body: JSON) -> int:
        """Upstream calls :meth:`completion` makes for ``body``: one per prompt when served through chat."""
        if COMPLETIONS in self.endpoints:
            return 1
        from routerd.providers.textcompat import prompt_count

        return prompt_count(body)


def _with_body(request: UpstreamRequest, body: JSON) -> UpstreamRequest:
    from dataclasses import replace

    return replace(request, body=body)


def _unsupported(provider: str, what: str) -> UnsupportedParamsError:
    return UnsupportedParamsError(f"provider {provider} does not support {what}", llm_provider=provider)


# Resolves a provider for a bare model name ("gpt-4o" -> "openai"); filled by routerd.providers.infer.
InferFn = Callable[[str], str | None]
