"""Issue 7, done when: OpenAI is down (503), the Anthropic fallback answers, plain and streamed, and the
``openai`` client sees an ordinary OpenAI response. Also Gemini refusing on safety grounds, answered by
Anthropic through ``content_policy_fallbacks``.

Every upstream is a fake speaking its provider's real wire format; the fakes check what routerd sends
them (the Anthropic fake refuses fields its API does not know, requires ``x-api-key`` and
``anthropic-version``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import orjson
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from routerd.testing import FakeOpenAI, Reply
from routerd.testing.anthropic_fake import AnthropicReply, FakeAnthropic
from routerd.testing.gemini_fake import FakeGemini, GeminiReply
from routerd.testing.server import RouterdServer

from .support import (
    ANTHROPIC_KEY,
    GEMINI_KEY,
    MASTER_KEY,
    OPENAI_KEY,
    UPSTREAM_KEYS,
    capture_logs,
    client_for,
    reset,
    running_fake,
    user,
    write_config,
)

CLAUDE = "claude-3-5-haiku-20241022"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


class DownOpenAI(FakeOpenAI):
    """OpenAI during an outage: every call is answered with a 503."""

    def next_reply(self, path: str) -> Reply | None:
        return Reply.error(503, "The engine is currently overloaded, please try again later")


def failover_config(openai_base: str, anthropic_base: str, gemini_base: str) -> str:
    return f"""
model_list:
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_base: {openai_base}
      api_key: {OPENAI_KEY}
    model_info: {{id: openai-gpt-4o}}
  - model_name: claude
    litellm_params:
      model: anthropic/{CLAUDE}
      api_base: {anthropic_base}
      api_key: {ANTHROPIC_KEY}
    model_info: {{id: anthropic-claude}}
  - model_name: gemini
    litellm_params:
      model: gemini/gemini-2.5-flash
      api_base: {gemini_base}
      api_key: {GEMINI_KEY}
    model_info: {{id: gemini-flash}}
router_settings:
  num_retries: 1
  backoff_base: 0.01
  backoff_cap: 0.02
  disable_cooldowns: true
  fallbacks:
    - gpt-4o: [claude]
  content_policy_fallbacks:
    - gemini: [claude]
general_settings:
  master_key: {MASTER_KEY}
"""


class Upstreams:
    def __init__(self, openai_fake: DownOpenAI, anthropic: FakeAnthropic, gemini: FakeGemini) -> None:
        self.openai = openai_fake
        self.anthropic = anthropic
        self.gemini = gemini


@pytest.fixture(scope="module")
def upstreams() -> Iterator[Upstreams]:
    with (
        running_fake(DownOpenAI(api_key=OPENAI_KEY)) as down,
        running_fake(FakeAnthropic(api_key=ANTHROPIC_KEY)) as anthropic,
        running_fake(FakeGemini(api_key=GEMINI_KEY)) as gemini,
    ):
        yield Upstreams(down, anthropic, gemini)


@pytest.fixture(scope="module")
def failover_server(
    upstreams: Upstreams, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RouterdServer]:
    text = failover_config(upstreams.openai.base_url, upstreams.anthropic.base_url, upstreams.gemini.base_url)
    config = write_config(Path(tmp_path_factory.mktemp("failover")), text)
    with RouterdServer.from_file(config) as server:
        yield server


@pytest.fixture
def server(failover_server: RouterdServer, upstreams: Upstreams) -> RouterdServer:
    for fake in (upstreams.openai, upstreams.anthropic, upstreams.gemini):
        reset(fake)
    return failover_server


def assert_sent_to_anthropic(upstreams: Upstreams, *, stream: bool) -> None:
    """What routerd sent the fallback: the Messages API with its credentials, as documented."""
    assert len(upstreams.anthropic.requests) == 1
    sent = upstreams.anthropic.requests[0]
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == ANTHROPIC_KEY
    assert sent.headers["anthropic-version"]
    assert sent.json["model"] == CLAUDE
    assert sent.json["max_tokens"] > 0  # Anthropic requires it; the client sent none
    assert bool(sent.json.get("stream")) is stream


# -- OpenAI down -> Anthropic ---------------------------------------------------------------------------


def test_openai_503_falls_back_to_anthropic(server: RouterdServer, upstreams: Upstreams) -> None:
    raw = client_for(server).chat.completions.with_raw_response.create(
        model="gpt-4o",
        messages=[{"role": "system", "content": "Be brief."}, *user("Is the fallback up?")],
    )
    completion = raw.parse()

    assert completion.object == "chat.completion"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == "echo: Is the fallback up?"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens > 0
    assert int(raw.headers["x-routerd-attempted-fallbacks"]) >= 1
    assert raw.headers["x-routerd-model-id"] == "anthropic-claude"
    # OpenAI was tried first and failed (routerd does not wait out a backoff when a fallback is ready)
    assert len(upstreams.openai.requests) >= 1
    assert_sent_to_anthropic(upstreams, stream=False)
    assert upstreams.anthropic.requests[0].json["system"] in (
        "Be brief.",
        [{"type": "text", "text": "Be brief."}],
    )
    # the OpenAI shape, checked strictly against the openai package's own types
    ChatCompletion.model_validate(orjson.loads(raw.text), strict=True)


def test_openai_503_falls_back_to_anthropic_streamed(server: RouterdServer, upstreams: Upstreams) -> None:
    with client_for(server).chat.completions.with_streaming_response.create(
        model="gpt-4o",
        messages=user("stream through the fallback please"),
        stream=True,
        stream_options={"include_usage": True},
    ) as response:
        fallbacks = int(response.headers["x-routerd-attempted-fallbacks"])
        deployment = response.headers["x-routerd-model-id"]
        chunks = list(response.parse())

    assert fallbacks >= 1
    assert deployment == "anthropic-claude"
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) >= 2, "streamed event by event, not buffered"
    assert "".join(pieces) == "echo: stream through the fallback please"
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert len({chunk.id for chunk in chunks}) == 1  # one completion, as OpenAI streams it
    assert upstreams.openai.requests, "the OpenAI deployment was tried first"
    assert_sent_to_anthropic(upstreams, stream=True)


def test_streamed_fallback_on_the_wire_is_openai_sse(server: RouterdServer, upstreams: Upstreams) -> None:
    response = httpx.post(
        server.base_url + "/v1/chat/completions",
        json={"model": "gpt-4o", "messages": user("wire format"), "stream": True},
        headers={"authorization": f"Bearer {MASTER_KEY}"},
        timeout=10,
    )

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [line.removeprefix("data: ") for line in response.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    for event in events[:-1]:
        ChatCompletionChunk.model_validate(orjson.loads(event), strict=True)
    assert "event: " not in response.text  # Anthropic's named events do not leak through


def test_tool_call_answered_by_the_fallback_is_an_openai_tool_call(
    server: RouterdServer, upstreams: Upstreams
) -> None:
    upstreams.anthropic.enqueue(AnthropicReply.tool_use("get_weather", {"city": "Paris"}, tool_id="toolu_01"))

    completion = client_for(server).chat.completions.create(
        model="gpt-4o", messages=user("Weather in Paris?"), tools=TOOLS, tool_choice="auto"
    )

    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert (call.id, call.type, call.function.name) == ("toolu_01", "function", "get_weather")
    assert orjson.loads(call.function.arguments) == {"city": "Paris"}
    sent_tools = upstreams.anthropic.requests[0].json["tools"]
    assert [tool["name"] for tool in sent_tools] == ["get_weather"]
    assert sent_tools[0]["input_schema"]["required"] == ["city"]


def test_streamed_tool_call_through_the_fallback(server: RouterdServer, upstreams: Upstreams) -> None:
    upstreams.anthropic.enqueue(
        AnthropicReply.tool_use("get_weather", {"city": "Paris", "unit": "celsius"}, chunk_size=5)
    )

    chunks = list(
        client_for(server).chat.completions.create(
            model="gpt-4o", messages=user("Weather in Paris?"), tools=TOOLS, stream=True
        )
    )

    calls = [call for c in chunks if c.choices for call in c.choices[0].delta.tool_calls or []]
    assert calls[0].function is not None and calls[0].function.name == "get_weather"
    arguments = "".join(call.function.arguments or "" for call in calls if call.function is not None)
    assert orjson.loads(arguments) == {"city": "Paris", "unit": "celsius"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        "tool_calls"
    ]


def test_when_the_fallback_is_down_too_the_client_gets_an_error(
    server: RouterdServer, upstreams: Upstreams
) -> None:
    upstreams.anthropic.enqueue(
        *[AnthropicReply.failure(529, "overloaded_error", "Overloaded") for _ in range(2)]
    )

    with capture_logs() as logs, pytest.raises(openai.InternalServerError) as caught:
        client_for(server).chat.completions.create(model="gpt-4o", messages=user("anyone?"))

    assert caught.value.status_code == 503
    assert len(upstreams.anthropic.requests) == 2  # overloaded is retryable: retried once, then given up
    assert logs.lines
    response = caught.value.response
    seen = [response.text, *(f"{k}: {v}" for k, v in response.headers.items()), logs.text]
    assert not any(key in text for key in UPSTREAM_KEYS for text in seen)


# -- Gemini refuses on safety grounds -> Anthropic ------------------------------------------------------


@pytest.mark.parametrize(
    "blocked",
    [
        pytest.param(GeminiReply(finish_reason="SAFETY"), id="answer-withheld"),
        pytest.param(GeminiReply(prompt_block="SAFETY"), id="prompt-refused"),
    ],
)
def test_gemini_safety_block_goes_to_the_content_policy_fallback(
    server: RouterdServer, upstreams: Upstreams, blocked: GeminiReply
) -> None:
    upstreams.gemini.enqueue(blocked)

    raw = client_for(server).chat.completions.with_raw_response.create(
        model="gemini", messages=user("something Gemini will not answer")
    )
    completion = raw.parse()

    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content == "echo: something Gemini will not answer"
    assert int(raw.headers["x-routerd-attempted-fallbacks"]) >= 1
    assert raw.headers["x-routerd-model-id"] == "anthropic-claude"
    assert len(upstreams.gemini.requests) == 1  # a content-policy refusal is not retried
    assert upstreams.gemini.requests[0].headers["x-goog-api-key"] == GEMINI_KEY
    assert "key" not in upstreams.gemini.requests[0].query  # never in the URL
    assert_sent_to_anthropic(upstreams, stream=False)


def test_gemini_safety_block_streamed_goes_to_the_content_policy_fallback(
    server: RouterdServer, upstreams: Upstreams
) -> None:
    upstreams.gemini.enqueue(GeminiReply(prompt_block="SAFETY"))

    chunks = list(
        client_for(server).chat.completions.create(
            model="gemini", messages=user("blocked, streamed"), stream=True
        )
    )

    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: blocked, streamed"
    assert len(upstreams.gemini.requests) == 1
    assert_sent_to_anthropic(upstreams, stream=True)


def test_gemini_answers_itself_when_not_blocked(server: RouterdServer, upstreams: Upstreams) -> None:
    raw = client_for(server).chat.completions.with_raw_response.create(model="gemini", messages=user("hello"))

    assert raw.headers["x-routerd-model-id"] == "gemini-flash"
    assert raw.headers["x-routerd-attempted-fallbacks"] == "0"
    assert raw.parse().choices[0].message.content
    assert not upstreams.anthropic.requests
