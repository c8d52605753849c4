"""Pure translation between OpenAI chat and Google's generateContent, on stored payloads."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from routerd import errors
from routerd.providers import google_translate as translate
from routerd.providers.errors import ErrorContext
from routerd.providers.google_schema import to_gemini_schema
from routerd.providers.google_stream import StreamTranslator
from routerd.providers.sse import iter_data

FIXTURES = Path(__file__).parent.parent / "fixtures" / "providers" / "gemini"
CREATED = 1_700_000_000
CTX = ErrorContext("gemini", "gemini-2.0-flash", "dep-g", secrets=("AIzaSyTestKey0123456789",))
POLICY = translate.param_policy("gemini")
STREAM_SSE = (FIXTURES / "stream_text_tool.sse").read_bytes()


def load(name: str) -> Any:
    return orjson.loads((FIXTURES / name).read_bytes())


def ids() -> Iterator[str]:
    n = 0
    while True:
        yield f"call_test{n}"
        n += 1


def id_factory() -> Any:
    counter = ids()
    return lambda: next(counter)


def translate_request(body: dict[str, Any], *, drop: bool = False) -> dict[str, Any]:
    return translate.to_gemini_request(translate.apply_param_policy(body, POLICY, drop))


def user(text: str = "hi") -> dict[str, Any]:
    return {"role": "user", "content": text}


# --- requests ------------------------------------------------------------------------------------


def test_full_request_matches_stored_payload() -> None:
    assert translate_request(load("chat_request_full.openai.json")) == load("chat_request_full.gemini.json")


@pytest.mark.parametrize(
    ("choice", "config"),
    [
        ("auto", {"mode": "AUTO"}),
        ("none", {"mode": "NONE"}),
        ("required", {"mode": "ANY"}),
        ({"type": "function", "function": {"name": "f"}}, {"mode": "ANY", "allowedFunctionNames": ["f"]}),
    ],
)
def test_tool_choice(choice: Any, config: dict[str, Any]) -> None:
    tools = [{"type": "function", "function": {"name": "f"}}]
    request = translate_request({"messages": [user()], "tools": tools, "tool_choice": choice})
    assert request["toolConfig"] == {"functionCallingConfig": config}
    assert request["tools"] == [{"functionDeclarations": [{"name": "f"}]}]


def test_google_native_tools_and_settings_pass_through() -> None:
    safety = [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}]
    body = {"messages": [user()], "tools": [{"googleSearch": {}}], "safety_settings": safety}
    request = translate_request(body)
    assert request["tools"] == [{"googleSearch": {}}]
    assert request["safetySettings"] == safety


def test_tool_result_for_an_unknown_call_is_a_bad_request() -> None:
    with pytest.raises(errors.BadRequestError):
        translate_request({"messages": [user(), {"role": "tool", "tool_call_id": "nope", "content": "x"}]})


def test_consecutive_turns_of_one_role_merge_and_empty_ones_vanish() -> None:
    messages = [user("a"), user("b"), {"role": "assistant", "content": ""}, user("c")]
    assert translate_request({"messages": messages})["contents"] == [
        {"role": "user", "parts": [{"text": "a"}, {"text": "b"}, {"text": "c"}]}
    ]


def test_audio_and_pdf_become_inline_data() -> None:
    content = [
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0="}},
        {"type": "file", "file": {"file_id": "gs://bucket/report.pdf"}},
    ]
    parts = translate_request({"messages": [{"role": "user", "content": content}]})["contents"][0]["parts"]
    assert parts == [
        {"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}},
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}},
        {"fileData": {"mimeType": "application/pdf", "fileUri": "gs://bucket/report.pdf"}},
    ]


def test_json_object_response_format() -> None:
    request = translate_request({"messages": [user()], "response_format": {"type": "json_object"}})
    assert request["generationConfig"] == {"responseMimeType": "application/json"}


@pytest.mark.parametrize(
    ("fields", "thinking"),
    [
        ({"reasoning_effort": "high"}, {"thinkingBudget": 24576, "includeThoughts": True}),
        ({"reasoning_effort": "none"}, {"thinkingBudget": 0}),
        (
            {"thinking": {"type": "enabled", "budget_tokens": 2048}},
            {"thinkingBudget": 2048, "includeThoughts": True},
        ),
        ({"thinking": {"type": "disabled"}}, {"thinkingBudget": 0}),
    ],
)
def test_thinking_config(fields: dict[str, Any], thinking: dict[str, Any]) -> None:
    assert (
        translate_request({"messages": [user()], **fields})["generationConfig"]["thinkingConfig"] == thinking
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [("logit_bias", {"1": 2}), ("logprobs", True), ("top_logprobs", 3), ("parallel_tool_calls", False)],
)
def test_unsupported_parameters_fail_or_are_dropped(name: str, value: Any) -> None:
    body = {"messages": [user()], name: value}
    with pytest.raises(errors.UnsupportedParamsError) as info:
        translate.apply_param_policy(body, POLICY, drop_params=False)
    assert info.value.param == name
    assert "gemini" in info.value.message
    assert translate.apply_param_policy(body, POLICY, drop_params=True) == {"messages": [user()]}


# --- schemas -------------------------------------------------------------------------------------


def test_schema_conversion_removes_what_gemini_refuses() -> None:
    schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
            "kind": {"const": "point"},
            "size": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
            "either": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
        },
    }
    assert to_gemini_schema(schema) == {
        "type": "OBJECT",
        "properties": {
            "tags": {"type": "ARRAY", "items": {"type": "STRING"}},
            "kind": {"type": "STRING", "enum": ["point"]},
            "size": {"type": "INTEGER", "nullable": True},
            "either": {"anyOf": [{"type": "STRING"}, {"type": "INTEGER"}]},
        },
    }


def test_recursive_schemas_are_refused() -> None:
    schema = {
        "$ref": "#/$defs/Node",
        "$defs": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}},
    }
    with pytest.raises(errors.BadRequestError):
        to_gemini_schema(schema)


# --- responses -----------------------------------------------------------------------------------


def test_function_call_response_matches_stored_payload() -> None:
    completion = translate.to_openai_completion(
        load("response_function_call.gemini.json"),
        model="gemini-2.5-flash",
        created=CREATED,
        errors=CTX,
        new_id=id_factory(),
    )
    assert completion == load("response_function_call.openai.json")


def test_thought_signature_survives_the_round_trip() -> None:
    completion = translate.to_openai_completion(
        load("response_function_call.gemini.json"),
        model="m",
        created=CREATED,
        errors=CTX,
        new_id=id_factory(),
    )
    assistant = completion["choices"][0]["message"]
    tool_result = {"role": "tool", "tool_call_id": assistant["tool_calls"][0]["id"], "content": "sunny"}
    request = translate_request({"messages": [user(), assistant, tool_result]})
    model_turn = request["contents"][1]
    assert model_turn["parts"][-1] == {
        "functionCall": {"name": "get_weather", "args": {"city": "Nice", "unit": "celsius"}},
        "thoughtSignature": "CtwBAdHtim9",
    }
    assert request["contents"][2]["parts"][0]["functionResponse"]["name"] == "get_weather"


def test_several_candidates_become_several_choices() -> None:
    response = {
        "candidates": [
            {"content": {"parts": [{"text": "one"}], "role": "model"}, "finishReason": "STOP", "index": 0},
            {
                "content": {"parts": [{"text": "two"}], "role": "model"},
                "finishReason": "MAX_TOKENS",
                "index": 1,
            },
        ]
    }
    completion = translate.to_openai_completion(response, model="m", created=CREATED, errors=CTX)
    assert [(c["index"], c["message"]["content"], c["finish_reason"]) for c in completion["choices"]] == [
        (0, "one", "stop"),
        (1, "two", "length"),
    ]
    assert completion["model"] == "m"


@pytest.mark.parametrize(
    "fixture", ["response_prompt_blocked.gemini.json", "response_answer_blocked.gemini.json"]
)
def test_safety_blocks_are_content_policy_errors(fixture: str) -> None:
    with pytest.raises(errors.ContentPolicyViolationError) as info:
        translate.to_openai_completion(load(fixture), model="m", created=CREATED, errors=CTX)
    assert info.value.status_code == 400
    assert info.value.code == "content_policy_violation"
    assert info.value.deployment_id == "dep-g"


@pytest.mark.parametrize(
    ("reason", "tools", "finish"),
    [
        ("STOP", False, "stop"),
        ("STOP", True, "tool_calls"),
        ("MAX_TOKENS", False, "length"),
        ("RECITATION", False, "content_filter"),
        ("SAFETY", False, "content_filter"),
        ("MALFORMED_FUNCTION_CALL", False, "stop"),
        (None, False, "stop"),
    ],
)
def test_finish_reasons(reason: str | None, tools: bool, finish: str) -> None:
    assert translate.finish_reason(reason, tools) == finish


# --- streams -------------------------------------------------------------------------------------


async def _lines(content: bytes) -> AsyncIterator[bytes]:
    for line in content.split(b"\n"):
        yield line.rstrip(b"\r")


async def _translate_stream(content: bytes, translator: StreamTranslator) -> list[dict[str, Any]]:
    chunks = []
    async for _event, data in iter_data(_lines(content)):
        chunks.extend(translator.feed(orjson.loads(data)))
    return chunks + translator.close()


async def test_stream_matches_stored_chunks() -> None:
    translator = StreamTranslator(
        created=CREATED, model="gemini-2.0-flash", errors=CTX, include_usage=True, new_id=id_factory()
    )
    chunks = await _translate_stream(STREAM_SSE, translator)
    expected = [
        orjson.loads(line) for line in (FIXTURES / "stream_text_tool.openai.jsonl").read_bytes().splitlines()
    ]
    assert chunks == expected


def _text_response(text: str, finish: str | None = None) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    return {"candidates": [candidate], "responseId": "r"}


def test_stream_blocked_before_any_content_raises() -> None:
    translator = StreamTranslator(created=CREATED, model="m", errors=CTX)
    with pytest.raises(errors.ContentPolicyViolationError):
        translator.feed(load("response_prompt_blocked.gemini.json"))
    translator = StreamTranslator(created=CREATED, model="m", errors=CTX)
    with pytest.raises(errors.ContentPolicyViolationError):
        translator.feed({"candidates": [{"finishReason": "SAFETY", "index": 0}]})


def test_stream_blocked_after_content_ends_with_content_filter() -> None:
    translator = StreamTranslator(created=CREATED, model="m", errors=CTX)
    assert translator.feed(_text_response("Once upon"))[0]["choices"][0]["delta"]["content"] == "Once upon"
    chunks = translator.feed({"candidates": [{"finishReason": "SAFETY", "index": 0}]})
    assert chunks[-1]["choices"][0]["finish_reason"] == "content_filter"
    assert translator.close() == []


def test_stream_without_a_finish_reason_is_cut() -> None:
    translator = StreamTranslator(created=CREATED, model="m", errors=CTX)
    translator.feed(_text_response("partial"))
    with pytest.raises(errors.APIConnectionError):
        translator.close()


def test_in_band_stream_error_is_raised() -> None:
    translator = StreamTranslator(created=CREATED, model="m", errors=CTX)
    with pytest.raises(errors.ServiceUnavailableError):
        translator.feed(
            {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
        )


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "google_status", "cls"),
    [
        (400, "INVALID_ARGUMENT", errors.BadRequestError),
        (400, "FAILED_PRECONDITION", errors.BadRequestError),
        (401, "UNAUTHENTICATED", errors.AuthenticationError),
        (403, "PERMISSION_DENIED", errors.PermissionDeniedError),
        (404, "NOT_FOUND", errors.NotFoundError),
        (429, "RESOURCE_EXHAUSTED", errors.RateLimitError),
        (500, "INTERNAL", errors.InternalServerError),
        (503, "UNAVAILABLE", errors.ServiceUnavailableError),
        (504, "DEADLINE_EXCEEDED", errors.Timeout),
        (502, "", errors.BadGatewayError),
    ],
)
def test_google_statuses_map_to_routerd_errors(
    status: int, google_status: str, cls: type[errors.OpenAIError]
) -> None:
    body = {"error": {"code": status, "message": "boom", "status": google_status}}
    error = translate.error_from_body(status, body, {}, CTX)
    assert type(error) is cls
    assert error.upstream_status == status
    assert (error.llm_provider, error.deployment_id) == ("gemini", "dep-g")


def test_resource_exhausted_is_retryable_with_the_retry_delay() -> None:
    error = translate.error_from_body(429, load("error_resource_exhausted.json"), {}, CTX)
    assert isinstance(error, errors.RateLimitError)
    assert error.retryable
    assert error.retry_after == 38.0
    header = translate.error_from_body(429, load("error_resource_exhausted.json"), {"retry-after": "5"}, CTX)
    assert header.retry_after == 5.0


def test_token_limit_is_a_context_window_error() -> None:
    error = translate.error_from_body(400, load("error_token_limit.json"), {}, CTX)
    assert isinstance(error, errors.ContextWindowExceededError)
    vertex = {
        "error": {
            "code": 400,
            "status": "INVALID_ARGUMENT",
            "message": "Unable to submit request because the input token count is 1200000 but model only "
            "supports up to 1048576. Reduce the input token count and try again.",
        }
    }
    assert isinstance(translate.error_from_body(400, vertex, {}, CTX), errors.ContextWindowExceededError)


def test_invalid_api_key_is_an_authentication_error() -> None:
    error = translate.error_from_body(400, load("error_api_key_invalid.json"), {}, CTX)
    assert isinstance(error, errors.AuthenticationError)
    assert error.cools_down


def test_errors_wrapped_in_an_array_and_garbage_bodies() -> None:
    wrapped = [{"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}}]
    assert isinstance(translate.error_from_body(503, wrapped, {}, CTX), errors.ServiceUnavailableError)
    assert isinstance(translate.error_from_body(500, None, {}, CTX), errors.BadGatewayError)


def test_keys_in_upstream_messages_are_scrubbed() -> None:
    body = {
        "error": {"code": 400, "message": "key AIzaSyTestKey0123456789 is bad", "status": "INVALID_ARGUMENT"}
    }
    assert "AIzaSyTestKey0123456789" not in translate.error_from_body(400, body, {}, CTX).message


# --- embeddings ----------------------------------------------------------------------------------


def test_batch_embed_request() -> None:
    body = {"input": ["a", "b"], "dimensions": 256}
    assert translate.to_batch_embed_request(body, "models/text-embedding-004") == {
        "requests": [
            {
                "model": "models/text-embedding-004",
                "content": {"parts": [{"text": "a"}]},
                "outputDimensionality": 256,
            },
            {
                "model": "models/text-embedding-004",
                "content": {"parts": [{"text": "b"}]},
                "outputDimensionality": 256,
            },
        ]
    }


def test_token_array_inputs_are_refused() -> None:
    with pytest.raises(errors.BadRequestError):
        translate.to_batch_embed_request({"input": [[1, 2, 3]]}, "models/m")
