"""The Responses front door: requests to chat bodies, chat answers to Response objects.

The stored request is first validated as the ``openai`` package's ``ResponseCreateParams``, and every
Response object built here is parsed by its ``Response`` model.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from openai.types.responses import Response
from openai.types.responses.response_create_params import ResponseCreateParamsStreaming
from pydantic import TypeAdapter

from routerd.errors import BadRequestError, NotFoundError
from routerd.frontdoors import responses as rs
from routerd.frontdoors.limits import MAX_METADATA_ENTRIES, MAX_SCHEMA_DEPTH, MAX_TOOLS
from routerd.frontdoors.response_store import MemoryResponseStore, StoredResponse
from tests.frontdoors.conftest import load

CREATE: TypeAdapter[Any] = TypeAdapter(ResponseCreateParamsStreaming)


def test_stored_request_is_a_real_responses_request() -> None:
    CREATE.validate_python(load("responses/request_full.json"))


def test_full_request_translates_to_the_stored_chat_body() -> None:
    call = rs.to_chat_request(load("responses/request_full.json"))
    assert call.chat == load("responses/request_full.chat.json")
    sent = load("responses/request_full.json")["input"]
    # stored as sent, plus a type and a stable id each (the client's own id is kept)
    assert [{k: v for k, v in item.items() if k != "id"} for item in call.input_items] == [
        {"type": "message", **item} if "type" not in item else {k: v for k, v in item.items() if k != "id"}
        for item in sent
    ]
    assert [item["id"][:3] for item in call.input_items] == ["msg", "msg", "fc_", "fc_", "fco", "fco", "msg"]
    assert call.input_items[1]["id"] == "msg_prev"


def test_string_input_and_json_object_format() -> None:
    call = rs.to_chat_request({"model": "m", "input": "hi", "text": {"format": {"type": "json_object"}}})
    assert call.chat == {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "response_format": {"type": "json_object"},
    }
    (item,) = call.input_items
    assert item["id"].startswith("msg_")
    assert item == {
        "id": item["id"],
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": "hi"}],
    }


def test_function_call_without_a_preceding_assistant_message_and_file_input() -> None:
    call = rs.to_chat_request(
        {
            "model": "m",
            "input": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "input_file",
                            "file_data": "data:application/pdf;base64,JVBE",
                            "filename": "a.pdf",
                        }
                    ],
                },
                {"type": "reasoning", "id": "rs_1", "summary": []},
                {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
                {
                    "type": "function_call_output",
                    "call_id": "c",
                    "output": [
                        {"type": "input_text", "text": "see image"},
                        {"type": "input_image", "image_url": "https://example.com/a.png"},
                    ],
                },
            ],
        }
    )
    assert call.chat["messages"] == [
        {
            "role": "user",
            "content": [
                {
                    "type": "file",
                    "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"},
                }
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "c", "content": "see image"},
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}],
        },
    ]


_DEEP: dict[str, Any] = {}
for _ in range(MAX_SCHEMA_DEPTH + 1):
    _DEEP = {"type": "object", "properties": {"x": _DEEP}}


@pytest.mark.parametrize(
    ("field", "value", "param"),
    [
        ("model", None, "model"),
        ("input", [], "input"),
        ("input", [{"type": "item_reference", "id": "x"}], "input[0].type"),
        ("input", [{"role": "tool", "content": "x"}], "input[0].role"),
        (
            "input",
            [{"role": "assistant", "content": [{"type": "input_image", "image_url": "https://x"}]}],
            "input[0].content",
        ),
        (
            "input",
            [{"role": "user", "content": [{"type": "input_image", "file_id": "file-1"}]}],
            "input[0].content[0].image_url",
        ),
        ("input", [{"type": "function_call_output", "output": "x"}], "input[0].call_id"),
        ("tools", [{"type": "web_search"}], "tools[0].type"),
        ("tools", [{"type": "function", "name": "f"}] * (MAX_TOOLS + 1), "tools"),
        ("tools", [{"type": "function", "name": "f", "parameters": _DEEP}], "tools[0].parameters"),
        ("tool_choice", {"type": "file_search"}, "tool_choice"),
        ("reasoning", {"effort": "extreme"}, "reasoning.effort"),
        ("text", {"format": {"type": "yaml"}}, "text.format.type"),
        ("text", {"format": {"type": "json_schema", "schema": {}}}, "text.format.name"),
        ("temperature", 3, "temperature"),
        ("max_output_tokens", 0, "max_output_tokens"),
        ("metadata", {f"k{i}": "v" for i in range(MAX_METADATA_ENTRIES + 1)}, "metadata"),
        ("background", True, "background"),
        ("store", "yes", "store"),
        ("stream", 1, "stream"),
        ("tools", [{"type": "function", "name": "f" * 5000}], "tools[0].name"),
        ("conversation", "conv_1", "conversation"),
    ],
)
def test_invalid_requests_name_the_field(field: str, value: Any, param: str) -> None:
    body: dict[str, Any] = {"model": "m", "input": "hi", field: value}
    if value is None:
        del body[field]
    with pytest.raises(BadRequestError) as caught:
        rs.to_chat_request(body)
    assert caught.value.param == param
    assert caught.value.to_dict()["error"]["type"] == "invalid_request_error"


def test_answer_is_a_response_object() -> None:
    call = rs.to_chat_request(load("responses/request_full.json"))
    response = rs.to_response(
        load("responses/completion_tools.json"), call, response_id="resp_abc", created_at=1764700001
    )
    parsed = Response.model_validate(response)
    assert parsed.id == "resp_abc" and parsed.status == "completed"
    assert [item.type for item in parsed.output] == ["reasoning", "message", "function_call", "function_call"]
    assert response["output"][0]["content"] == [{"type": "reasoning_text", "text": "Two cities."}]
    assert parsed.output_text == "Checking both."
    assert [
        (item["id"], item["call_id"], item["name"], item["arguments"]) for item in response["output"][2:]
    ] == [
        ("fc_abc002", "call_1", "get_weather", '{"city": "Paris"}'),
        ("fc_abc003", "call_2", "get_weather", '{"city": "Lyon"}'),
    ]
    assert response["usage"] == {
        "input_tokens": 120,
        "input_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 0},
        "output_tokens": 30,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 150,
    }
    assert response["metadata"] == {"ticket": "42"} and response["max_output_tokens"] == 500
    assert response["model"] == "gpt-4o-2024-08-06"


@pytest.mark.parametrize(
    ("finish", "reason"), [("length", "max_output_tokens"), ("content_filter", "content_filter")]
)
def test_cut_answers_are_incomplete(finish: str, reason: str) -> None:
    call = rs.to_chat_request({"model": "m", "input": "hi"})
    completion = {
        "model": "m",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "par"}, "finish_reason": finish}
        ],
    }
    response = rs.to_response(completion, call)
    assert response["status"] == "incomplete" and response["incomplete_details"] == {"reason": reason}
    assert response["id"].startswith("resp_")
    Response.model_validate(response)


def test_refusal_becomes_a_refusal_part() -> None:
    call = rs.to_chat_request({"model": "m", "input": "hi"})
    completion = {
        "choices": [
            {"message": {"role": "assistant", "content": None, "refusal": "no"}, "finish_reason": "stop"}
        ]
    }
    response = rs.to_response(completion, call)
    assert response["output"][0]["content"] == [{"type": "refusal", "refusal": "no"}]
    Response.model_validate(response)


async def test_previous_response_continues_the_conversation() -> None:
    store = MemoryResponseStore()
    first = rs.to_chat_request({"model": "m", "input": "Name a colour.", "instructions": "Be brief."})
    answer = {"choices": [{"message": {"role": "assistant", "content": "Blue."}, "finish_reason": "stop"}]}
    response = rs.to_response(answer, first, response_id="resp_1")
    assert await store.put("resp_1", "key-a", StoredResponse(response, first.input_items))

    body = {"model": "m", "input": "Another?", "previous_response_id": "resp_1"}
    previous = await rs.previous_conversation(body, store, "key-a")
    second = rs.to_chat_request(body, previous)
    # instructions are not carried over, as in OpenAI's API; the conversation is
    assert second.chat["messages"] == [
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "Blue."},
        {"role": "user", "content": "Another?"},
    ]
    assert len(second.input_items) == 3  # what the second response stores: no chain walk later

    with pytest.raises(NotFoundError) as caught:
        await rs.previous_conversation(body, store, "key-b")  # another key sees nothing
    assert caught.value.status_code == 404 and caught.value.param == "previous_response_id"
    assert await rs.previous_conversation({"model": "m"}, store, "key-a") is None


def test_request_is_not_modified() -> None:
    body = load("responses/request_full.json")
    before = copy.deepcopy(body)
    rs.to_chat_request(body)
    assert body == before
