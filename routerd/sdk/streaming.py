"""Stream objects returned with ``stream=True``, and :func:`stream_chunk_builder`.

The router yields OpenAI chunk dicts from an async iterator. :class:`AsyncStreamWrapper` (from
``acompletion``) converts them on the caller's loop; :class:`SyncStreamWrapper` (from ``completion``)
pulls each chunk from the SDK's background loop, so a synchronous ``for`` loop reads a stream that
lives on that loop. Both close the upstream connection when closed, when used as a context manager,
when iteration ends, or (sync) when the wrapper is garbage-collected half-read.

Chunks that carry no choices are normalised for the usual ``chunk.choices[0].delta.content`` loop: the
final usage chunk (``stream_options={"include_usage": True}``) gets one empty choice, and chunks with
neither choices nor usage (Azure's leading ``prompt_filter_results`` chunk) are skipped.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Generic, Protocol, TypeVar

from routerd.sdk.errors import as_sdk_error
from routerd.sdk.loop import BackgroundLoop
from routerd.sdk.types import (
    ChatCompletionMessageToolCall,
    Choices,
    Function,
    FunctionCall,
    Message,
    ModelResponse,
    ModelResponseStream,
    OpenAIObject,
    StreamingChoices,
    TextChoices,
    TextCompletionResponse,
    Usage,
    build,
)
from routerd.tokens import count_message_tokens, count_prompt_tokens, estimate_tokens

__all__ = [
    "AsyncStreamWrapper",
    "CustomStreamWrapper",
    "SyncStreamWrapper",
    "chat_chunk",
    "stream_chunk_builder",
    "text_chunk",
]

Chunk = TypeVar("Chunk", bound=OpenAIObject)


def chat_chunk(data: Mapping[str, Any]) -> ModelResponseStream | None:
    """A chat chunk object, or None for a chunk with nothing for the caller (see the module doc)."""
    chunk = build(ModelResponseStream, data)
    if not chunk.choices:
        if chunk.usage is None:
            return None
        chunk.choices = [StreamingChoices()]
    return chunk


def text_chunk(data: Mapping[str, Any]) -> TextCompletionResponse | None:
    """A text-completion chunk object, or None for a chunk with nothing for the caller."""
    chunk = build(TextCompletionResponse, data)
    if not chunk.choices:
        if chunk.usage is None:
            return None
        chunk.choices = [TextChoices()]
    return chunk


class StreamObserver(Protocol):
    """Told about a stream's chunks and its end (the SDK's callbacks; see :mod:`routerd.integrations.callbacks`)."""

    async def stream_event(self, chunk: Any) -> None: ...
    async def succeeded(self, response: Any, *, cost: float | None = None) -> None: ...
    async def failed(self, exc: BaseException) -> None: ...


def _assembled(chunks: list[Any]) -> Any:
    """The complete response a stream added up to (chat and text streams), else the list of chunks."""
    if chunks and all(isinstance(c, ModelResponseStream | TextCompletionResponse) for c in chunks):
        return stream_chunk_builder(chunks)
    return chunks


class CustomStreamWrapper(Generic[Chunk]):
    """What ``stream=True`` returns. ``model`` is the requested model; ``_hidden_params`` tells how the
    call was routed (as on complete responses)."""

    def __init__(
        self,
        source: AsyncIterator[dict[str, Any]],
        convert: Callable[[Mapping[str, Any]], Chunk | None],
        *,
        model: str,
        hidden_params: dict[str, Any] | None = None,
        observer: StreamObserver | None = None,
    ) -> None:
        self._source = source
        self._convert = convert
        self._closed = False
        self.model = model
        self._hidden_params: dict[str, Any] = hidden_params or {}
        self._observer = observer
        self._seen: list[Any] = []  # chunks kept for the observer's final response (only with one)

    @property
    def closed(self) -> bool:
        return self._closed

    async def _next(self) -> Chunk:
        """The next chunk worth returning; StopAsyncIteration (after closing) at the end."""
        if self._closed:
            raise StopAsyncIteration
        try:
            while True:
                chunk = self._convert(await self._source.__anext__())
                if chunk is not None:
                    break
        except StopAsyncIteration:
            await self._aclose_source()
            if self._observer is not None:
                await self._observer.succeeded(_assembled(self._seen), cost=None)
            raise
        except BaseException as exc:
            await self._aclose_source()
            as_sdk_error(exc)  # a stream's errors are the SDK's too (openai's classes)
            if self._observer is not None and isinstance(exc, Exception):
                await self._observer.failed(exc)
            raise
        with contextlib.suppress(AttributeError, TypeError):
            setattr(chunk, "_hidden_params", self._hidden_params)  # noqa: B010  (pydantic private attr)
        if self._observer is not None:
            self._seen.append(chunk)
            await self._observer.stream_event(chunk)
        return chunk

    async def _aclose_source(self) -> None:
        if self._closed:
            return
        self._closed = True
        aclose = getattr(self._source, "aclose", None)
        if aclose is not None:
            await aclose()


class AsyncStreamWrapper(CustomStreamWrapper[Chunk]):
    """``async for chunk in await acompletion(..., stream=True)``."""

    def __aiter__(self) -> AsyncStreamWrapper[Chunk]:
        return self

    async def __anext__(self) -> Chunk:
        return await self._next()

    async def aclose(self) -> None:
        """Stop reading and close the upstream connection."""
        await self._aclose_source()

    async def __aenter__(self) -> AsyncStreamWrapper[Chunk]:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class SyncStreamWrapper(CustomStreamWrapper[Chunk]):
    """``for chunk in completion(..., stream=True)``; chunks are read on the SDK's background loop."""

    def __init__(
        self,
        source: AsyncIterator[dict[str, Any]],
        convert: Callable[[Mapping[str, Any]], Chunk | None],
        *,
        loop: BackgroundLoop,
        model: str,
        hidden_params: dict[str, Any] | None = None,
        observer: StreamObserver | None = None,
    ) -> None:
        super().__init__(source, convert, model=model, hidden_params=hidden_params, observer=observer)
        self._loop = loop

    def __iter__(self) -> SyncStreamWrapper[Chunk]:
        return self

    def __next__(self) -> Chunk:
        if self._closed:
            raise StopIteration
        try:
            return self._loop.run(self._next())
        except StopAsyncIteration:
            raise StopIteration from None

    def close(self) -> None:
        """Stop reading and close the upstream connection."""
        if not self._closed:
            self._loop.run(self._aclose_source())

    def __enter__(self) -> SyncStreamWrapper[Chunk]:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __del__(self) -> None:
        # A caller that breaks out of its loop and drops the stream must not leave the upstream
        # connection open: close it on the loop, without waiting (this may run in any thread).
        if not getattr(self, "_closed", True):
            self._loop.submit(self._aclose_source())


# --- rebuilding a complete response from chunks ------------------------------------------------------


def stream_chunk_builder(
    chunks: Iterable[ModelResponseStream | TextCompletionResponse | Mapping[str, Any]],
    messages: list[Mapping[str, Any]] | None = None,
    *,
    prompt: Any = None,
) -> ModelResponse | TextCompletionResponse | None:
    """The complete response a list of streamed chunks adds up to; None when ``chunks`` is empty.

    Chat chunks make a :class:`ModelResponse`: content and tool-call arguments are concatenated per
    choice. Text-completion chunks (``object: text_completion``, choices with ``text``) make a
    :class:`TextCompletionResponse` with each choice's text. Usage is the stream's usage chunk when
    there was one; else it is estimated (see :mod:`routerd.tokens`): the prompt from ``messages``
    (chat) or ``prompt`` (text completion), the completion from the text, tool-call names and
    arguments the stream produced.
    """
    items = [c.model_dump() if isinstance(c, OpenAIObject) else dict(c) for c in chunks]
    if not items:
        return None
    if _is_text_stream(items):
        return _text_response(items, prompt)
    head = next((c for c in items if c.get("id")), items[0])
    choices: dict[int, _ChoiceParts] = {}
    for chunk in items:
        for choice in chunk.get("choices") or ():
            parts = choices.setdefault(int(choice.get("index") or 0), _ChoiceParts())
            parts.add(choice)
    built = [parts.choice(index) for index, parts in sorted(choices.items())]
    usage = _stream_usage(items)
    if usage is None:
        prompt_tokens = count_message_tokens(messages) if messages else 0
        completion = sum(parts.estimated_tokens() for parts in choices.values())
        usage = _usage(prompt_tokens, completion)
    return ModelResponse(
        id=head.get("id") or "",
        created=head.get("created") or 0,
        model=head.get("model"),
        choices=built,
        usage=build(Usage, usage),
        system_fingerprint=head.get("system_fingerprint"),
    )


def _is_text_stream(items: list[dict[str, Any]]) -> bool:
    # a text-completion chunk says so in ``object``; without it, its choices carry ``text``, not ``delta``
    if any(c.get("object") == "text_completion" for c in items):
        return True
    kinds = {
        "text" in choice for c in items for choice in c.get("choices") or () if isinstance(choice, Mapping)
    }
    return kinds == {True}


def _stream_usage(items: list[dict[str, Any]]) -> dict[str, Any] | None:
    # the last usage reported wins (some providers report a running total on several chunks)
    usage: dict[str, Any] | None = None
    for chunk in items:
        if chunk.get("usage"):
            usage = chunk["usage"]
    return usage


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _text_response(items: list[dict[str, Any]], prompt: Any) -> TextCompletionResponse:
    head = next((c for c in items if c.get("id")), items[0])
    texts: dict[int, list[str]] = {}
    finish: dict[int, str | None] = {}
    for chunk in items:
        for choice in chunk.get("choices") or ():
            index = int(choice.get("index") or 0)
            texts.setdefault(index, [])
            if choice.get("text"):
                texts[index].append(str(choice["text"]))
            if choice.get("finish_reason"):
                finish[index] = choice["finish_reason"]
    built = [
        TextChoices(index=index, text="".join(parts), finish_reason=finish.get(index))
        for index, parts in sorted(texts.items())
    ]
    usage = _stream_usage(items)
    if usage is None:
        completion = sum(estimate_tokens(choice.text) for choice in built)
        usage = _usage(count_prompt_tokens(prompt), completion)
    return TextCompletionResponse(
        id=head.get("id") or "",
        created=head.get("created") or 0,
        model=head.get("model"),
        choices=built,
        usage=build(Usage, usage),
        system_fingerprint=head.get("system_fingerprint"),
    )


class _ChoiceParts:
    """The pieces of one choice collected from a stream."""

    def __init__(self) -> None:
        self.role = "assistant"
        self.text: list[str] = []
        self.finish_reason: str | None = None
        self.tool_calls: dict[int, dict[str, Any]] = {}
        self.function_call: dict[str, str] | None = None

    def add(self, choice: Mapping[str, Any]) -> None:
        delta = choice.get("delta") or {}
        if delta.get("role"):
            self.role = delta["role"]
        if delta.get("content"):
            self.text.append(delta["content"])
        if choice.get("finish_reason"):
            self.finish_reason = choice["finish_reason"]
        for piece in delta.get("tool_calls") or ():
            call = self.tool_calls.setdefault(
                int(piece.get("index") or 0), {"id": None, "type": "function", "name": None, "arguments": []}
            )
            call["id"] = piece.get("id") or call["id"]
            call["type"] = piece.get("type") or call["type"]
            function = piece.get("function") or {}
            call["name"] = function.get("name") or call["name"]
            if function.get("arguments"):
                call["arguments"].append(function["arguments"])
        legacy = delta.get("function_call")
        if legacy:
            if self.function_call is None:
                self.function_call = {"name": "", "arguments": ""}
            self.function_call["name"] = legacy.get("name") or self.function_call["name"]
            self.function_call["arguments"] += legacy.get("arguments") or ""

    def estimated_tokens(self) -> int:
        """Estimated completion tokens of this choice: its text, tool calls and function call."""
        total = estimate_tokens("".join(self.text))
        for call in self.tool_calls.values():
            total += estimate_tokens(call["name"] or "") + estimate_tokens("".join(call["arguments"]))
        if self.function_call:
            total += estimate_tokens(self.function_call["name"]) + estimate_tokens(
                self.function_call["arguments"]
            )
        return total

    def choice(self, index: int) -> Choices:
        tool_calls = [
            ChatCompletionMessageToolCall(
                id=call["id"],
                type=call["type"],
                function=Function(name=call["name"], arguments="".join(call["arguments"])),
            )
            for _, call in sorted(self.tool_calls.items())
        ]
        message = Message(
            role=self.role,
            content="".join(self.text) if self.text or not tool_calls else None,
            tool_calls=tool_calls or None,
            function_call=FunctionCall(**self.function_call) if self.function_call else None,
        )
        return Choices(index=index, message=message, finish_reason=self.finish_reason)
