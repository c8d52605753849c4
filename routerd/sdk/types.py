"""The objects the SDK returns: OpenAI-shaped responses with attribute *and* item access.

``response.choices[0].message.content`` and ``response["choices"][0]["message"]["content"]`` read the
same value, ``response.usage.total_tokens`` works, and ``model_dump()`` / ``model_dump_json()`` /
``json()`` give the OpenAI JSON back.

They are pydantic models with ``extra="allow"``: fields routerd does not declare (``refusal``,
``service_tier``, a provider's extras) are kept and readable as attributes too. Measured on the
development machine, validating a typical chat response costs ~7-15 us and a stream chunk ~5 us
(pydantic-core validates in Rust); hand-written attribute-dict objects were no cheaper once a caller
reads ``choices[0].message`` (a Python-level conversion pays per key) and would lose typing,
``model_json_schema`` and the pydantic ecosystem. Either is noise beside one upstream round trip.

Field types are lenient (optional, ``Any`` where providers disagree) because a response that reached
the SDK was already accepted by the router: an unexpected shape must never turn a successful call
into an error. If validation fails anyway, :func:`build` keeps the offending fields unvalidated.
"""

from __future__ import annotations

import builtins
import os
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

__all__ = [
    "ChatCompletionDeltaToolCall",
    "ChatCompletionMessageToolCall",
    "ChoiceLogprobs",
    "Choices",
    "CompletionTokensDetails",
    "Delta",
    "Embedding",
    "EmbeddingResponse",
    "Function",
    "FunctionCall",
    "Message",
    "ModelResponse",
    "ModelResponseStream",
    "OpenAIObject",
    "PromptTokensDetails",
    "StreamingChoices",
    "TextChoices",
    "TextCompletionResponse",
    "Usage",
    "build",
]


class OpenAIObject(BaseModel):
    """Base of every SDK response object: a pydantic model that also reads like a dict."""

    model_config = ConfigDict(extra="allow", protected_namespaces=(), populate_by_name=True)

    def __getitem__(self, key: str) -> Any:
        if not isinstance(key, str) or key.startswith("_"):
            raise KeyError(key)
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None

    def __setitem__(self, key: str, value: Any) -> None:
        setattr(self, key, value)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        return key in type(self).model_fields or key in (self.__pydantic_extra__ or {})

    def get(self, key: str, default: Any = None) -> Any:
        """The field's value, or ``default`` when absent (like ``dict.get``)."""
        try:
            return self[key]
        except KeyError:
            return default

    def json(self, **kwargs: Any) -> builtins.dict[str, Any]:  # type: ignore[override]
        """The plain JSON object, as LiteLLM's ``response.json()`` returns it (``model_dump_json()``
        gives the text)."""
        return self.model_dump(**kwargs)

    def dict(self, **kwargs: Any) -> dict[str, Any]:
        """The plain JSON object (``model_dump``), without pydantic's v1 deprecation warning."""
        return self.model_dump(**kwargs)

    def to_dict(self, **kwargs: Any) -> builtins.dict[str, Any]:
        """Alias of ``model_dump`` (the ``openai`` package's spelling)."""
        return self.model_dump(**kwargs)


_Model = TypeVar("_Model", bound=OpenAIObject)


def build(cls: type[_Model], data: Mapping[str, Any]) -> _Model:
    """``cls`` from an OpenAI JSON object; never fails on an unexpected shape (see the module doc)."""
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        # Keep the offending top-level fields as they came and validate the rest, so that one odd
        # field does not cost attribute access everywhere else.
        odd = {str(error["loc"][0]) for error in exc.errors() if error["loc"]}
    try:
        obj = cls.model_validate({k: v for k, v in data.items() if k not in odd})
    except ValidationError:
        return cls.model_construct(**data)
    for key in odd:
        if key in data:
            setattr(obj, key, data[key])
    return obj


# --- chat ------------------------------------------------------------------------------------------


class Function(OpenAIObject):
    """The function a tool call invokes: ``name`` and ``arguments`` (JSON text)."""

    name: str | None = None
    arguments: str = ""


class FunctionCall(Function):
    """A legacy ``function_call`` of an assistant message."""


class ChatCompletionMessageToolCall(OpenAIObject):
    """One entry of ``message.tool_calls``."""

    id: str | None = None
    type: str = "function"
    function: Function = Field(default_factory=Function)


class Message(OpenAIObject):
    """An assistant message. ``tool_calls`` and ``function_call`` are always present (None if unused)."""

    content: str | list[Any] | None = None
    role: str = "assistant"
    tool_calls: list[ChatCompletionMessageToolCall] | None = None
    function_call: FunctionCall | None = None


class TopLogprob(OpenAIObject):
    token: str = ""
    logprob: float = 0.0
    bytes: list[int] | None = None


class TokenLogprob(TopLogprob):
    top_logprobs: list[TopLogprob] = Field(default_factory=list)


class ChoiceLogprobs(OpenAIObject):
    content: list[TokenLogprob] | None = None
    refusal: list[TokenLogprob] | None = None


class Choices(OpenAIObject):
    """One choice of a chat completion."""

    finish_reason: str | None = None
    index: int = 0
    message: Message = Field(default_factory=Message)
    logprobs: ChoiceLogprobs | None = None


class PromptTokensDetails(OpenAIObject):
    cached_tokens: int | None = None
    audio_tokens: int | None = None


class CompletionTokensDetails(OpenAIObject):
    reasoning_tokens: int | None = None
    audio_tokens: int | None = None
    accepted_prediction_tokens: int | None = None
    rejected_prediction_tokens: int | None = None


class Usage(OpenAIObject):
    """Token usage as the upstream reported it (the mock provider estimates it)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    prompt_tokens_details: PromptTokensDetails | None = None
    completion_tokens_details: CompletionTokensDetails | None = None


class _Routed(OpenAIObject):
    """A complete response; ``_hidden_params`` tells how routerd served it (not part of the JSON):
    ``model_id`` (deployment id), ``custom_llm_provider``, ``api_base``, ``model_group``,
    ``attempts``, ``retries``, ``fallbacks``."""

    _hidden_params: dict[str, Any] = PrivateAttr(default_factory=dict)
    _response_ms: float | None = PrivateAttr(default=None)  # upstream time of the call, milliseconds


class ModelResponse(_Routed):
    """A chat completion (``object: chat.completion``)."""

    id: str = ""
    object: str = "chat.completion"
    created: int = 0
    model: str | None = None
    choices: list[Choices] = Field(default_factory=list)
    usage: Usage | None = None
    system_fingerprint: str | None = None


# --- streaming chat ------------------------------------------------------------------------------


class ChatCompletionDeltaToolCall(OpenAIObject):
    """A piece of a tool call in a stream; pieces with the same ``index`` belong together."""

    index: int = 0
    id: str | None = None
    type: str | None = None
    function: Function = Field(default_factory=Function)


class Delta(OpenAIObject):
    """What one chunk adds to a choice. ``content`` is None when the chunk adds no text."""

    content: str | None = None
    role: str | None = None
    tool_calls: list[ChatCompletionDeltaToolCall] | None = None
    function_call: FunctionCall | None = None


class StreamingChoices(OpenAIObject):
    index: int = 0
    delta: Delta = Field(default_factory=Delta)
    finish_reason: str | None = None
    logprobs: ChoiceLogprobs | None = None


class ModelResponseStream(_Routed):
    """One chunk of a streamed chat completion (``object: chat.completion.chunk``).

    ``choices`` is never empty: OpenAI's final usage-only chunk (``stream_options={"include_usage":
    True}``) arrives with ``choices: []``, and the SDK gives it one empty choice so that the usual
    ``chunk.choices[0].delta.content`` loop reads ``None`` there instead of raising IndexError.
    """

    id: str = ""
    object: str = "chat.completion.chunk"
    created: int = 0
    model: str | None = None
    choices: list[StreamingChoices] = Field(default_factory=list)
    usage: Usage | None = None
    system_fingerprint: str | None = None


# --- text completions and embeddings --------------------------------------------------------------


class TextChoices(OpenAIObject):
    text: str = ""
    index: int = 0
    logprobs: Any = None
    finish_reason: str | None = None


class TextCompletionResponse(_Routed):
    """A text completion (``object: text_completion``); streamed chunks have the same shape."""

    id: str = ""
    object: str = "text_completion"
    created: int = 0
    model: str | None = None
    choices: list[TextChoices] = Field(default_factory=list)
    usage: Usage | None = None
    system_fingerprint: str | None = None


class Embedding(OpenAIObject):
    object: str = "embedding"
    index: int = 0
    embedding: Any = None  # list[float], or base64 text with encoding_format="base64" (not walked)


class EmbeddingResponse(_Routed):
    """An embeddings list: ``data[i].embedding`` holds the vector (or base64 text)."""

    object: str = "list"
    model: str | None = None
    data: list[Embedding] = Field(default_factory=list)
    usage: Usage | None = None


class FileContent(bytes):
    """A stored file's bytes, shaped like the ``openai`` package's binary response (which LiteLLM's
    ``file_content()`` returns): ``.content``, ``.text``, ``.read()``, ``.write_to_file(path)``.
    It is ``bytes`` too, so code comparing it with bytes keeps working."""

    @property
    def content(self) -> bytes:
        return bytes(self)

    @property
    def text(self) -> str:
        return self.decode("utf-8")

    def read(self) -> bytes:
        return bytes(self)

    def json(self) -> Any:
        import orjson

        return orjson.loads(bytes(self))

    def write_to_file(self, file: str | os.PathLike[str]) -> None:
        with open(file, "wb") as handle:
            handle.write(self)
