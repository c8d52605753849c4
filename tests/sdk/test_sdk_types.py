"""The SDK's response objects: attribute and item access, dumps, leniency."""

from __future__ import annotations

import copy
import pickle
import warnings

import orjson
import pytest
from pydantic import BaseModel

from routerd.providers import shapes
from routerd.sdk.types import (
    EmbeddingResponse,
    Message,
    ModelResponse,
    ModelResponseStream,
    TextCompletionResponse,
    build,
)


def chat_body(**answer: object) -> dict[str, object]:
    return shapes.chat_completion(
        completion_id="chatcmpl-1",
        created=1700000000,
        model="gpt-4o",
        answers=[shapes.Answer(**answer)],  # type: ignore[arg-type]
        usage_=shapes.usage(11, 4),
    )


def test_attribute_and_item_access_read_the_same_values() -> None:
    response = build(ModelResponse, chat_body(content="hello"))
    assert response.choices[0].message.content == "hello"
    assert response["choices"][0]["message"]["content"] == "hello"
    assert response.usage is not None and response.usage.total_tokens == 15
    assert response["usage"]["prompt_tokens"] == 11
    assert response.id == response["id"] == "chatcmpl-1"
    assert response.choices[0].finish_reason == "stop"


def test_undeclared_fields_are_kept_and_readable() -> None:
    response = build(ModelResponse, chat_body(content="x"))
    # service_tier and refusal are not declared by routerd but come from the upstream
    assert response.service_tier == "default"
    assert response["service_tier"] == "default"
    assert response.choices[0].message.refusal is None
    assert "service_tier" in response
    assert "nonexistent" not in response
    assert response.get("nonexistent", 7) == 7
    with pytest.raises(KeyError):
        response["nonexistent"]
    with pytest.raises(KeyError):
        response["_hidden_params"]


def test_tool_calls_have_function_name_and_arguments() -> None:
    body = chat_body(
        content=None, tool_calls=(shapes.ToolCall("get_weather", '{"city": "Paris"}', "call_1"),)
    )
    message = build(ModelResponse, body).choices[0].message
    call = message.tool_calls[0]  # type: ignore[index]
    assert (call.id, call.type, call.function.name) == ("call_1", "function", "get_weather")
    assert orjson.loads(call.function.arguments) == {"city": "Paris"}
    assert message.function_call is None  # present, and None when unused


def test_legacy_function_call_is_an_object() -> None:
    body = chat_body(content=None)
    body["choices"][0]["message"]["function_call"] = {
        "name": "get_weather",
        "arguments": '{"location": "Tokyo"}',
    }  # type: ignore[index]
    message = build(ModelResponse, body).choices[0].message
    assert hasattr(message, "function_call")
    assert message.function_call is not None
    assert message.function_call.name == "get_weather"
    assert message["function_call"]["arguments"] == '{"location": "Tokyo"}'


def test_model_dump_and_json_round_trip_the_openai_body() -> None:
    body = chat_body(content="hi")
    response = build(ModelResponse, body)
    dumped = response.model_dump()
    assert dumped["choices"][0]["message"]["content"] == "hi"
    assert dumped["usage"] == body["usage"]
    assert response.json() == orjson.loads(response.model_dump_json())  # a dict, as in LiteLLM
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no pydantic v1 deprecation warning
        assert response.dict() == dumped == response.to_dict()
        response.json()


def test_objects_can_be_written_like_dicts() -> None:
    response = build(ModelResponse, chat_body(content="a"))
    response["choices"][0]["message"]["content"] = "b"
    assert response.choices[0].message.content == "b"
    response.choices[0].message.content = "c"
    assert response["choices"][0]["message"]["content"] == "c"


def test_copy_and_pickle_keep_the_content() -> None:
    response = build(ModelResponse, chat_body(content="keep me"))
    assert pickle.loads(pickle.dumps(response)).choices[0].message.content == "keep me"
    assert copy.deepcopy(response).model_dump() == response.model_dump()


def test_an_odd_field_keeps_attribute_access_for_the_rest() -> None:
    body = chat_body(content="fine")
    body["created"] = "yesterday"  # not an int: would fail validation
    response = build(ModelResponse, body)
    assert response.created == "yesterday"
    assert isinstance(response.choices[0].message, Message)
    assert response.choices[0].message.content == "fine"


def test_stream_chunk_delta() -> None:
    chunk = build(
        ModelResponseStream,
        {
            "id": "c1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "gpt-4o",
            "choices": [{"index": 0, "delta": {"content": "Hel"}, "finish_reason": None}],
        },
    )
    assert chunk.choices[0].delta.content == "Hel"
    assert chunk["choices"][0]["delta"]["content"] == "Hel"
    assert chunk.choices[0].delta.role is None


def test_text_completion_and_embedding_objects() -> None:
    text = build(
        TextCompletionResponse,
        {
            "id": "cmpl-1",
            "object": "text_completion",
            "created": 1,
            "model": "gpt-3.5-turbo-instruct",
            "choices": [
                {"text": "\n\nThis is indeed a test", "index": 0, "logprobs": None, "finish_reason": "length"}
            ],
            "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
        },
    )
    assert text.choices[0].text == "\n\nThis is indeed a test"
    assert text["choices"][0]["finish_reason"] == "length"
    embeddings = build(
        EmbeddingResponse,
        shapes.embedding_list(model="m", vectors=[[0.5, -0.25]], prompt_tokens=2, encoding_format=None),
    )
    assert embeddings.data[0].embedding == [0.5, -0.25]
    assert embeddings["data"][0]["embedding"] == [0.5, -0.25]
    assert embeddings.usage is not None and embeddings.usage.prompt_tokens == 2


def test_objects_embed_in_pydantic_models() -> None:
    class Record(BaseModel):
        response: ModelResponse

    record = Record(response=build(ModelResponse, chat_body(content="nested")))
    assert record.model_dump()["response"]["choices"][0]["message"]["content"] == "nested"
