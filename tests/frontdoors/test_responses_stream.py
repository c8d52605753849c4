"""Responses stream events from chat chunks, read back with the official ``openai`` package.

Every event is validated as a ``ResponseStreamEvent`` and fed to the SDK's own stream state (what
``client.responses.stream(...)`` runs), which checks item identities and rebuilds the response.
"""

from __future__ import annotations

from typing import Any

import orjson
from openai import omit
from openai._streaming import SSEDecoder
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from routerd.errors import RateLimitError
from routerd.frontdoors.responses import to_chat_request
from routerd.frontdoors.responses_stream import ResponsesStreamTranslator, responses_events
from tests.frontdoors.conftest import ChunkStream, collect, load, load_lines

EVENT: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)


def decode(body: bytes) -> list[dict[str, Any]]:
    events = []
    for sse in SSEDecoder().iter_bytes(iter([body])):
        data = orjson.loads(sse.data)
        assert sse.event == data["type"]
        events.append(data)
    return events


def replay(events: list[dict[str, Any]]) -> Any:
    """Run the events through the SDK's stream state; returns it after the last event."""
    state: Any = ResponseStreamState(input_tools=omit, text_format=omit)
    for data in events:
        state.handle_event(EVENT.validate_python(data))
    return state


async def run(
    chunks: list[dict[str, Any]], body: dict[str, Any], error: Exception | None = None
) -> tuple[list[dict[str, Any]], ResponsesStreamTranslator, ChunkStream]:
    translator = ResponsesStreamTranslator(
        to_chat_request(body), response_id="resp_s1", created_at=1764700002
    )
    stream = ChunkStream(chunks, error=error)
    events = decode(await collect(responses_events(stream, translator)))
    return events, translator, stream


async def test_stream_with_reasoning_text_and_two_function_calls() -> None:
    events, translator, stream = await run(
        load_lines("responses/stream_chunks.jsonl"), load("responses/request_full.json")
    )
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    assert [event["type"] for event in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",  # reasoning
        "response.content_part.added",
        "response.reasoning_text.delta",
        "response.reasoning_text.delta",
        "response.reasoning_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",  # message
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",  # function call 1
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.output_item.added",  # function call 2
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    state = replay(events)
    final = state._completed_response
    assert final is not None and final.id == "resp_s1" and final.status == "completed"
    assert final.output_text == "Checking both."
    calls = [item for item in final.output if item.type == "function_call"]
    assert [(c.call_id, c.arguments) for c in calls] == [
        ("call_1", '{"city":"Paris"}'),
        ("call_2", '{"city":"Lyon"}'),
    ]
    assert final.usage is not None and (final.usage.input_tokens, final.usage.output_tokens) == (80, 20)
    assert final.usage.output_tokens_details.reasoning_tokens == 4
    assert final.model == "claude-sonnet-4-5"
    # the translator keeps the final object, to be stored like a non-streamed one
    assert translator.response == events[-1]["response"]
    Response.model_validate(translator.response)
    assert stream.closed


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": "c", "model": "m", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


async def test_length_cut_ends_incomplete() -> None:
    events, translator, _ = await run(
        [_chunk({"content": "par"}), _chunk({}, "length")], {"model": "m", "input": "hi"}
    )
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert translator.response is not None and translator.response["status"] == "incomplete"
    replay(events)


async def test_refusal_streams_as_a_refusal_part() -> None:
    chunks = [_chunk({"refusal": "I can't "}), _chunk({"refusal": "help."}), _chunk({}, "stop")]
    events, translator, _ = await run(chunks, {"model": "m", "input": "hi"})
    assert [e["type"] for e in events][2:-1] == [
        "response.output_item.added",
        "response.content_part.added",
        "response.refusal.delta",
        "response.refusal.delta",
        "response.refusal.done",
        "response.content_part.done",
        "response.output_item.done",
    ]
    final = replay(events)._completed_response
    assert final.output[0].content[0].refusal == "I can't help."
    assert translator.response is not None and translator.response["status"] == "completed"


async def test_error_mid_stream_ends_with_response_failed() -> None:
    events, translator, stream = await run(
        [_chunk({"content": "Hi"})], {"model": "m", "input": "hi"}, error=RateLimitError("slow down")
    )
    assert events[-1]["type"] == "response.failed"
    assert events[-1]["response"]["status"] == "failed"
    assert translator.response == events[-1]["response"]
    assert events[-1]["response"]["error"] == {"code": "rate_limit_exceeded", "message": "slow down"}
    assert "response.completed" not in [event["type"] for event in events]
    for event in events:
        EVENT.validate_python(event)
    assert stream.closed


async def test_unexpected_errors_reveal_nothing() -> None:
    events, _, _ = await run([], {"model": "m", "input": "hi"}, error=KeyError("internal-secret"))
    assert events[-1]["response"]["error"]["code"] == "server_error"
    assert "internal-secret" not in orjson.dumps(events).decode()


async def test_interleaved_arguments_fail_the_response() -> None:
    call = {"type": "function", "function": {"name": "f", "arguments": ""}}
    chunks = [
        _chunk({"tool_calls": [{"index": 0, "id": "a", **call}]}),
        _chunk({"tool_calls": [{"index": 1, "id": "b", **call}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}),
    ]
    events, _, _ = await run(chunks, {"model": "m", "input": "hi"})
    assert events[-1]["type"] == "response.failed"
    assert "interleaved" in events[-1]["response"]["error"]["message"]
