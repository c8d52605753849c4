"""The chat bodies the front doors make are real chat requests, and survive routerd's own translation
to Anthropic (the path a /v1/messages request takes when it fails over to, or lands on, a Claude
deployment through the chat shape)."""

from __future__ import annotations

from typing import Any

import pytest
from anthropic.types.message_create_params import MessageCreateParamsStreaming
from openai.types.chat.completion_create_params import CompletionCreateParamsStreaming
from pydantic import TypeAdapter

from routerd.errors import BadRequestError
from routerd.frontdoors import anthropic_messages, responses
from routerd.frontdoors.anthropic_errors import AnthropicRequestError
from routerd.frontdoors.limits import MAX_MESSAGES
from routerd.frontdoors.response_store import StoredResponse
from routerd.providers import anthropic_translate
from tests.frontdoors.conftest import load

CHAT_REQUEST: TypeAdapter[Any] = TypeAdapter(CompletionCreateParamsStreaming)
ANTHROPIC_REQUEST: TypeAdapter[Any] = TypeAdapter(MessageCreateParamsStreaming)


def test_chat_bodies_are_openai_chat_requests() -> None:
    from_messages = anthropic_messages.to_chat_request(load("anthropic/request_full.json"))
    from_messages.pop("top_k")  # the documented extra: Anthropic-only, forwarded as is
    CHAT_REQUEST.validate_python(from_messages)
    CHAT_REQUEST.validate_python(responses.to_chat_request(load("responses/request_full.json")).chat)


def test_messages_request_round_trips_through_the_anthropic_adapter() -> None:
    original = load("anthropic/request_full.json")
    chat = anthropic_messages.to_chat_request(original)
    again = anthropic_translate.to_anthropic_request(chat, "claude-sonnet-4-5", stream=True)
    ANTHROPIC_REQUEST.validate_python(again)
    assert again["system"] == "You are terse.\n\nAnswer in English."
    assert again["max_tokens"] == original["max_tokens"]
    assert again["stop_sequences"] == original["stop_sequences"]
    assert again["thinking"] == original["thinking"]  # budget 2048 -> "medium" -> 2048
    assert (again["top_k"], again["metadata"]) == (40, {"user_id": "user-123"})
    assert again["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert [tool["input_schema"] for tool in again["tools"]] == [t["input_schema"] for t in original["tools"]]
    assert [m["role"] for m in again["messages"]] == ["user", "assistant", "user"]
    user, assistant, results = again["messages"]
    assert [b["source"] for b in user["content"] if b["type"] == "image"] == [
        b["source"] for b in original["messages"][0]["content"] if b["type"] == "image"
    ]
    assert [(b["id"], b["input"]) for b in assistant["content"] if b["type"] == "tool_use"] == [
        ("toolu_01", {"city": "Paris"}),
        ("toolu_02", {"city": "Lyon"}),
    ]
    assert [(b["tool_use_id"], b["content"]) for b in results["content"] if b["type"] == "tool_result"] == [
        ("toolu_01", "18C, sunny"),
        ("toolu_02", "Error: station offline"),  # is_error survives as the text's prefix
    ]


def test_message_count_bound() -> None:
    body = {
        "model": "m",
        "max_tokens": 1,
        "messages": [{"role": "user", "content": "x"}] * (MAX_MESSAGES + 1),
    }
    with pytest.raises(AnthropicRequestError) as caught:
        anthropic_messages.to_chat_request(body)
    assert caught.value.param == "messages"
    body["messages"] = body["messages"][:MAX_MESSAGES]
    assert len(anthropic_messages.to_chat_request(body)["messages"]) == MAX_MESSAGES


def test_conversation_bound_counts_the_previous_response() -> None:
    item = {"role": "user", "content": "x"}
    previous = StoredResponse({"output": [item] * 10}, [item] * (MAX_MESSAGES - 10))
    assert len(responses.to_chat_request({"model": "m"}, previous).chat["messages"]) == MAX_MESSAGES
    with pytest.raises(BadRequestError, match=str(MAX_MESSAGES)) as caught:
        responses.to_chat_request({"model": "m", "input": "one more"}, previous)
    assert caught.value.param == "input"
