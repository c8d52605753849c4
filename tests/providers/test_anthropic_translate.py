"""Pure translation between OpenAI chat and Anthropic's Messages API, on stored payloads."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from routerd import errors
from routerd.providers import anthropic_translate as translate
from routerd.providers.anthropic_stream import StreamTranslator
from routerd.providers.errors import ErrorContext
from routerd.providers.sse import iter_data

FIXTURES = Path(__file__).parent.parent / "fixtures" / "providers" / "anthropic"
MODEL = "claude-sonnet-4-20250514"
CREATED = 1_700_000_000
STREAM_SSE = (FIXTURES / "stream_tool_use.sse").read_bytes()
CTX = ErrorContext("anthropic", MODEL, "dep-1", secrets=("sk-ant-secret-key",))


def load(name: str) -> Any:
    return orjson.loads((FIXTURES / name).read_bytes())


def translate_request(body: dict[str, Any], *, drop: bool = False, **kwargs: Any) -> dict[str, Any]:
    return translate.to_anthropic_request(translate.apply_param_policy(body, drop), MODEL, **kwargs)


def user(text: str = "hi") -> dict[str, Any]:
    return {"role": "user", "content": text}


# --- requests ------------------------------------------------------------------------------------


def test_full_request_matches_stored_payload() -> None:
    assert translate_request(load("chat_request_full.openai.json")) == load(
        "chat_request_full.anthropic.json"
    )


def test_stream_flag_is_set_only_for_streams() -> None:
    body = {"messages": [user()]}
    assert "stream" not in translate_request(body)
    assert translate_request(body, stream=True)["stream"] is True


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, 4096),
        ({"max_tokens": 300}, 300),
        ({"max_completion_tokens": 500}, 500),
        ({"max_completion_tokens": 500, "max_tokens": 300}, 500),
    ],
)
def test_max_tokens_defaults_when_the_client_gives_none(fields: dict[str, Any], expected: int) -> None:
    assert translate_request({"messages": [user()], **fields})["max_tokens"] == expected


def test_default_max_tokens_is_configurable() -> None:
    assert translate_request({"messages": [user()]}, default_max_tokens=1024)["max_tokens"] == 1024


@pytest.mark.parametrize(("effort", "budget"), [("low", 1024), ("medium", 2048), ("high", 4096)])
def test_reasoning_effort_becomes_a_thinking_budget_below_max_tokens(effort: str, budget: int) -> None:
    request = translate_request({"messages": [user()], "reasoning_effort": effort})
    assert request["thinking"] == {"type": "enabled", "budget_tokens": budget}
    assert request["max_tokens"] == budget + translate.DEFAULT_MAX_TOKENS


@pytest.mark.parametrize(("effort", "sent"), [("minimal", "low"), ("medium", "medium"), ("high", "high")])
def test_reasoning_effort_on_adaptive_models_is_sent_as_effort(effort: str, sent: str) -> None:
    body = {"messages": [user()], "reasoning_effort": effort}
    request = translate.to_anthropic_request(translate.apply_param_policy(body, False), "claude-opus-4-6")
    assert request["thinking"] == {"type": "adaptive"}
    assert request["output_config"] == {"effort": sent}
    assert request["max_tokens"] == translate.REASONING_BUDGETS[effort] + translate.DEFAULT_MAX_TOKENS


@pytest.mark.parametrize(
    ("model", "version", "adaptive", "no_sampling"),
    [
        ("claude-3-haiku-20240307", (3, 0), False, False),
        ("claude-3-5-sonnet-20241022", (3, 5), False, False),
        ("claude-opus-4-1-20250805", (4, 1), False, False),
        ("claude-sonnet-4-5", (4, 5), False, False),
        ("claude-opus-4-6", (4, 6), True, False),
        ("claude-opus-4-7", (4, 7), True, True),
        ("claude-sonnet-5", (5, 0), True, True),
        ("claude-fable-5-1", (5, 1), True, True),
        ("my-proxy-alias", None, False, False),
    ],
)
def test_model_generations(
    model: str, version: tuple[int, int] | None, adaptive: bool, no_sampling: bool
) -> None:
    claude = translate.claude_model(model)
    assert (claude.version, claude.adaptive_thinking, claude.rejects_sampling) == (
        version,
        adaptive,
        no_sampling,
    )


@pytest.mark.parametrize("name", ["temperature", "top_p", "top_k"])
def test_sampling_parameters_are_unsupported_on_models_that_refuse_them(name: str) -> None:
    body = {"messages": [user()], name: 0.3}
    with pytest.raises(errors.UnsupportedParamsError) as info:
        translate.apply_param_policy(body, drop_params=False, model="claude-opus-4-7")
    assert info.value.param == name
    assert translate.apply_param_policy(body, drop_params=True, model="claude-opus-4-7") == {
        "messages": [user()]
    }
    assert translate.apply_param_policy(body, drop_params=False, model="claude-sonnet-4-5") == body


def test_default_temperature_is_left_out_for_models_that_refuse_sampling() -> None:
    body = {"messages": [user()], "temperature": 1}
    assert translate.apply_param_policy(body, drop_params=False, model="claude-opus-4-7") == {
        "messages": [user()]
    }


def test_reasoning_effort_none_sends_no_thinking() -> None:
    assert "thinking" not in translate_request({"messages": [user()], "reasoning_effort": "none"})


def test_thinking_is_passed_through_and_wins_over_reasoning_effort() -> None:
    thinking = {"type": "enabled", "budget_tokens": 2000}
    request = translate_request({"messages": [user()], "thinking": thinking, "reasoning_effort": "high"})
    assert request["thinking"] == thinking
    assert request["max_tokens"] == 2000 + translate.DEFAULT_MAX_TOKENS


def test_unknown_reasoning_effort_is_a_bad_request() -> None:
    with pytest.raises(errors.BadRequestError) as info:
        translate_request({"messages": [user()], "reasoning_effort": "extreme"})
    assert info.value.param == "reasoning_effort"


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"type": "auto"}),
        ("none", {"type": "none"}),
        ("required", {"type": "any"}),
        ({"type": "function", "function": {"name": "f"}}, {"type": "tool", "name": "f"}),
    ],
)
def test_tool_choice(choice: Any, expected: dict[str, Any]) -> None:
    tools = [
        {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}
    ]
    request = translate_request({"messages": [user()], "tools": tools, "tool_choice": choice})
    assert request["tool_choice"] == expected


def test_tool_choice_without_tools_is_not_sent() -> None:
    assert "tool_choice" not in translate_request({"messages": [user()], "tool_choice": "auto"})


def test_native_anthropic_tools_pass_through() -> None:
    search = {"type": "web_search_20250305", "name": "web_search", "max_uses": 2}
    assert translate_request({"messages": [user()], "tools": [search]})["tools"] == [search]


def test_system_blocks_with_cache_control_stay_blocks() -> None:
    system = {
        "role": "system",
        "content": [{"type": "text", "text": "long context", "cache_control": {"type": "ephemeral"}}],
    }
    request = translate_request({"messages": [system, user()]})
    assert request["system"] == [
        {"type": "text", "text": "long context", "cache_control": {"type": "ephemeral"}}
    ]


def test_consecutive_assistant_messages_merge_and_thinking_blocks_lead() -> None:
    thinking = {"type": "thinking", "thinking": "hmm", "signature": "sig"}
    messages = [
        user(),
        {"role": "assistant", "content": "one", "thinking_blocks": [thinking]},
        {"role": "assistant", "content": "two"},
        user("again"),
    ]
    turns = translate_request({"messages": messages})["messages"]
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    assert turns[1]["content"] == [thinking, {"type": "text", "text": "one"}, {"type": "text", "text": "two"}]


def test_empty_assistant_text_is_left_out() -> None:
    call = {"id": "t1", "type": "function", "function": {"name": "f", "arguments": ""}}
    messages = [user(), {"role": "assistant", "content": "", "tool_calls": [call]}]
    turns = translate_request({"messages": messages})["messages"]
    assert turns[1]["content"] == [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]


def test_tool_arguments_that_are_not_json_are_a_bad_request() -> None:
    call = {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{not json"}}
    with pytest.raises(errors.BadRequestError):
        translate_request({"messages": [user(), {"role": "assistant", "tool_calls": [call]}]})


def test_pdf_files_become_documents() -> None:
    part = {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0xLjQK"}}
    turns = translate_request({"messages": [{"role": "user", "content": [part]}]})["messages"]
    assert turns[0]["content"] == [
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0xLjQK"},
        }
    ]


@pytest.mark.parametrize(
    "part",
    [
        {"type": "image_url", "image_url": {"url": "data:image/bmp;base64,Qk0="}},
        {"type": "image_url", "image_url": {"url": "data:image/png,rawbytes"}},
        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
    ],
)
def test_content_anthropic_cannot_take_is_a_bad_request(part: dict[str, Any]) -> None:
    with pytest.raises(errors.BadRequestError):
        translate_request({"messages": [{"role": "user", "content": [part]}]})


def test_json_schema_response_format_becomes_structured_output() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    request = translate_request({"messages": [user()], "response_format": fmt})
    assert request["output_config"] == {"format": {"type": "json_schema", "schema": schema}}


def test_text_response_format_is_ignored() -> None:
    request = translate_request({"messages": [user()], "response_format": {"type": "text"}})
    assert "output_config" not in request


def test_json_object_response_format_is_refused_unless_dropped() -> None:
    body = {"messages": [user()], "response_format": {"type": "json_object"}}
    with pytest.raises(errors.UnsupportedParamsError) as info:
        translate_request(body)
    assert info.value.param == "response_format"
    assert "output_config" not in translate_request(body, drop=True)


# --- parameters Anthropic cannot take ------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("n", 2),
        ("logit_bias", {"50256": -100}),
        ("presence_penalty", 0.5),
        ("frequency_penalty", 0.5),
        ("logprobs", True),
        ("seed", 7),
    ],
)
def test_unsupported_parameter_fails_with_a_400_naming_it_and_the_provider(name: str, value: Any) -> None:
    with pytest.raises(errors.UnsupportedParamsError) as info:
        translate.apply_param_policy({"messages": [user()], name: value}, drop_params=False)
    assert info.value.status_code == 400
    assert info.value.param == name
    assert name in info.value.message
    assert "anthropic" in info.value.message


def test_drop_params_removes_unsupported_parameters() -> None:
    body = {"messages": [user()], "n": 3, "seed": 1, "logit_bias": {"1": 1}, "temperature": 0.5}
    assert translate.apply_param_policy(body, drop_params=True) == {"messages": [user()], "temperature": 0.5}


@pytest.mark.parametrize(("name", "value"), [("n", 1), ("logprobs", False), ("presence_penalty", 0)])
def test_neutral_values_of_unsupported_parameters_are_harmless(name: str, value: Any) -> None:
    assert translate.apply_param_policy({"messages": [user()], name: value}, drop_params=False) == {
        "messages": [user()]
    }


# --- responses -----------------------------------------------------------------------------------


def test_message_with_thinking_text_and_tool_use_matches_stored_payload() -> None:
    completion = translate.to_openai_completion(load("message_tool_use.anthropic.json"), created=CREATED)
    assert completion == load("message_tool_use.openai.json")


def test_tool_only_message_has_null_content() -> None:
    message = load("message_tool_use.anthropic.json")
    message["content"] = [block for block in message["content"] if block["type"] == "tool_use"]
    choice = translate.to_openai_completion(message, created=CREATED)["choices"][0]
    assert choice["message"]["content"] is None
    assert orjson.loads(choice["message"]["tool_calls"][0]["function"]["arguments"]) == {
        "location": "Paris, France",
        "unit": "celsius",
    }


@pytest.mark.parametrize(
    ("stop_reason", "finish_reason"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("model_context_window_exceeded", "length"),
        (None, "stop"),
    ],
)
def test_finish_reasons(stop_reason: str | None, finish_reason: str) -> None:
    assert translate.finish_reason(stop_reason) == finish_reason


def test_usage_without_cache_has_no_details() -> None:
    assert translate.openai_usage({"input_tokens": 10, "output_tokens": 5}) == {
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "total_tokens": 15,
    }


# --- streams -------------------------------------------------------------------------------------


async def _lines(content: bytes) -> AsyncIterator[bytes]:
    for line in content.split(b"\n"):
        yield line


async def _translate_stream(content: bytes, translator: StreamTranslator) -> list[dict[str, Any]]:
    chunks = []
    async for _event, data in iter_data(_lines(content)):
        chunks.extend(translator.feed(orjson.loads(data)))
    return chunks


async def test_stream_with_thinking_text_and_tool_arguments_matches_stored_chunks() -> None:
    translator = StreamTranslator(created=CREATED, include_usage=True, errors=CTX)
    chunks = await _translate_stream(STREAM_SSE, translator)
    expected = [
        orjson.loads(line) for line in (FIXTURES / "stream_tool_use.openai.jsonl").read_bytes().splitlines()
    ]
    assert chunks == expected
    assert translator.finished


async def test_stream_without_include_usage_has_no_usage_chunk() -> None:
    translator = StreamTranslator(created=CREATED, errors=CTX)
    chunks = await _translate_stream(STREAM_SSE, translator)
    assert all("usage" not in chunk and chunk["choices"] for chunk in chunks)


def test_tool_arguments_reassemble_across_two_tool_calls() -> None:
    translator = StreamTranslator(created=CREATED, errors=CTX)
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": {"id": "m", "model": MODEL, "usage": {}}}
    ]
    for index, (call_id, args) in enumerate([("t1", '{"a": 1}'), ("t2", '{"b": [2, 3]}')]):
        head = {"type": "tool_use", "id": call_id, "name": f"f{index}", "input": {}}
        events.append({"type": "content_block_start", "index": index, "content_block": head})
        for piece in (args[:3], args[3:]):
            delta = {"type": "input_json_delta", "partial_json": piece}
            events.append({"type": "content_block_delta", "index": index, "delta": delta})
        events.append({"type": "content_block_stop", "index": index})
    calls: dict[int, dict[str, Any]] = {}
    for event in events:
        for chunk in translator.feed(event):
            for call in chunk["choices"][0]["delta"].get("tool_calls", []):
                entry = calls.setdefault(call["index"], {"arguments": ""})
                entry.update({k: v for k, v in call.items() if k in ("id",)})
                entry["name"] = call.get("function", {}).get("name") or entry.get("name")
                entry["arguments"] += call["function"]["arguments"]
    assert calls == {
        0: {"id": "t1", "name": "f0", "arguments": '{"a": 1}'},
        1: {"id": "t2", "name": "f1", "arguments": '{"b": [2, 3]}'},
    }


def test_in_band_error_event_raises_the_mapped_error() -> None:
    translator = StreamTranslator(created=CREATED, errors=CTX)
    with pytest.raises(errors.ServiceUnavailableError) as info:
        translator.feed(load("error_overloaded.json"))
    assert info.value.retryable
    assert info.value.deployment_id == "dep-1"


def test_redacted_thinking_is_passed_on_whole() -> None:
    translator = StreamTranslator(created=CREATED, errors=CTX)
    block = {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix"}
    chunks = translator.feed({"type": "content_block_start", "index": 0, "content_block": block})
    assert chunks[0]["choices"][0]["delta"] == {"thinking_blocks": [block]}


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_type", "cls"),
    [
        (400, "invalid_request_error", errors.BadRequestError),
        (401, "authentication_error", errors.AuthenticationError),
        (403, "permission_error", errors.PermissionDeniedError),
        (404, "not_found_error", errors.NotFoundError),
        (413, "request_too_large", errors.RequestTooLargeError),
        (429, "rate_limit_error", errors.RateLimitError),
        (500, "api_error", errors.InternalServerError),
        (504, "timeout_error", errors.Timeout),
        (529, "overloaded_error", errors.ServiceUnavailableError),
        (418, "teapot_error", errors.BadRequestError),
        (502, "", errors.BadGatewayError),
    ],
)
def test_error_types_map_to_routerd_errors(
    status: int, error_type: str, cls: type[errors.OpenAIError]
) -> None:
    body = {"type": "error", "error": {"type": error_type, "message": "something"}}
    error = translate.error_from_body(status, body, {}, CTX)
    assert type(error) is cls
    assert error.upstream_status == status
    assert (error.llm_provider, error.model, error.deployment_id) == ("anthropic", MODEL, "dep-1")


def test_overloaded_is_retryable_and_rate_limit_carries_retry_after() -> None:
    assert translate.error_from_body(529, load("error_overloaded.json"), {}, CTX).retryable
    body = {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}
    error = translate.error_from_body(429, body, {"retry-after": "7"}, CTX)
    assert isinstance(error, errors.RateLimitError)
    assert error.retry_after == 7.0


def test_prompt_too_long_is_a_context_window_error() -> None:
    error = translate.error_from_body(400, load("error_prompt_too_long.json"), {}, CTX)
    assert isinstance(error, errors.ContextWindowExceededError)
    assert error.code == "context_length_exceeded"


def test_error_that_is_not_json_is_classified_by_status() -> None:
    assert isinstance(translate.error_from_body(503, None, {}, CTX), errors.ServiceUnavailableError)


def test_upstream_messages_are_scrubbed_of_the_key() -> None:
    body = {
        "type": "error",
        "error": {"type": "authentication_error", "message": "bad key sk-ant-secret-key"},
    }
    error = translate.error_from_body(401, body, {}, CTX)
    assert "sk-ant-secret-key" not in str(error)
    assert "sk-ant-secret-key" not in error.message
