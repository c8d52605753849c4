"""``routerd.completion()`` and friends: one function for every provider, OpenAI-shaped results.

Each function resolves its arguments into a call on the same router the daemon runs
(:mod:`routerd.sdk.calls`), then returns SDK objects (:mod:`routerd.sdk.types`). The synchronous
functions run on the SDK's background event loop and work the same inside a running loop (Jupyter);
the ``a``-prefixed ones run on the caller's loop. Errors are :mod:`routerd.errors` classes, raised as
their SDK classes, which also subclass the ``openai`` package's (:mod:`routerd.sdk.errors`), so
``except openai.RateLimitError`` catches them too.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from routerd.providers.base import CHAT, COMPLETIONS, EMBEDDINGS
from routerd.sdk.calls import finish_async, finish_sync, prepare, split_call_args
from routerd.sdk.engine import CallSpec
from routerd.sdk.errors import raises_sdk_errors
from routerd.sdk.streaming import AsyncStreamWrapper, SyncStreamWrapper
from routerd.sdk.types import EmbeddingResponse, ModelResponse, ModelResponseStream, TextCompletionResponse

__all__ = [
    "acompletion",
    "aembedding",
    "atext_completion",
    "completion",
    "embedding",
    "text_completion",
]

ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh", "default"]


def _spec(endpoint: str, args: dict[str, Any]) -> CallSpec:
    """The call for a function's ``locals()``: its named arguments and its ``**kwargs``."""
    model = args.pop("model")
    kwargs = args.pop("kwargs")
    body, options = split_call_args({**args, **kwargs})
    return prepare(endpoint, model, body, options)


@raises_sdk_errors
def completion(
    model: str,
    messages: list[Any] | None = None,
    timeout: Any = None,
    temperature: float | None = None,
    top_p: float | None = None,
    n: int | None = None,
    stream: bool | None = None,
    stream_options: dict[str, Any] | None = None,
    stop: Any = None,
    max_completion_tokens: int | None = None,
    max_tokens: int | None = None,
    modalities: list[Any] | None = None,
    prediction: Any = None,
    audio: Any = None,
    presence_penalty: float | None = None,
    frequency_penalty: float | None = None,
    logit_bias: dict[str, Any] | None = None,
    user: str | None = None,
    reasoning_effort: ReasoningEffort | None = None,
    response_format: dict[str, Any] | type[BaseModel] | None = None,
    seed: int | None = None,
    tools: list[Any] | None = None,
    tool_choice: str | dict[str, Any] | None = None,
    logprobs: bool | None = None,
    top_logprobs: int | None = None,
    parallel_tool_calls: bool | None = None,
    deployment_id: str | None = None,
    extra_headers: dict[str, str] | None = None,
    functions: list[Any] | None = None,
    function_call: str | dict[str, Any] | None = None,
    base_url: str | None = None,
    api_version: str | None = None,
    api_key: str | None = None,
    model_list: list[dict[str, Any]] | None = None,
    thinking: dict[str, Any] | None = None,
    **kwargs: Any,
) -> ModelResponse | SyncStreamWrapper[ModelResponseStream]:
    """A chat completion from any provider.

    ``model`` is ``provider/model`` or a bare name routerd recognises (``gpt-4o``, ``claude-...``,
    ``gemini-...``, fine-tuned ``ft:...`` ids); ``azure/<deployment>`` calls an Azure deployment.
    Credentials come from ``api_key`` / ``base_url`` (or ``api_base``) / ``api_version``, else the
    provider's environment variables. Other keyword arguments:

    * ``mock_response="..."``: answer without any network (the built-in mock provider);
    * ``num_retries``, ``fallbacks=[model, ...]``, ``context_window_fallbacks``: routing controls;
    * ``timeout``: seconds (or an ``httpx.Timeout``) for the whole call, retries included;
    * ``model_list=[...]``: route over these deployments (LiteLLM's format) instead;
    * anything else is a provider-specific parameter and is sent in the request body.

    Returns a :class:`ModelResponse`, or with ``stream=True`` an iterator of
    :class:`ModelResponseStream` chunks.
    """
    return finish_sync(_spec(CHAT, dict(locals())))  # type: ignore[no-any-return]


@raises_sdk_errors
async def acompletion(
    model: str,
    messages: list[Any] | None = None,
    functions: list[Any] | None = None,
    function_call: str | dict[str, Any] | None = None,
    timeout: Any = None,
    temperature: float | None = None,
    top_p: float | None = None,
    n: int | None = None,
    stream: bool | None = None,
    stream_options: dict[str, Any] | None = None,
    stop: Any = None,
    max_tokens: int | None = None,
    max_completion_tokens: int | None = None,
    modalities: list[Any] | None = None,
    prediction: Any = None,
    audio: Any = None,
    presence_penalty: float | None = None,
    frequency_penalty: float | None = None,
    logit_bias: dict[str, Any] | None = None,
    user: str | None = None,
    response_format: dict[str, Any] | type[BaseModel] | None = None,
    seed: int | None = None,
    tools: list[Any] | None = None,
    tool_choice: str | dict[str, Any] | None = None,
    parallel_tool_calls: bool | None = None,
    logprobs: bool | None = None,
    top_logprobs: int | None = None,
    deployment_id: str | None = None,
    reasoning_effort: ReasoningEffort | None = None,
    base_url: str | None = None,
    api_version: str | None = None,
    api_key: str | None = None,
    model_list: list[dict[str, Any]] | None = None,
    extra_headers: dict[str, str] | None = None,
    thinking: dict[str, Any] | None = None,
    **kwargs: Any,
) -> ModelResponse | AsyncStreamWrapper[ModelResponseStream]:
    """:func:`completion` on the running event loop; ``stream=True`` gives an async iterator."""
    return await finish_async(_spec(CHAT, dict(locals())))  # type: ignore[no-any-return]


@raises_sdk_errors
def text_completion(
    model: str,
    prompt: str | list[Any] | None = None,
    best_of: int | None = None,
    echo: bool | None = None,
    frequency_penalty: float | None = None,
    logit_bias: dict[str, Any] | None = None,
    logprobs: int | None = None,
    max_tokens: int | None = None,
    n: int | None = None,
    presence_penalty: float | None = None,
    stop: Any = None,
    stream: bool | None = None,
    stream_options: dict[str, Any] | None = None,
    suffix: str | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    user: str | None = None,
    seed: int | None = None,
    timeout: Any = None,
    api_key: str | None = None,
    base_url: str | None = None,
    api_version: str | None = None,
    custom_llm_provider: str | None = None,
    **kwargs: Any,
) -> TextCompletionResponse | SyncStreamWrapper[TextCompletionResponse]:
    """A text completion (OpenAI's ``/v1/completions``): ``response.choices[0].text``.

    ``gpt-3.5-turbo-instruct`` and other completion models are served natively; providers without a
    completions endpoint answer through chat. Same extra keyword arguments as :func:`completion`.
    """
    return finish_sync(_spec(COMPLETIONS, dict(locals())))  # type: ignore[no-any-return]


@raises_sdk_errors
async def atext_completion(
    model: str,
    prompt: str | list[Any] | None = None,
    best_of: int | None = None,
    echo: bool | None = None,
    frequency_penalty: float | None = None,
    logit_bias: dict[str, Any] | None = None,
    logprobs: int | None = None,
    max_tokens: int | None = None,
    n: int | None = None,
    presence_penalty: float | None = None,
    stop: Any = None,
    stream: bool | None = None,
    stream_options: dict[str, Any] | None = None,
    suffix: str | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    user: str | None = None,
    seed: int | None = None,
    timeout: Any = None,
    api_key: str | None = None,
    base_url: str | None = None,
    api_version: str | None = None,
    custom_llm_provider: str | None = None,
    **kwargs: Any,
) -> TextCompletionResponse | AsyncStreamWrapper[TextCompletionResponse]:
    """:func:`text_completion` on the running event loop."""
    return await finish_async(_spec(COMPLETIONS, dict(locals())))  # type: ignore[no-any-return]


@raises_sdk_errors
def embedding(
    model: str,
    input: str | list[Any] | None = None,
    dimensions: int | None = None,
    encoding_format: str | None = None,
    user: str | None = None,
    timeout: Any = None,
    api_key: str | None = None,
    base_url: str | None = None,
    api_version: str | None = None,
    custom_llm_provider: str | None = None,
    **kwargs: Any,
) -> EmbeddingResponse:
    """Embeddings of ``input`` (a string or a list): ``response.data[0].embedding``."""
    return finish_sync(_spec(EMBEDDINGS, dict(locals())))  # type: ignore[no-any-return]


@raises_sdk_errors
async def aembedding(
    model: str,
    input: str | list[Any] | None = None,
    dimensions: int | None = None,
    encoding_format: str | None = None,
    user: str | None = None,
    timeout: Any = None,
    api_key: str | None = None,
    base_url: str | None = None,
    api_version: str | None = None,
    custom_llm_provider: str | None = None,
    **kwargs: Any,
) -> EmbeddingResponse:
    """:func:`embedding` on the running event loop."""
    return await finish_async(_spec(EMBEDDINGS, dict(locals())))  # type: ignore[no-any-return]
