"""Claude on Vertex AI and on Bedrock, end to end: the official ``anthropic`` client against the daemon,
in front of fakes that speak Vertex's rawPredict / streamRawPredict and Bedrock's invoke /
invoke-with-response-stream (binary event-stream) formats.

``/v1/messages`` reaches both natively (the client's body, minus ``model``, plus each platform's
``anthropic_version``); chat completions to ``vertex_ai/claude-*`` are translated to the same format.
``bedrock-then-gpt`` and ``gpt-then-vertex`` fail over between native and translated deployments.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import orjson
import pytest
from clients import tracked
from prometheus_client.parser import text_string_to_metric_families

from routerd.testing import FakeOpenAI
from routerd.testing.anthropic_fake import AnthropicReply
from routerd.testing.claude_platforms_fake import (
    BEDROCK_VERSION,
    VERTEX_VERSION,
    FakeBedrockClaude,
    FakeVertexClaude,
    aws_failure,
    google_failure,
)
from routerd.testing.fake_http import StreamPlan
from routerd.testing.openai_fake import Reply
from routerd.testing.server import RouterdServer

from .support import (
    MASTER_KEY,
    OPENAI_KEY,
    UPSTREAM_KEYS,
    DaemonProcess,
    client_for,
    reset,
    running_fake,
    wait_for,
    write_config,
)

VERTEX_TOKEN = "ya29.e2e-vertex-token-5d1c"
AKID = "AKIDE2ECLAUDE0000001"
AWS_SECRET = "e2e-claude-aws-secret-never-logged"
VERTEX_MODEL = "claude-sonnet-4-5@20250929"
BEDROCK_MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
BETA = "fast-mode-2026-01-01"
PRICE = "input_cost_per_token: 0.001, output_cost_per_token: 0.002"
WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def _config(vertex: str, bedrock: str, openai_base: str) -> str:
    gcp = f"api_base: {vertex}, api_key: {VERTEX_TOKEN}, vertex_project: proj-e2e, vertex_location: us-east5"
    aws = (
        f"aws_access_key_id: {AKID}, aws_secret_access_key: {AWS_SECRET}, aws_region_name: us-east-1, "
        f"aws_bedrock_runtime_endpoint: {bedrock}"
    )
    oai = f"api_base: {openai_base}, api_key: {OPENAI_KEY}"
    return f"""\
model_list:
  - {{model_name: vertex-claude, litellm_params: {{model: vertex_ai/{VERTEX_MODEL}, {gcp}, {PRICE}}}}}
  - {{model_name: bedrock-claude, litellm_params: {{model: bedrock/{BEDROCK_MODEL}, {aws}, {PRICE}}}}}
  - {{model_name: bedrock-then-gpt, litellm_params: {{model: bedrock/{BEDROCK_MODEL}, {aws}}}}}
  - {{model_name: gpt, litellm_params: {{model: openai/gpt-4o-mini, {oai}}}}}
  - {{model_name: gpt-then-vertex, litellm_params: {{model: openai/gpt-4o-mini, {oai}}}}}
router_settings:
  num_retries: 0
  disable_cooldowns: true
  fallbacks:
    - bedrock-then-gpt: [gpt]
    - gpt-then-vertex: [vertex-claude]
general_settings: {{master_key: {MASTER_KEY}}}
"""


class Upstreams:
    def __init__(self, vertex: FakeVertexClaude, bedrock: FakeBedrockClaude, oai: FakeOpenAI) -> None:
        self.vertex = vertex
        self.bedrock = bedrock
        self.openai = oai


@pytest.fixture(scope="module")
def upstreams() -> Iterator[Upstreams]:
    with (
        running_fake(FakeVertexClaude(tokens={VERTEX_TOKEN})) as vertex,
        running_fake(FakeBedrockClaude(access_key=AKID, secret_key=AWS_SECRET)) as bedrock,
        running_fake(FakeOpenAI(api_key=OPENAI_KEY)) as oai,
    ):
        yield Upstreams(vertex, bedrock, oai)


@pytest.fixture(scope="module")
def daemon(upstreams: Upstreams, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RouterdServer]:
    directory = Path(tmp_path_factory.mktemp("claude-platforms"))
    text = _config(upstreams.vertex.base_url, upstreams.bedrock.base_url, upstreams.openai.base_url)
    with RouterdServer.from_file(write_config(directory, text)) as started:
        yield started


@pytest.fixture
def server(daemon: RouterdServer, upstreams: Upstreams) -> RouterdServer:
    for fake in (upstreams.vertex, upstreams.bedrock, upstreams.openai):
        reset(fake)
    return daemon


def claude_client(server: RouterdServer) -> anthropic.Anthropic:
    return tracked(anthropic.Anthropic(base_url=server.base_url, api_key=MASTER_KEY, max_retries=0))


def _hi(text: str = "hi") -> list[Any]:
    return [{"role": "user", "content": text}]


def _metric(server: RouterdServer, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include ``labels``."""
    text = httpx.get(server.base_url + "/metrics", headers={"authorization": f"Bearer {MASTER_KEY}"}).text
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                total += sample.value
    return total


def _stream_and_meter(server: RouterdServer, model: str) -> None:
    """Stream a native answer from ``model``: Anthropic's events reach the client, and the tokens
    and cost of the native stream are metered."""
    tokens = {"model_group": model, "direction": "output"}
    before = _metric(server, "routerd_tokens_total", **tokens)
    spent = _metric(server, "routerd_cost_usd_total", model_group=model)
    with claude_client(server).messages.stream(
        model=model, max_tokens=64, messages=_hi(f"stream {model}")
    ) as stream:
        events = [event.type for event in stream]
        final = stream.get_final_message()
    assert final.content[0].text == f"echo: stream {model}"  # type: ignore[union-attr]
    assert events[0] == "message_start" and events[-1] == "message_stop"
    assert _metric(server, "routerd_tokens_total", **tokens) == before + final.usage.output_tokens
    assert _metric(server, "routerd_cost_usd_total", model_group=model) > spent


# -- Vertex AI --------------------------------------------------------------------------------------


def test_vertex_messages_go_natively_to_raw_predict(server: RouterdServer, upstreams: Upstreams) -> None:
    raw = claude_client(server).messages.with_raw_response.create(
        model="vertex-claude",
        max_tokens=64,
        messages=_hi("hello vertex"),
        extra_body={"speed": "fast"},  # a field routerd does not know: passed on as it is
        extra_headers={"anthropic-beta": BETA},
    )
    message = raw.parse()
    assert message.content[0].text == "echo: hello vertex"  # type: ignore[union-attr]
    assert message.model == VERTEX_MODEL and message.usage.output_tokens > 0
    assert float(raw.headers["x-routerd-response-cost"]) > 0  # metered from the native usage
    sent = upstreams.vertex.requests[-1]
    assert sent.path == (
        f"/v1/projects/proj-e2e/locations/us-east5/publishers/anthropic/models/{VERTEX_MODEL}:rawPredict"
    )
    assert "model" not in sent.json and "stream" not in sent.json
    assert sent.json["anthropic_version"] == VERTEX_VERSION and sent.json["speed"] == "fast"
    assert sent.headers["anthropic-beta"] == BETA  # Vertex takes beta features as a header
    assert "anthropic-version" not in sent.headers  # the version is the body's on Vertex
    assert sent.headers["authorization"] == f"Bearer {VERTEX_TOKEN}"
    assert MASTER_KEY not in str(sent.headers)


def test_vertex_messages_streamed(server: RouterdServer, upstreams: Upstreams) -> None:
    _stream_and_meter(server, "vertex-claude")
    sent = upstreams.vertex.requests[-1]
    assert sent.path.endswith(f"/publishers/anthropic/models/{VERTEX_MODEL}:streamRawPredict")
    assert sent.json["stream"] is True and "model" not in sent.json


def test_chat_completions_to_vertex_claude_are_translated_to_raw_predict(
    server: RouterdServer, upstreams: Upstreams
) -> None:
    client = client_for(server)
    answer = client.chat.completions.create(
        model="vertex-claude", messages=[{"role": "system", "content": "be brief"}, *_hi("chat here")]
    )
    assert answer.choices[0].message.content == "echo: chat here"
    sent = upstreams.vertex.requests[-1]
    assert sent.path.endswith(":rawPredict") and sent.json["system"] == "be brief"
    assert "model" not in sent.json and sent.json["anthropic_version"] == VERTEX_VERSION
    chunks = list(client.chat.completions.create(model="vertex-claude", messages=_hi("chunks"), stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: chunks"
    assert upstreams.vertex.requests[-1].path.endswith(":streamRawPredict")


# -- Bedrock ----------------------------------------------------------------------------------------


def test_bedrock_messages_go_natively_to_invoke(server: RouterdServer, upstreams: Upstreams) -> None:
    raw = claude_client(server).messages.with_raw_response.create(
        model="bedrock-claude",
        max_tokens=64,
        messages=_hi("hello bedrock"),
        extra_body={"speed": "fast"},
        extra_headers={"anthropic-beta": f"{BETA}, other-beta-2026-02-02"},
    )
    message = raw.parse()
    assert message.content[0].text == "echo: hello bedrock"  # type: ignore[union-attr]
    assert float(raw.headers["x-routerd-response-cost"]) > 0
    sent = upstreams.bedrock.requests[-1]
    assert sent.path == f"/model/{BEDROCK_MODEL}/invoke"
    assert "model" not in sent.json and "stream" not in sent.json
    assert sent.json["anthropic_version"] == BEDROCK_VERSION and sent.json["speed"] == "fast"
    assert sent.json["anthropic_beta"] == [BETA, "other-beta-2026-02-02"]  # Bedrock: in the body
    assert "anthropic-beta" not in sent.headers and "anthropic-version" not in sent.headers
    assert sent.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=" + AKID)


def test_bedrock_messages_streamed_from_the_event_stream(server: RouterdServer, upstreams: Upstreams) -> None:
    _stream_and_meter(server, "bedrock-claude")
    sent = upstreams.bedrock.requests[-1]
    assert sent.path == f"/model/{BEDROCK_MODEL}/invoke-with-response-stream"
    assert "stream" not in sent.json and sent.headers["accept"] == "application/vnd.amazon.eventstream"


@pytest.mark.parametrize(
    ("model", "reply", "status", "error_type"),
    [
        (
            "vertex-claude",
            google_failure(429, "RESOURCE_EXHAUSTED", "Quota exceeded"),
            429,
            "rate_limit_error",
        ),
        ("vertex-claude", google_failure(403, "PERMISSION_DENIED", "Not allowed"), 403, "permission_error"),
        (
            "vertex-claude",
            AnthropicReply.failure(400, "invalid_request_error", "Bad prompt"),
            400,
            "invalid_request_error",
        ),
        (
            "vertex-claude",
            AnthropicReply.failure(529, "overloaded_error", "Overloaded"),
            503,
            "overloaded_error",
        ),
        (
            "bedrock-claude",
            aws_failure(400, "ValidationException", "Too short"),
            400,
            "invalid_request_error",
        ),
        (
            "bedrock-claude",
            aws_failure(429, "ThrottlingException", "Too many requests"),
            429,
            "rate_limit_error",
        ),
        ("bedrock-claude", aws_failure(403, "AccessDeniedException", "No access"), 403, "permission_error"),
    ],
)
def test_platform_errors_reach_the_client_in_anthropics_shape(
    server: RouterdServer,
    upstreams: Upstreams,
    model: str,
    reply: AnthropicReply,
    status: int,
    error_type: str,
) -> None:
    (upstreams.vertex if model == "vertex-claude" else upstreams.bedrock).enqueue(reply)
    with pytest.raises(anthropic.APIStatusError) as failed:
        claude_client(server).messages.create(model=model, max_tokens=8, messages=_hi())
    assert failed.value.status_code == status
    body: Any = failed.value.body
    assert body["type"] == "error" and body["error"]["type"] == error_type
    expected = (
        reply.error_body["error"]["message"] if "error" in reply.error_body else reply.error_body["message"]
    )
    assert expected in body["error"]["message"]
    assert not any(key in failed.value.response.text for key in (*UPSTREAM_KEYS, VERTEX_TOKEN, AWS_SECRET))


def test_a_bedrock_stream_exception_ends_with_an_error_event(
    server: RouterdServer, upstreams: Upstreams
) -> None:
    failing = StreamPlan(error_after=3, error_event={"type": "error", "error": {"message": "model broke"}})
    upstreams.bedrock.enqueue(AnthropicReply.text("a long answer " * 4, stream=failing))
    body = {"model": "bedrock-claude", "max_tokens": 64, "stream": True, "messages": _hi()}
    with httpx.stream(
        "POST", server.base_url + "/v1/messages", headers={"x-api-key": MASTER_KEY}, json=body
    ) as reply:
        text = reply.read().decode()
    assert text.startswith("event: message_start")
    last = text.rstrip().split("\n\n")[-1]
    assert last.startswith("event: error") and "model broke" in last and "message_stop" not in text
    assert AWS_SECRET not in text


def test_a_bedrock_stream_ends_with_anthropics_message_stop_only(server: RouterdServer) -> None:
    # Bedrock adds its invocation metrics to message_stop: the gateway relays Anthropic's event alone
    body = {"model": "bedrock-claude", "max_tokens": 64, "stream": True, "messages": _hi()}
    with httpx.stream(
        "POST", server.base_url + "/v1/messages", headers={"x-api-key": MASTER_KEY}, json=body
    ) as reply:
        text = reply.read().decode()
    last = text.rstrip().split("\n\n")[-1]
    assert last.startswith("event: message_stop\n")
    assert orjson.loads(last.split("data: ", 1)[1]) == {"type": "message_stop"}
    assert "amazon-bedrock" not in text and "invocationLatency" not in text


# -- both -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["vertex-claude", "bedrock-claude"])
def test_tools_natively(server: RouterdServer, upstreams: Upstreams, model: str) -> None:
    fake = upstreams.vertex if model == "vertex-claude" else upstreams.bedrock
    fake.enqueue(AnthropicReply.tool_use("get_weather", {"city": "Paris"}, tool_id="toolu_1"))
    client = claude_client(server)
    message = client.messages.create(model=model, max_tokens=64, tools=[WEATHER], messages=_hi("weather?"))
    tool_use = message.content[-1]
    assert message.stop_reason == "tool_use"
    assert tool_use.type == "tool_use" and tool_use.input == {"city": "Paris"}
    result = {"type": "tool_result", "tool_use_id": tool_use.id, "content": "sunny"}
    history = [*_hi("weather?"), {"role": "assistant", "content": [tool_use.model_dump()]}]
    follow_up = client.messages.create(
        model=model,
        max_tokens=64,
        tools=[WEATHER],
        messages=[*history, {"role": "user", "content": [result]}],
    )
    assert follow_up.content
    sent = fake.requests[-1].json
    assert sent["tools"] == [WEATHER] and sent["messages"][-1]["content"] == [result]


def test_bedrock_native_fails_over_to_openai_translated(server: RouterdServer, upstreams: Upstreams) -> None:
    upstreams.bedrock.enqueue(aws_failure(429, "ThrottlingException", "Too many requests"))
    raw = claude_client(server).messages.with_raw_response.create(
        model="bedrock-then-gpt", max_tokens=32, messages=_hi("anyone?")
    )
    assert raw.parse().content[0].text == "anyone?"  # type: ignore[union-attr]  (the OpenAI fake's echo)
    assert raw.headers["x-routerd-attempted-fallbacks"] == "1"
    assert len(upstreams.bedrock.requests) == 1
    assert upstreams.openai.requests[-1].path == "/v1/chat/completions"


def test_openai_translated_fails_over_to_vertex_native(server: RouterdServer, upstreams: Upstreams) -> None:
    upstreams.openai.enqueue(Reply.error(503, "upstream down"))
    with claude_client(server).messages.stream(
        model="gpt-then-vertex", max_tokens=32, messages=_hi("still there?")
    ) as stream:
        assert stream.get_final_text() == "echo: still there?"
    assert len(upstreams.openai.requests) == 1
    assert upstreams.vertex.requests[-1].path.endswith(":streamRawPredict")


@pytest.mark.parametrize("model", ["vertex-claude", "bedrock-claude"])
def test_a_client_leaving_a_native_stream_closes_the_upstream(
    server: RouterdServer, upstreams: Upstreams, model: str
) -> None:
    fake = upstreams.vertex if model == "vertex-claude" else upstreams.bedrock
    fake.enqueue(AnthropicReply.text("a long answer " * 5, stream=StreamPlan(hang_after=3)))
    with claude_client(server).messages.stream(model=model, max_tokens=64, messages=_hi("talk")) as stream:
        first = next(iter(stream))
    assert first.type == "message_start"
    wait_for(lambda: fake.disconnects == 1, what="routerd to close the upstream stream")
    assert (
        claude_client(server).messages.create(model=model, max_tokens=8, messages=_hi("still here")).content
    )


def test_through_the_routerd_serve_process(upstreams: Upstreams, tmp_path: Path) -> None:
    """The same native calls through ``routerd serve`` as a separate process."""
    for fake in (upstreams.vertex, upstreams.bedrock):
        reset(fake)
    text = _config(upstreams.vertex.base_url, upstreams.bedrock.base_url, upstreams.openai.base_url)
    daemon = DaemonProcess(write_config(tmp_path, text), tmp_path / "routerd.log")
    try:
        daemon.wait_ready()
        client = tracked(anthropic.Anthropic(base_url=daemon.base_url, api_key=MASTER_KEY, max_retries=0))
        with client.messages.stream(model="bedrock-claude", max_tokens=32, messages=_hi("process")) as stream:
            assert stream.get_final_text() == "echo: process"
        plain = client.messages.create(model="vertex-claude", max_tokens=32, messages=_hi("process"))
        assert plain.content[0].text == "echo: process"  # type: ignore[union-attr]
    finally:
        daemon.stop()
    assert upstreams.bedrock.requests[-1].path.endswith("/invoke-with-response-stream")
    assert upstreams.vertex.requests[-1].path.endswith(":rawPredict")
    assert AWS_SECRET not in daemon.output and VERTEX_TOKEN not in daemon.output
