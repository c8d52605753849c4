"""``turn_off_message_logging`` in the SDK: callbacks get copies without prompt and answer text (module
setting, or one ``CustomLogger``'s own flag), the caller's answer is intact; OpenTelemetry records no
text; ``log_raw_request_response`` is refused loudly. Against the loopback OpenAI fake."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import routerd
import routerd.module_settings as module_settings
from routerd.integrations.custom_logger import CustomLogger
from routerd.integrations.redact import REDACTED, redact_kwargs, redact_response
from routerd.testing.openai_fake import Reply

SECRET_PROMPT = "secret prompt text"
SECRET_ANSWER = "secret answer text"
PROMPT = [{"role": "user", "content": SECRET_PROMPT}]


class Capture(CustomLogger):
    """Keeps every hook's (name, kwargs, response_obj)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.events: list[tuple[str, dict[str, Any], Any]] = []

    def log_pre_api_call(self, model: str, messages: Any, kwargs: dict[str, Any]) -> None:
        assert messages == kwargs["input"]
        self.events.append(("pre", dict(kwargs), None))

    def log_stream_event(self, kwargs: dict[str, Any], response_obj: Any, start: Any, end: Any) -> None:
        self.events.append(("stream", dict(kwargs), response_obj))

    def log_success_event(self, kwargs: dict[str, Any], response_obj: Any, start: Any, end: Any) -> None:
        self.events.append(("success", dict(kwargs), response_obj))

    def log_failure_event(self, kwargs: dict[str, Any], response_obj: Any, start: Any, end: Any) -> None:
        self.events.append(("failure", dict(kwargs), response_obj))

    async def async_log_stream_event(
        self, kwargs: dict[str, Any], response_obj: Any, start: Any, end: Any
    ) -> None:
        self.events.append(("async_stream", dict(kwargs), response_obj))

    async def async_log_success_event(
        self, kwargs: dict[str, Any], response_obj: Any, start: Any, end: Any
    ) -> None:
        self.events.append(("async_success", dict(kwargs), response_obj))

    def text(self) -> str:
        return repr(self.events)


def test_module_setting_redacts_what_callbacks_get_not_what_the_caller_gets(
    openai_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[dict[str, Any], Any]] = []

    def track(kwargs: dict[str, Any], response: Any, start: Any, end: Any) -> None:
        seen.append((kwargs, response))

    logger = Capture()
    monkeypatch.setattr(routerd, "turn_off_message_logging", True)
    monkeypatch.setattr(routerd, "success_callback", [track])
    monkeypatch.setattr(routerd, "callbacks", [logger])
    openai_env.enqueue(Reply(content=SECRET_ANSWER))
    response = routerd.completion(model="gpt-4o", messages=PROMPT)

    assert response.choices[0].message.content == SECRET_ANSWER  # the caller's answer is intact
    ((kwargs, logged),) = seen
    assert kwargs["messages"] == kwargs["input"] == REDACTED
    assert logged.choices[0].message.content == REDACTED
    assert logged is not response
    # the metadata is all there
    assert kwargs["model"] == "gpt-4o" and kwargs["litellm_call_id"]
    assert kwargs["response_cost"] is not None and kwargs["start_time"] <= kwargs["end_time"]
    assert logged.usage.total_tokens == response.usage.total_tokens > 0
    assert logged.id == response.id
    assert [name for name, _, _ in logger.events] == ["pre", "success"]
    assert SECRET_PROMPT not in repr(seen) + logger.text()
    assert SECRET_ANSWER not in repr(seen) + logger.text()


def test_without_the_setting_callbacks_see_the_text(openai_env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    logger = Capture()
    monkeypatch.setattr(routerd, "callbacks", [logger])
    openai_env.enqueue(Reply(content=SECRET_ANSWER))
    routerd.completion(model="gpt-4o", messages=PROMPT)
    assert logger.events[0][1]["messages"] == PROMPT
    assert logger.events[-1][2].choices[0].message.content == SECRET_ANSWER


def test_a_streamed_call_redacts_chunks_and_the_assembled_response(
    openai_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    logger = Capture()
    monkeypatch.setattr(routerd, "turn_off_message_logging", True)
    monkeypatch.setattr(routerd, "callbacks", [logger])
    openai_env.enqueue(Reply(content=SECRET_ANSWER))

    async def consume() -> list[Any]:
        stream = await routerd.acompletion(model="gpt-4o", messages=PROMPT, stream=True)
        return [chunk async for chunk in stream]

    chunks = asyncio.run(consume())
    caller_text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert caller_text == SECRET_ANSWER  # the caller's chunks are intact
    streamed = [obj for name, _, obj in logger.events if name in {"stream", "async_stream"}]
    assert len(streamed) == 2 * len(chunks)
    assert all(c.choices[0].delta.content in {None, REDACTED} for c in streamed if c.choices)
    assert any(c.choices and c.choices[0].delta.content == REDACTED for c in streamed)
    name, kwargs, final = logger.events[-1]
    assert name == "async_success"
    assert final.choices[0].message.content == REDACTED
    assert kwargs["complete_streaming_response"].choices[0].message.content == REDACTED
    assert SECRET_ANSWER not in logger.text() and SECRET_PROMPT not in logger.text()


def test_a_logger_built_with_the_flag_alone_gets_redacted_copies(
    openai_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    quiet, loud = Capture(turn_off_message_logging=True), Capture()
    monkeypatch.setattr(routerd, "callbacks", [quiet, loud])
    openai_env.enqueue(Reply(content=SECRET_ANSWER))
    response = routerd.completion(model="gpt-4o", messages=PROMPT)
    assert response.choices[0].message.content == SECRET_ANSWER
    assert quiet.events[0][1]["messages"] == REDACTED
    assert quiet.events[-1][2].choices[0].message.content == REDACTED
    assert loud.events[0][1]["messages"] == PROMPT  # the other logger is not affected
    assert loud.events[-1][2].choices[0].message.content == SECRET_ANSWER


def test_failures_and_text_completions_are_redacted(openai_env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    logger = Capture()
    monkeypatch.setattr(routerd, "turn_off_message_logging", True)
    monkeypatch.setattr(routerd, "callbacks", [logger])
    openai_env.enqueue(Reply.error(401, "no"))
    with pytest.raises(routerd.AuthenticationError):
        routerd.completion(model="gpt-4o", messages=PROMPT, num_retries=0)
    name, kwargs, _ = logger.events[-1]
    assert name == "failure" and kwargs["messages"] == REDACTED and kwargs["exception"] is not None

    openai_env.enqueue(Reply(content=SECRET_ANSWER))
    response = routerd.text_completion(model="gpt-3.5-turbo-instruct", prompt=SECRET_PROMPT)
    assert response.choices[0].text == SECRET_ANSWER
    name, kwargs, logged = logger.events[-1]
    assert name == "success" and kwargs["prompt"] == REDACTED
    assert logged.choices[0].text == REDACTED


def test_tool_call_arguments_and_function_calls_are_redacted() -> None:
    response = {
        "id": "chatcmpl-1",
        "usage": {"total_tokens": 7},
        "choices": [
            {
                "message": {
                    "content": None,
                    "tool_calls": [{"id": "t1", "function": {"name": "lookup", "arguments": '{"q": "x"}'}}],
                    "function_call": {"name": "lookup", "arguments": '{"q": "y"}'},
                }
            },
            {"delta": {"content": "partial", "tool_calls": [{"function": {"arguments": '{"q'}}]}},
        ],
    }
    redacted = redact_response(response)
    first, second = redacted["choices"]
    assert first["message"]["content"] is None  # no text, nothing to hide
    assert first["message"]["tool_calls"][0]["function"] == {"name": "lookup", "arguments": REDACTED}
    assert first["message"]["function_call"]["arguments"] == REDACTED
    assert second["delta"]["content"] == REDACTED
    assert second["delta"]["tool_calls"][0]["function"]["arguments"] == REDACTED
    assert redacted["usage"] == {"total_tokens": 7} and redacted["id"] == "chatcmpl-1"
    assert response["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] == '{"q": "x"}'
    kwargs = {"model": "m", "input": ["embed me"], "messages": None}
    assert redact_kwargs(kwargs) == {"model": "m", "input": REDACTED, "messages": None}


def test_open_telemetry_records_no_text_with_message_logging_off(
    openai_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from routerd.integrations.otel import OpenTelemetryLogger

    def spans_text(**logger_options: Any) -> str:
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        logger = OpenTelemetryLogger(provider, capture_content=True, **logger_options)
        monkeypatch.setattr(routerd, "callbacks", [logger])
        openai_env.enqueue(Reply(content=SECRET_ANSWER))
        routerd.completion(model="gpt-4o", messages=PROMPT)
        return repr([dict(span.attributes or {}) for span in exporter.get_finished_spans()])

    recorded = spans_text()  # content capture on: the text is recorded
    assert SECRET_PROMPT in recorded and SECRET_ANSWER in recorded
    own_flag = spans_text(turn_off_message_logging=True)
    assert "gen_ai.usage.input_tokens" in own_flag
    assert "gen_ai.input.messages" not in own_flag and "gen_ai.output.messages" not in own_flag
    monkeypatch.setattr(routerd, "turn_off_message_logging", True)
    module_wide = spans_text()
    assert "gen_ai.usage.input_tokens" in module_wide
    assert "gen_ai.input.messages" not in module_wide and "gen_ai.output.messages" not in module_wide
    assert SECRET_PROMPT not in own_flag + module_wide and SECRET_ANSWER not in own_flag + module_wide


def test_log_raw_request_response_is_refused_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(module_settings, "_raw_warned", False)
    monkeypatch.setattr(routerd, "log_raw_request_response", True)
    with pytest.warns(UserWarning, match="log_raw_request_response is not supported"):
        routerd.completion(model="gpt-4o", messages=PROMPT, mock_response="hi")
