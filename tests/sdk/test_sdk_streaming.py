"""Stream wrappers (sync and async) and stream_chunk_builder."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from typing import Any

import pytest

import routerd
from routerd.providers import shapes
from routerd.sdk.loop import background_loop
from routerd.sdk.streaming import (
    AsyncStreamWrapper,
    SyncStreamWrapper,
    chat_chunk,
    stream_chunk_builder,
    text_chunk,
)


def chunks_of(
    text: str, *, include_usage: bool = True, tool: shapes.ToolCall | None = None
) -> list[dict[str, Any]]:
    answer = shapes.Answer(content=text, tool_calls=(tool,) if tool else ())
    return list(
        shapes.chat_stream(
            completion_id="chatcmpl-s",
            created=1,
            model="gpt-4o",
            answers=[answer],
            usage_=shapes.usage(5, 3),
            include_usage=include_usage,
        )
    )


class Source:
    """An async chunk source that records whether it was closed; can fail after N chunks."""

    def __init__(self, chunks: list[dict[str, Any]], fail_after: int | None = None) -> None:
        self.chunks = list(chunks)
        self.fail_after = fail_after
        self.sent = 0
        self.closed = False

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self

    async def __anext__(self) -> dict[str, Any]:
        if self.fail_after is not None and self.sent >= self.fail_after:
            raise routerd.APIConnectionError("upstream went away")
        if self.sent >= len(self.chunks):
            raise StopAsyncIteration
        self.sent += 1
        return self.chunks[self.sent - 1]

    async def aclose(self) -> None:
        self.closed = True


def test_usage_only_chunk_gets_an_empty_choice_and_empty_chunks_are_skipped() -> None:
    *_, last = chunks_of("hi")
    assert last["choices"] == []
    chunk = chat_chunk(last)
    assert chunk is not None and chunk.choices[0].delta.content is None
    assert chunk.usage is not None and chunk.usage.total_tokens == 8
    azure_head = {
        "id": "",
        "object": "",
        "created": 0,
        "model": "",
        "choices": [],
        "prompt_filter_results": [],
    }
    assert chat_chunk(azure_head) is None
    text = text_chunk({"id": "c", "object": "text_completion", "choices": [], "usage": shapes.usage(1, 1)})
    assert text is not None and text.choices[0].text == ""


async def test_async_wrapper_yields_chunks_and_closes_the_source_at_the_end() -> None:
    source = Source(chunks_of("one two"))
    stream = AsyncStreamWrapper(source, chat_chunk, model="gpt-4o")
    pieces = [chunk.choices[0].delta.content async for chunk in stream]
    assert "".join(p for p in pieces if p) == "one two"
    assert source.closed and stream.closed


async def test_async_wrapper_closes_the_source_when_closed_early_or_on_error() -> None:
    source = Source(chunks_of("a b c d"))
    async with AsyncStreamWrapper(source, chat_chunk, model="m") as stream:
        await stream.__anext__()
    assert source.closed
    failing = Source(chunks_of("a b c"), fail_after=2)
    stream = AsyncStreamWrapper(failing, chat_chunk, model="m")
    with pytest.raises(routerd.APIConnectionError):
        async for _ in stream:
            pass
    assert failing.closed


def test_sync_wrapper_reads_on_the_background_loop() -> None:
    source = Source(chunks_of("sync stream"))
    stream = SyncStreamWrapper(source, chat_chunk, loop=background_loop, model="m")
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream)
    assert text == "sync stream"
    assert source.closed
    with pytest.raises(StopIteration):
        next(stream)


def test_sync_wrapper_closes_on_context_exit_and_on_garbage_collection() -> None:
    source = Source(chunks_of("a b c"))
    with SyncStreamWrapper(source, chat_chunk, loop=background_loop, model="m") as stream:
        next(stream)
    assert source.closed
    dropped = Source(chunks_of("a b c"))
    half_read = SyncStreamWrapper(dropped, chat_chunk, loop=background_loop, model="m")
    next(half_read)
    del half_read
    gc.collect()
    background_loop.run(_settle())
    assert dropped.closed


async def _settle() -> None:
    return None


def test_stream_chunk_builder_rebuilds_content_usage_and_tool_calls() -> None:
    chunks = [c for c in (chat_chunk(raw) for raw in chunks_of("Hello there")) if c is not None]
    response = stream_chunk_builder(chunks)
    assert response is not None
    assert response.choices[0].message.content == "Hello there"
    assert response.choices[0].finish_reason == "stop"
    assert response.usage is not None and response.usage.total_tokens == 8
    tool = shapes.ToolCall("get_weather", '{"location": "Tokyo, Japan"}', "call_9")
    built = stream_chunk_builder(
        chunks_of("", include_usage=False, tool=tool), messages=[{"role": "user", "content": "hi"}]
    )
    assert built is not None
    call = built.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert (call.id, call.function.name, call.function.arguments) == ("call_9", "get_weather", tool.arguments)
    assert built.usage is not None and built.usage.prompt_tokens > 0  # estimated from the messages
    assert stream_chunk_builder([]) is None
