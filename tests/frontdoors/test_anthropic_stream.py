"""Anthropic stream events from chat chunks, read back with the official ``anthropic`` package.

The bytes go through the SDK's own SSE decoder, every event is validated as a
``RawMessageStreamEvent``, and the SDK's accumulator rebuilds the final ``Message`` from them, as
``client.messages.stream(...)`` does.
"""

from __future__ import annotations

from typing import Any

import orjson
from anthropic._streaming import SSEDecoder
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message, RawMessageStreamEvent
from pydantic import TypeAdapter

from routerd.errors import RateLimitError
from routerd.frontdoors.anthropic_messages_stream import (
    PING_EVENT,
    MessagesStreamTranslator,
    anthropic_events,
)
from tests.frontdoors.conftest import ChunkStream, collect, load_lines

EVENT: TypeAdapter[Any] = TypeAdapter(RawMessageStreamEvent)


def decode(body: bytes) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) of each SSE event, as the anthropic SDK's decoder reads them."""
    return [(sse.event or "", orjson.loads(sse.data)) for sse in SSEDecoder().iter_bytes(iter([body]))]


def final_message(events: list[tuple[str, dict[str, Any]]]) -> Message:
    snapshot: Any = None
    json_bufs: dict[int, bytes] = {}
    for name, data in events:
        assert name == data["type"]
        if name == "ping":
            continue
        event = EVENT.validate_python(data)
        snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=json_bufs)
    return Message.model_validate(snapshot.model_dump())


async def translate(chunks: list[dict[str, Any]], **options: Any) -> tuple[bytes, ChunkStream]:
    stream = ChunkStream(chunks)
    body = await collect(anthropic_events(stream, MessagesStreamTranslator(**options)))
    return body, stream


async def test_stream_with_thinking_text_and_two_tool_calls() -> None:
    body, stream = await translate(load_lines("anthropic/stream_chunks.jsonl"), input_tokens=7)
    events = decode(body)
    names = [name for name, _ in events]
    assert names == [
        "message_start",
        "ping",
        "content_block_start",  # thinking
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",  # text
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",  # tool_use call_1
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",  # tool_use call_2
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert [data["index"] for name, data in events if name == "content_block_start"] == [0, 1, 2, 3]
    assert events[0][1]["message"]["usage"] == {"input_tokens": 7, "output_tokens": 0}
    message = final_message(events)
    assert message.id == "msg_S1"
    assert message.stop_reason == "tool_use"
    assert message.usage.input_tokens == 50 and message.usage.output_tokens == 25
    assert [block.type for block in message.content] == ["thinking", "text", "tool_use", "tool_use"]
    assert message.content[0].thinking == "Need weather."  # type: ignore[union-attr]
    assert message.content[1].text == "Let me check."  # type: ignore[union-attr]
    assert message.content[2].input == {"city": "Paris"}  # type: ignore[union-attr]
    assert message.content[3].input == {"city": "Lyon"}  # type: ignore[union-attr]
    assert stream.closed


def _chunk(delta: dict[str, Any], finish: str | None = None, **choice: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-x",
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, **choice}],
    }


async def test_stop_sequence_and_signature_from_an_anthropic_upstream() -> None:
    chunks = [
        _chunk({"role": "assistant", "content": ""}),
        _chunk({"reasoning_content": "hmm"}),
        _chunk({"thinking_blocks": [{"type": "thinking", "thinking": "hmm", "signature": "SIG"}]}),
        _chunk({"thinking_blocks": [{"type": "redacted_thinking", "data": "opaque"}]}),
        _chunk({"content": "Hello"}),
        _chunk({}, "stop", stop_reason="END"),
    ]
    body, _ = await translate(chunks, stop_sequences=["END"], model="public")
    message = final_message(decode(body))
    assert message.model == "public"
    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "END")
    assert [block.type for block in message.content] == ["thinking", "redacted_thinking", "text"]
    assert message.content[0].signature == "SIG"  # type: ignore[union-attr]
    assert message.content[1].data == "opaque"  # type: ignore[union-attr]
    # no usage chunk came: the estimate stands in for the input tokens
    assert message.usage.output_tokens == 0


async def test_consecutive_thinking_blocks_stay_apart_and_whole_blocks_keep_their_text() -> None:
    chunks = [
        _chunk({"reasoning_content": "first"}),
        _chunk({"thinking_blocks": [{"type": "thinking", "thinking": "first", "signature": "S1"}]}),
        _chunk({"reasoning_content": "second"}),
        _chunk({"thinking_blocks": [{"type": "thinking", "thinking": "second", "signature": "S2"}]}),
        _chunk({"thinking_blocks": [{"type": "thinking", "thinking": "whole", "signature": "S3"}]}),
        _chunk({"refusal": "I can't help with that."}),
        _chunk({}, "content_filter"),
    ]
    body, _ = await translate(chunks)
    message = final_message(decode(body))
    thinking = [(b.thinking, b.signature) for b in message.content if b.type == "thinking"]
    assert thinking == [("first", "S1"), ("second", "S2"), ("whole", "S3")]
    assert message.content[-1].text == "I can't help with that."  # type: ignore[union-attr]
    assert message.stop_reason == "refusal"


async def test_empty_stream_still_is_a_complete_message() -> None:
    body, _ = await translate([])
    events = decode(body)
    assert [name for name, _ in events] == ["message_start", "ping", "message_delta", "message_stop"]
    assert final_message(events).stop_reason == "end_turn"


async def test_error_mid_stream_becomes_an_error_event_and_ends_the_body() -> None:
    stream = ChunkStream([_chunk({"content": "Hi"})], error=RateLimitError("slow down"))
    body = await collect(anthropic_events(stream, MessagesStreamTranslator()))
    events = decode(body)
    assert [name for name, _ in events][-1] == "error"
    assert events[-1][1] == {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}
    assert "message_stop" not in [name for name, _ in events]
    assert stream.closed
    EVENT.validate_python(events[0][1])


async def test_interleaved_tool_arguments_are_an_upstream_error() -> None:
    call = {"type": "function", "function": {"name": "f", "arguments": ""}}
    chunks = [
        _chunk({"tool_calls": [{"index": 0, "id": "a", **call}]}),
        _chunk({"tool_calls": [{"index": 1, "id": "b", **call}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}),
    ]
    body, _ = await translate(chunks)
    name, data = decode(body)[-1]
    assert name == "error" and data["error"]["type"] == "api_error"
    assert "interleaved" in data["error"]["message"]


def test_ping_event_is_anthropic_shaped() -> None:
    ((name, data),) = decode(PING_EVENT)
    assert (name, data) == ("ping", {"type": "ping"})
