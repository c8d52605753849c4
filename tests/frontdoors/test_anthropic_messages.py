"""The Anthropic Messages front door: requests to chat bodies, chat answers to Anthropic messages.

Stored request payloads are first checked against the official ``anthropic`` package's request
types, so the translation is tested on what real clients send, and translated answers are parsed by
its ``Message`` model.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from anthropic.types import Message
from anthropic.types.message_create_params import MessageCreateParamsStreaming
from pydantic import TypeAdapter

from routerd.errors import BadRequestError
from routerd.frontdoors import anthropic_messages as am
from routerd.frontdoors.anthropic_errors import AnthropicRequestError
from routerd.frontdoors.limits import (
    MAX_BLOCKS_PER_MESSAGE,
    MAX_SCHEMA_DEPTH,
    MAX_SHORT_STRING,
    MAX_STOP_SEQUENCES,
    MAX_TOOLS,
)
from routerd.tokens import count_message_tokens
from tests.frontdoors.conftest import load

STREAM_REQUEST: TypeAdapter[Any] = TypeAdapter(MessageCreateParamsStreaming)


def minimal(**extra: Any) -> dict[str, Any]:
    return {"model": "m", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}], **extra}


def test_stored_request_is_a_real_anthropic_request() -> None:
    STREAM_REQUEST.validate_python(load("anthropic/request_full.json"))


def test_full_request_translates_to_the_stored_chat_body() -> None:
    assert am.to_chat_request(load("anthropic/request_full.json")) == load("anthropic/request_full.chat.json")


def test_minimal_request() -> None:
    assert am.to_chat_request(minimal()) == {
        "model": "m",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": "hi"}],
    }


def test_system_string_and_document_blocks() -> None:
    body = minimal(system="Be brief.")
    body["messages"][0]["content"] = [
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
        },
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "plain notes"}},
    ]
    chat = am.to_chat_request(body)
    assert chat["messages"][0] == {"role": "system", "content": "Be brief."}
    assert chat["messages"][1]["content"] == [
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0="}},
        {"type": "text", "text": "plain notes"},
    ]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, "auto"),
        ({"type": "any"}, "required"),
        ({"type": "none"}, "none"),
        ({"type": "tool", "name": "f"}, {"type": "function", "function": {"name": "f"}}),
    ],
)
def test_tool_choice(choice: dict[str, Any], expected: Any) -> None:
    tools = [{"name": "f", "input_schema": {"type": "object"}}]
    chat = am.to_chat_request(minimal(tools=tools, tool_choice=choice))
    assert chat["tool_choice"] == expected
    assert "parallel_tool_calls" not in chat


@pytest.mark.parametrize(
    ("thinking", "output_config", "effort"),
    [
        ({"type": "enabled", "budget_tokens": 1024}, None, "low"),
        ({"type": "enabled", "budget_tokens": 2048}, None, "medium"),
        ({"type": "enabled", "budget_tokens": 3000}, None, "medium"),
        ({"type": "enabled", "budget_tokens": 8000}, None, "high"),
        ({"type": "disabled"}, None, None),
        ({"type": "adaptive"}, None, None),
        ({"type": "adaptive"}, {"effort": "max"}, "high"),
        (None, {"effort": "low"}, "low"),
    ],
)
def test_thinking_maps_to_reasoning_effort(thinking: Any, output_config: Any, effort: str | None) -> None:
    body = minimal(max_tokens=16000)
    if thinking is not None:
        body["thinking"] = thinking
    if output_config is not None:
        body["output_config"] = output_config
    assert am.to_chat_request(body).get("reasoning_effort") == effort


def test_output_format_becomes_response_format() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    chat = am.to_chat_request(minimal(output_config={"format": {"type": "json_schema", "schema": schema}}))
    assert chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema, "strict": True},
    }


def test_assistant_turn_with_several_text_blocks_keeps_them_apart() -> None:
    body = minimal()
    body["messages"].append(
        {"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
    )
    assert am.to_chat_request(body)["messages"][-1] == {
        "role": "assistant",
        "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
    }


def _set(body: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    body = copy.deepcopy(body)
    target: Any = body
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return body


_DELETE = object()
_DEEP: dict[str, Any] = {}
for _ in range(MAX_SCHEMA_DEPTH + 1):
    _DEEP = {"type": "object", "properties": {"x": _DEEP}}


@pytest.mark.parametrize(
    ("path", "value", "param"),
    [
        (("model",), _DELETE, "model"),
        (("max_tokens",), _DELETE, "max_tokens"),
        (("max_tokens",), 0, "max_tokens"),
        (("max_tokens",), "10", "max_tokens"),
        (("messages",), [], "messages"),
        (("messages", 0, "role"), "system", "messages[0].role"),
        (("messages", 0, "content"), [{"type": "video"}], "messages[0].content[0].type"),
        (
            ("messages", 0, "content"),
            [{"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": "x"}}],
            "messages[0].content[0].source.media_type",
        ),
        (("temperature",), 1.5, "temperature"),
        (("temperature",), True, "temperature"),
        (("stop_sequences",), [""], "stop_sequences[0]"),
        (("stop_sequences",), ["s"] * (MAX_STOP_SEQUENCES + 1), "stop_sequences"),
        (("tools",), [{"name": "f", "input_schema": {"type": "object"}}] * (MAX_TOOLS + 1), "tools"),
        (("tools",), [{"name": "f", "input_schema": _DEEP}], "tools[0].input_schema"),
        (("tools",), [{"type": "web_search_20250305", "name": "web_search"}], "tools[0].type"),
        (("tool_choice",), {"type": "sometimes"}, "tool_choice.type"),
        (("thinking",), {"type": "enabled", "budget_tokens": 100}, "thinking.budget_tokens"),
        (("thinking",), {"type": "enabled", "budget_tokens": 4096}, "thinking.budget_tokens"),
        (("metadata",), {"user_id": 5}, "metadata.user_id"),
        (("frequency_penalty",), 0.5, "frequency_penalty"),
        (("stream",), "yes", "stream"),
        (("metadata",), {"user_id": "u" * (MAX_SHORT_STRING + 1)}, "metadata.user_id"),
        (("tool_choice",), {"type": "any"}, "tool_choice"),
        (("messages", 0, "content"), [], "messages[0].content"),
        (("messages", 0, "content"), "", "messages[0].content"),
    ],
)
def test_invalid_requests_name_the_field(path: tuple[Any, ...], value: Any, param: str) -> None:
    with pytest.raises(AnthropicRequestError) as caught:
        am.to_chat_request(_set(minimal(max_tokens=2000), path, value))
    assert caught.value.param == param
    assert caught.value.anthropic_type == "invalid_request_error"
    assert isinstance(caught.value, BadRequestError) and caught.value.status_code == 400


def test_tool_choice_auto_without_tools_is_dropped() -> None:
    assert "tool_choice" not in am.to_chat_request(minimal(tool_choice={"type": "auto"}))


def test_thinking_only_assistant_turn_is_dropped() -> None:
    body = minimal()
    body["messages"] += [
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": "s"}]},
        {"role": "user", "content": "again"},
    ]
    assert [m["role"] for m in am.to_chat_request(body)["messages"]] == ["user", "user"]


def test_too_many_blocks_in_a_message() -> None:
    body = minimal()
    body["messages"][0]["content"] = [{"type": "text", "text": "x"}] * (MAX_BLOCKS_PER_MESSAGE + 1)
    with pytest.raises(AnthropicRequestError, match=str(MAX_BLOCKS_PER_MESSAGE)):
        am.to_chat_request(body)


def test_answer_with_tools_matches_the_stored_message() -> None:
    message = am.to_anthropic_message(load("anthropic/completion_tools.json"))
    assert message == load("anthropic/completion_tools.message.json")
    Message.model_validate(message)


@pytest.mark.parametrize(
    ("finish", "extra", "expected"),
    [
        ("stop", {}, ("end_turn", None)),
        ("length", {}, ("max_tokens", None)),
        ("content_filter", {}, ("refusal", None)),
        ("tool_calls", {}, ("tool_use", None)),
        ("stop", {"stop_reason": "END"}, ("stop_sequence", "END")),
        ("stop", {"matched_stop": "END"}, ("stop_sequence", "END")),
        ("stop", {"stop_reason": "OTHER"}, ("end_turn", None)),
        ("stop", {"stop_reason": 50256}, ("end_turn", None)),
    ],
)
def test_stop_reasons(finish: str, extra: dict[str, Any], expected: tuple[str, str | None]) -> None:
    completion = {
        "id": "chatcmpl-1",
        "model": "m",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "x"}, "finish_reason": finish, **extra}
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1},
    }
    message = am.to_anthropic_message(completion, stop_sequences=["END"])
    assert (message["stop_reason"], message["stop_sequence"]) == expected
    Message.model_validate(message)


def test_answer_details() -> None:
    completion = {
        "id": "",
        "model": "upstream-model",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "thinking_blocks": [{"type": "thinking", "thinking": "t", "signature": "s"}],
                    "tool_calls": [
                        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{trunc"}}
                    ],
                },
                "finish_reason": "length",
            }
        ],
        "usage": {
            "prompt_tokens": 10,
            "completion_tokens": 5,
            "cache_creation_input_tokens": 4,
            "cache_read_input_tokens": 2,
        },
    }
    message = am.to_anthropic_message(completion, model="public-name")
    assert message["id"].startswith("msg_") and len(message["id"]) > 10
    assert message["model"] == "public-name"
    assert message["content"] == [
        {"type": "thinking", "thinking": "t", "signature": "s"},
        {"type": "tool_use", "id": "c", "name": "f", "input": {}},
    ]
    assert message["usage"] == {
        "input_tokens": 4,
        "output_tokens": 5,
        "cache_read_input_tokens": 2,
        "cache_creation_input_tokens": 4,
    }
    Message.model_validate(message)


def test_count_tokens_uses_the_shared_estimator() -> None:
    body = load("anthropic/request_full.json")
    for name in ("max_tokens", "stream", "metadata", "stop_sequences", "temperature", "top_p", "top_k"):
        body.pop(name)  # count_tokens takes none of these
    chat = am.to_chat_request({**body, "max_tokens": 1 << 20})
    expected = count_message_tokens(chat["messages"], chat["tools"])
    assert am.count_tokens(body) == {"input_tokens": expected}
    assert expected > 20


def test_count_tokens_validates() -> None:
    with pytest.raises(AnthropicRequestError):
        am.count_tokens({"model": "m", "messages": "hello"})


def test_plain_text_turn_translates_as_its_one_block_form() -> None:
    """A string user turn (the common case, translated directly) gives what the same turn written as
    one text block gives; an empty string is still refused."""
    as_block = minimal()
    as_block["messages"][0]["content"] = [{"type": "text", "text": "hi"}]
    assert am.to_chat_request(minimal()) == am.to_chat_request(as_block)
    empty = minimal()
    empty["messages"][0]["content"] = ""
    with pytest.raises(AnthropicRequestError) as caught:
        am.to_chat_request(empty)
    assert caught.value.param == "messages[0].content"


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"temperature": 0.5}, {"temperature": 0.5}),
        ({"top_p": 0.9}, {"top_p": 0.9}),
        ({"stop_sequences": ["END"]}, {"stop": ["END"]}),
        ({"top_k": 5}, {"top_k": 5}),
        ({"inference_geo": "us"}, {"inference_geo": "us"}),
        (
            {"thinking": {"type": "enabled", "budget_tokens": 1024}, "max_tokens": 4000},
            {"reasoning_effort": "low"},
        ),
    ],
)
def test_each_optional_field_is_translated_alone(extra: dict[str, Any], expected: dict[str, Any]) -> None:
    """Optional fields are looked at only when present: each one alone still reaches the chat body."""
    chat = am.to_chat_request(minimal(**extra))
    assert {key: chat[key] for key in expected} == expected


@pytest.mark.parametrize(("field", "value"), [("top_k", -1), ("temperature", 2), ("stop_sequences", "END")])
def test_each_optional_field_alone_is_still_validated(field: str, value: Any) -> None:
    with pytest.raises(AnthropicRequestError) as caught:
        am.to_chat_request(minimal(**{field: value}))
    assert caught.value.param == field


def test_a_mapping_that_is_not_a_dict_is_accepted() -> None:
    """The shape checks take any mapping (the dict fast path is only a shortcut)."""
    from types import MappingProxyType

    body = minimal()
    body["metadata"] = MappingProxyType({"user_id": "u-1"})
    assert am.to_chat_request(MappingProxyType(body))["user"] == "u-1"
