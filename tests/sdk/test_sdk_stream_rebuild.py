"""Issue 14 item 1: ``stream_chunk_builder`` rebuilds tool-call and text-completion streams exactly.

Tool-call streams keep their real completion tokens (the usage chunk when the stream had one, else an
estimate that counts the tool calls, not only the text); text-completion streams rebuild into a
``TextCompletionResponse`` with each choice's text.
"""

from __future__ import annotations

from typing import Any

from routerd.providers import shapes
from routerd.sdk.streaming import _assembled, chat_chunk, stream_chunk_builder, text_chunk
from routerd.sdk.types import ModelResponse, TextCompletionResponse
from routerd.tokens import count_prompt_tokens, estimate_tokens

ARGUMENTS = '{"location": "Tokyo, Japan", "unit": "celsius", "days": 5, "detail": "hourly forecast"}'
TOOL = shapes.ToolCall("get_weather", ARGUMENTS, "call_7")


def tool_stream(include_usage: bool, content: str = "") -> list[dict[str, Any]]:
    answer = shapes.Answer(content=content, tool_calls=(TOOL,))
    return list(
        shapes.chat_stream(
            completion_id="chatcmpl-t",
            created=1,
            model="gpt-4o",
            answers=[answer],
            usage_=shapes.usage(11, 29),
            include_usage=include_usage,
        )
    )


def text_stream(include_usage: bool) -> list[dict[str, Any]]:
    return list(
        shapes.text_stream(
            completion_id="cmpl-t",
            created=2,
            model="gpt-3.5-turbo-instruct",
            texts=[("Once upon a time, far away", "length"), ("In the beginning", "stop")],
            usage_=shapes.usage(4, 13),
            include_usage=include_usage,
        )
    )


def test_a_tool_call_stream_keeps_the_usage_chunk_counts() -> None:
    chunks = [c for c in (chat_chunk(raw) for raw in tool_stream(True)) if c is not None]
    built = stream_chunk_builder(chunks)
    assert isinstance(built, ModelResponse)
    assert built.usage is not None
    assert (built.usage.prompt_tokens, built.usage.completion_tokens, built.usage.total_tokens) == (
        11,
        29,
        40,
    )
    call = built.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.arguments == ARGUMENTS


def test_a_tool_call_stream_without_usage_estimates_from_the_calls() -> None:
    built = stream_chunk_builder(tool_stream(False), messages=[{"role": "user", "content": "weather?"}])
    assert isinstance(built, ModelResponse) and built.usage is not None
    expected = estimate_tokens("get_weather") + estimate_tokens(ARGUMENTS)
    assert built.usage.completion_tokens == expected
    assert built.usage.prompt_tokens > 0
    assert built.usage.total_tokens == built.usage.prompt_tokens + expected
    # text beside the calls counts too
    with_text = stream_chunk_builder(tool_stream(False, content="Let me check."))
    assert isinstance(with_text, ModelResponse) and with_text.usage is not None
    assert with_text.usage.completion_tokens == expected + estimate_tokens("Let me check.")


def test_a_text_completion_stream_rebuilds_its_text_and_usage() -> None:
    chunks = [c for c in (text_chunk(raw) for raw in text_stream(True)) if c is not None]
    built = stream_chunk_builder(chunks)
    assert isinstance(built, TextCompletionResponse)
    assert [(c.index, c.text, c.finish_reason) for c in built.choices] == [
        (0, "Once upon a time, far away", "length"),
        (1, "In the beginning", "stop"),
    ]
    assert (built.id, built.model, built.object) == ("cmpl-t", "gpt-3.5-turbo-instruct", "text_completion")
    assert built.usage is not None and (built.usage.prompt_tokens, built.usage.completion_tokens) == (4, 13)


def test_a_text_completion_stream_without_usage_estimates_from_its_text() -> None:
    built = stream_chunk_builder(text_stream(False), prompt="Tell me a story")
    assert isinstance(built, TextCompletionResponse) and built.usage is not None
    completion = estimate_tokens("Once upon a time, far away") + estimate_tokens("In the beginning")
    assert built.usage.completion_tokens == completion
    assert built.usage.prompt_tokens == count_prompt_tokens("Tell me a story")


def test_callbacks_see_a_text_stream_assembled() -> None:
    chunks = [c for c in (text_chunk(raw) for raw in text_stream(True)) if c is not None]
    assembled = _assembled(chunks)
    assert isinstance(assembled, TextCompletionResponse)
    assert assembled.choices[0].text == "Once upon a time, far away"
