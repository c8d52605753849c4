"""Our Anthropic requests and the fake's answers checked against the official ``anthropic`` package.

* What the adapter sends must be what the API documents: it validates as ``MessageCreateParams``
  (the SDK's request TypedDicts), and uses no key those TypedDicts do not declare (pydantic ignores
  unknown keys of a TypedDict, so that is checked separately). The one exception is the sampling
  fields of API version 2023-06-01, which routerd speaks and the SDK's newest version dropped.
* What the fake answers must be what the SDK parses: ``Message``, the raw stream events and
  ``ErrorResponse``, and end to end through ``anthropic.AsyncAnthropic`` itself.
"""

from __future__ import annotations

import typing
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anthropic
import orjson
import pytest
from anthropic.types import ErrorResponse, Message, RawMessageStreamEvent
from anthropic.types.base64_image_source_param import Base64ImageSourceParam
from anthropic.types.document_block_param import DocumentBlockParam
from anthropic.types.image_block_param import ImageBlockParam
from anthropic.types.message_create_params import (
    MessageCreateParamsNonStreaming,
    MessageCreateParamsStreaming,
)
from anthropic.types.metadata_param import MetadataParam
from anthropic.types.text_block_param import TextBlockParam
from anthropic.types.thinking_block_param import ThinkingBlockParam
from anthropic.types.tool_choice_tool_param import ToolChoiceToolParam
from anthropic.types.tool_param import ToolParam
from anthropic.types.tool_result_block_param import ToolResultBlockParam
from anthropic.types.tool_use_block_param import ToolUseBlockParam
from anthropic.types.url_image_source_param import URLImageSourceParam
from pydantic import TypeAdapter

from routerd.providers import anthropic_translate as translate
from routerd.providers.sse import iter_data
from routerd.testing.anthropic_fake import AnthropicReply, FakeAnthropic, stream_events

FIXTURES = Path(__file__).parent.parent / "fixtures" / "providers" / "anthropic"
MODEL = "claude-sonnet-4-5"
CLIENT_MODEL = "claude-opus-4-6"  # the SDK warns about models near their retirement

REQUEST = TypeAdapter(MessageCreateParamsNonStreaming)
STREAM_REQUEST = TypeAdapter(MessageCreateParamsStreaming)
EVENT: TypeAdapter[Any] = TypeAdapter(RawMessageStreamEvent)

BLOCKS: dict[str, Any] = {
    "text": TextBlockParam,
    "image": ImageBlockParam,
    "document": DocumentBlockParam,
    "tool_use": ToolUseBlockParam,
    "tool_result": ToolResultBlockParam,
    "thinking": ThinkingBlockParam,
}
SOURCES: dict[str, Any] = {"base64": Base64ImageSourceParam, "url": URLImageSourceParam}


def declared(typed_dict: Any) -> set[str]:
    return set(typing.get_type_hints(typed_dict))


# The SDK's types describe the newest API version (2026-10-21), which dropped the sampling fields;
# routerd sends anthropic-version 2023-06-01, where they are documented and accepted.
SAMPLING_2023 = {"temperature", "top_p", "top_k"}


def assert_only_documented_keys(request: dict[str, Any]) -> None:
    """Every key we send is declared by the SDK's TypedDict for that object."""
    assert set(request) <= declared(MessageCreateParamsStreaming) | SAMPLING_2023
    if "metadata" in request:
        assert set(request["metadata"]) <= declared(MetadataParam)
    for message in request["messages"]:
        assert set(message) <= {"role", "content"}
        for block in message["content"] if isinstance(message["content"], list) else []:
            assert set(block) <= declared(BLOCKS[block["type"]]), block
            if "source" in block and block["type"] == "image":
                assert set(block["source"]) <= declared(SOURCES[block["source"]["type"]])
            for inner in block.get("content") or [] if block["type"] == "tool_result" else []:
                assert isinstance(inner, str) or set(inner) <= declared(BLOCKS[inner["type"]])
    for tool in request.get("tools") or []:
        assert set(tool) <= declared(ToolParam)
    if request.get("tool_choice", {}).get("type") == "tool":
        assert set(request["tool_choice"]) <= declared(ToolChoiceToolParam)


def translated(body: dict[str, Any], *, stream: bool = False, model: str = MODEL) -> dict[str, Any]:
    return translate.to_anthropic_request(
        translate.apply_param_policy(body, False, model), model, stream=stream
    )


REQUEST_BODIES = [
    orjson.loads((FIXTURES / "chat_request_full.openai.json").read_bytes()),
    {
        "messages": [
            {"role": "user", "content": "think"},
            {
                "role": "assistant",
                "content": "ok",
                "thinking_blocks": [{"type": "thinking", "thinking": "t", "signature": "s"}],
            },
            {
                "role": "user",
                "content": [{"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE"}}],
            },
        ],
        "reasoning_effort": "medium",
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "x", "schema": {"type": "object"}},
        },
        "tool_choice": "required",
        "tools": [{"type": "function", "function": {"name": "f", "strict": True}}],
    },
]


@pytest.mark.parametrize("model", [MODEL, "claude-opus-4-6"])  # fixed thinking budgets / adaptive thinking
@pytest.mark.parametrize("body", REQUEST_BODIES)
def test_requests_validate_as_message_create_params(body: dict[str, Any], model: str) -> None:
    request = translated(body, model=model)
    REQUEST.validate_python(request)
    assert_only_documented_keys(request)


def test_streamed_request_validates_as_streaming_params() -> None:
    request = translated(REQUEST_BODIES[0], stream=True)
    STREAM_REQUEST.validate_python(request)
    assert_only_documented_keys(request)


def test_key_check_catches_an_undocumented_field() -> None:
    # guards the guard: an unknown key must fail the check above
    request = translated(REQUEST_BODIES[0])
    request["frequency_penalty"] = 1  # an OpenAI parameter that is no Anthropic field
    with pytest.raises(AssertionError):
        assert_only_documented_keys(request)


def test_stored_payloads_parse_with_sdk_types() -> None:
    Message.model_validate(orjson.loads((FIXTURES / "message_tool_use.anthropic.json").read_bytes()))
    ErrorResponse.model_validate(orjson.loads((FIXTURES / "error_overloaded.json").read_bytes()))
    ErrorResponse.model_validate(orjson.loads((FIXTURES / "error_prompt_too_long.json").read_bytes()))


async def _lines(content: bytes) -> AsyncIterator[bytes]:
    for line in content.split(b"\n"):
        yield line


async def test_stored_stream_events_parse_with_sdk_types() -> None:
    types = []
    async for event_name, data in iter_data(_lines((FIXTURES / "stream_tool_use.sse").read_bytes())):
        if event_name == b"ping":
            continue
        types.append(EVENT.validate_python(orjson.loads(data)).type)
    assert types[0] == "message_start"
    assert types[-1] == "message_stop"


@pytest.mark.parametrize(
    "reply",
    [
        AnthropicReply.text("hello there"),
        AnthropicReply.tool_use("get_weather", {"city": "Paris"}, text="checking"),
        AnthropicReply.thinking("let me think", "answer"),
    ],
)
def test_fake_messages_and_events_parse_with_sdk_types(reply: AnthropicReply) -> None:
    fake = FakeAnthropic()
    message = fake._message({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}, reply)
    parsed = Message.model_validate(message)
    assert [block.type for block in parsed.content] == [block["type"] for block in reply.content or []]
    events = [EVENT.validate_python(event) for event in stream_events(message) if event["type"] != "ping"]
    assert (events[0].type, events[-1].type) == ("message_start", "message_stop")


async def test_sdk_client_reads_the_fake_plain_and_streamed() -> None:
    async with (
        FakeAnthropic(api_key="sk-ant-test") as fake,
        anthropic.AsyncAnthropic(base_url=fake.base_url, api_key="sk-ant-test", max_retries=0) as client,
    ):
        message = await client.messages.create(
            model=CLIENT_MODEL, max_tokens=64, messages=[{"role": "user", "content": "ping"}]
        )
        assert message.content[0].type == "text"
        assert message.content[0].text == "echo: ping"

        fake.enqueue(
            AnthropicReply.tool_use("get_weather", {"city": "Paris", "days": [1, 2]}, text="checking")
        )
        async with client.messages.stream(
            model=CLIENT_MODEL, max_tokens=64, messages=[{"role": "user", "content": "weather?"}]
        ) as stream:
            final = await stream.get_final_message()
        assert final.stop_reason == "tool_use"
        tool_use = final.content[1]
        assert tool_use.type == "tool_use"
        assert tool_use.input == {"city": "Paris", "days": [1, 2]}

        fake.enqueue(AnthropicReply.failure(529, "overloaded_error", "Overloaded"))
        with pytest.raises(anthropic.APIStatusError) as info:
            await client.messages.create(
                model=CLIENT_MODEL, max_tokens=8, messages=[{"role": "user", "content": "x"}]
            )
        assert info.value.status_code == 529
