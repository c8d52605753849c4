"""The official ``anthropic`` and ``openai`` clients against the front doors, in-process.

The app (tests/frontdoors/door_app.py) wires the translation modules over a scripted router that
answers with stored chat payloads; the clients run their own request building, response parsing,
SSE decoding and stream accumulation on what the front doors produce.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from tests.frontdoors.conftest import load, load_lines
from tests.frontdoors.door_app import build_app

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def script(chat: dict[str, Any]) -> Any:
    """The scripted router: stored answers, streamed when asked; echoes the last user text."""
    if chat.get("stream"):
        return load_lines("anthropic/stream_chunks.jsonl")
    if chat.get("tools"):
        return load("anthropic/completion_tools.json")
    last = chat["messages"][-1]["content"]
    return {
        "id": "chatcmpl-echo",
        "model": "upstream-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": f"echo: {last}"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
    }


@pytest.fixture
def app() -> Any:
    return build_app(script)


@pytest.fixture
async def anthropic_client(app: Any) -> AsyncIterator[anthropic.AsyncAnthropic]:
    http = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://routerd.test")
    async with (
        http,
        anthropic.AsyncAnthropic(
            api_key="test-key", base_url="http://routerd.test", http_client=http, max_retries=0
        ) as client,
    ):
        yield client


@pytest.fixture
async def openai_client(app: Any) -> AsyncIterator[openai.AsyncOpenAI]:
    http = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://routerd.test/v1")
    async with (
        http,
        openai.AsyncOpenAI(
            api_key="test-key", base_url="http://routerd.test/v1", http_client=http, max_retries=0
        ) as client,
    ):
        yield client


async def test_anthropic_plain_and_tools(anthropic_client: anthropic.AsyncAnthropic, app: Any) -> None:
    message = await anthropic_client.messages.create(
        model="gpt-4o", max_tokens=64, system="Be brief.", messages=[{"role": "user", "content": "hello"}]
    )
    assert message.content[0].text == "echo: hello"  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn" and message.usage.input_tokens == 9
    assert app.state.calls[-1]["messages"][0] == {"role": "system", "content": "Be brief."}

    with_tools = await anthropic_client.messages.create(
        model="gpt-4o",
        max_tokens=64,
        tools=[WEATHER_TOOL],
        messages=[{"role": "user", "content": "weather?"}],  # type: ignore[list-item]
    )
    assert with_tools.stop_reason == "tool_use"
    uses = [block for block in with_tools.content if block.type == "tool_use"]
    assert [use.input for use in uses] == [{"city": "Paris"}, {"city": "Lyon"}]


async def test_anthropic_image_input(anthropic_client: anthropic.AsyncAnthropic, app: Any) -> None:
    await anthropic_client.messages.create(
        model="gpt-4o",
        max_tokens=64,
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
                    },
                    {"type": "text", "text": "what is this?"},
                ],
            }
        ],
    )
    assert app.state.calls[-1]["messages"][0]["content"][0] == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="},
    }


async def test_anthropic_stream(anthropic_client: anthropic.AsyncAnthropic) -> None:
    async with anthropic_client.messages.stream(
        model="gpt-4o", max_tokens=64, messages=[{"role": "user", "content": "weather?"}]
    ) as stream:
        texts = [text async for text in stream.text_stream]
        message = await stream.get_final_message()
    assert "".join(texts) == "Let me check."
    assert [block.type for block in message.content] == ["thinking", "text", "tool_use", "tool_use"]
    assert message.stop_reason == "tool_use" and message.usage.output_tokens == 25


async def test_anthropic_count_tokens(anthropic_client: anthropic.AsyncAnthropic) -> None:
    counted = await anthropic_client.messages.count_tokens(
        model="gpt-4o", messages=[{"role": "user", "content": "one two three four five"}]
    )
    assert counted.input_tokens > 5


async def test_anthropic_errors_reach_the_client_typed(anthropic_client: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        await anthropic_client.messages.create(
            model="gpt-4o",
            max_tokens=64,
            messages=[{"role": "system", "content": "x"}],  # type: ignore[typeddict-item]
        )
    assert caught.value.status_code == 400
    assert caught.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert "messages[0].role" in caught.value.message


async def test_openai_responses_plain_and_previous_response(
    openai_client: openai.AsyncOpenAI, app: Any
) -> None:
    first = await openai_client.responses.create(
        model="claude", input="Name a colour.", instructions="Be brief."
    )
    assert first.output_text == "echo: Name a colour." and first.status == "completed"
    second = await openai_client.responses.create(
        model="claude", input="Another?", previous_response_id=first.id
    )
    assert [m["role"] for m in app.state.calls[-1]["messages"]] == ["user", "assistant", "user"]
    assert second.previous_response_id == first.id
    fetched = await openai_client.responses.retrieve(second.id)
    assert fetched.output_text == second.output_text


async def test_openai_responses_tools_and_stream(openai_client: openai.AsyncOpenAI) -> None:
    tool: Any = {"type": "function", "name": "get_weather", "parameters": WEATHER_TOOL["input_schema"]}
    plain = await openai_client.responses.create(model="claude", input="weather?", tools=[tool])
    assert [item.type for item in plain.output][-2:] == ["function_call", "function_call"]

    async with openai_client.responses.stream(model="claude", input="weather?", tools=[tool]) as stream:
        deltas = [event.delta async for event in stream if event.type == "response.output_text.delta"]
        final = await stream.get_final_response()
    assert "".join(deltas) == "Let me check." and final.output_text == "Let me check."
    calls = [item for item in final.output if item.type == "function_call"]
    assert [c.name for c in calls] == ["get_weather", "get_weather"]


async def test_openai_responses_errors_are_openai_shaped(openai_client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        await openai_client.responses.create(model="claude", input="x", previous_response_id="resp_unknown")
    with pytest.raises(openai.BadRequestError) as caught:
        await openai_client.responses.create(model="claude", input="x", tools=[{"type": "web_search"}])
    assert caught.value.param == "tools[0].type"  # type: ignore[attr-defined]
