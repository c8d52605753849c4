"""The front doors end to end: the official ``anthropic`` and ``openai`` (Responses, AzureOpenAI)
clients against the daemon in front of a fake Anthropic and a fake OpenAI upstream.

``claude`` is an Anthropic deployment (``/v1/messages`` is passed through to it, ``/v1/responses``
translated), ``gpt`` an OpenAI one (``/v1/responses`` passed through, ``/v1/messages`` translated),
``claude-then-gpt`` an Anthropic group that falls back to ``gpt``.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from anthropic._constants import ANTHROPIC_API_VERSION
from clients import tracked

from routerd.testing import FakeOpenAI
from routerd.testing.anthropic_fake import AnthropicReply, FakeAnthropic
from routerd.testing.cohere_fake import FakeCohere
from routerd.testing.fake_http import StreamPlan
from routerd.testing.openai_fake import MODERATION_MARKER, Reply
from routerd.testing.server import RouterdServer

from .support import (
    ANTHROPIC_KEY,
    MASTER_KEY,
    OPENAI_KEY,
    UPSTREAM_KEYS,
    reset,
    running_fake,
    wait_for,
    write_config,
)

ALICE = "sk-frontdoor-alice-0123456789"  # may call everything
BOB = "sk-frontdoor-bob-0123456789ab"  # gpt only
GUARDED = "sk-frontdoor-guarded-012345"  # every call runs the secrets guardrail

WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
WEATHER_FN = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": WEATHER["input_schema"],
}
PIXEL = base64.b64encode(b"\x89PNG\r\n\x1a\n fake pixel").decode()


def _config(openai_base: str, anthropic_base: str) -> str:
    oai = f"api_base: {openai_base}, api_key: {OPENAI_KEY}"
    ant = f"api_base: {anthropic_base}, api_key: {ANTHROPIC_KEY}"
    return f"""\
model_list:
  - {{model_name: claude, litellm_params: {{model: anthropic/claude-sonnet-4-5, {ant}, extra_body: {{inference_geo: us}}}}}}
  - {{model_name: claude-then-gpt, litellm_params: {{model: anthropic/claude-sonnet-4-5, {ant}}}}}
  - model_name: gpt
    litellm_params: {{model: openai/gpt-4o-mini, {oai}, input_cost_per_token: 0.001, output_cost_per_token: 0.002}}
    model_info: {{max_input_tokens: 128000}}
  - {{model_name: gpt-then-claude, litellm_params: {{model: openai/gpt-4o-mini, {oai}}}}}
  - {{model_name: mod, litellm_params: {{model: openai/omni-moderation-latest, {oai}}}}}
  - {{model_name: embed, litellm_params: {{model: openai/text-embedding-3-small, {oai}}}, model_info: {{mode: embedding}}}}
router_settings:
  num_retries: 0
  fallbacks:
    - claude-then-gpt: [gpt]
    - gpt-then-claude: [claude]
general_settings: {{master_key: {MASTER_KEY}}}
keys:
  - {{key_alias: alice, key: {ALICE}}}
  - {{key_alias: bob, key: {BOB}, models: [gpt]}}
  - {{key_alias: guarded, key: {GUARDED}, guardrails: [secrets]}}
guardrails:
  - guardrail_name: secrets
    litellm_params:
      guardrail: litellm_content_filter
      patterns:
        - {{pattern_type: prebuilt, pattern_name: aws_access_key, action: BLOCK}}
"""


class Upstreams:
    def __init__(self, oai: FakeOpenAI, ant: FakeAnthropic) -> None:
        self.openai = oai
        self.anthropic = ant


@pytest.fixture(scope="module")
def upstreams() -> Iterator[Upstreams]:
    with (
        running_fake(FakeOpenAI(api_key=OPENAI_KEY)) as oai,
        running_fake(FakeAnthropic(api_key=ANTHROPIC_KEY)) as ant,
    ):
        yield Upstreams(oai, ant)


@pytest.fixture(scope="module")
def daemon(upstreams: Upstreams, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RouterdServer]:
    directory = Path(tmp_path_factory.mktemp("frontdoors"))
    config = write_config(directory, _config(upstreams.openai.base_url, upstreams.anthropic.base_url))
    with RouterdServer.from_file(config, spend_db=directory / "spend.sqlite") as started:
        yield started


@pytest.fixture
def server(daemon: RouterdServer, upstreams: Upstreams) -> RouterdServer:
    reset(upstreams.openai)
    reset(upstreams.anthropic)
    return daemon


def claude_client(server: RouterdServer, key: str = MASTER_KEY) -> anthropic.Anthropic:
    return tracked(anthropic.Anthropic(base_url=server.base_url, api_key=key, max_retries=0))


def openai_client(server: RouterdServer, key: str = MASTER_KEY) -> openai.OpenAI:
    return tracked(openai.OpenAI(base_url=server.base_url + "/v1", api_key=key, max_retries=0))


def _hi(text: str = "hi") -> list[Any]:
    return [{"role": "user", "content": text}]


def _tool_completion() -> dict[str, Any]:
    """A chat completion in which the model calls get_weather (what the OpenAI fake answers)."""
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
    }
    return {
        "id": "chatcmpl-tool",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": None, "tool_calls": [call]},
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25},
    }


# -- Anthropic Messages ------------------------------------------------------------------------------


def test_messages_pass_through_to_an_anthropic_deployment(
    server: RouterdServer, upstreams: Upstreams
) -> None:
    client = claude_client(server)
    message = client.messages.create(
        model="claude",
        max_tokens=64,
        messages=_hi("hello there"),
        extra_body={"speed": "fast"},  # a field routerd does not know: passed on as it is
        extra_headers={"anthropic-beta": "fast-mode-2026-01-01"},
    )
    assert message.content[0].text == "echo: hello there"  # type: ignore[union-attr]
    sent = upstreams.anthropic.requests[-1]
    assert sent.json["speed"] == "fast" and sent.json["model"] == "claude-sonnet-4-5"
    assert sent.json["inference_geo"] == "us"  # the deployment's extra_body applies natively too
    assert sent.headers["anthropic-beta"] == "fast-mode-2026-01-01"
    assert sent.headers["anthropic-version"] == ANTHROPIC_API_VERSION  # the client's, passed on
    assert sent.headers["x-api-key"] == ANTHROPIC_KEY and MASTER_KEY not in str(sent.headers)
    assert upstreams.openai.requests == []


def test_messages_to_an_openai_deployment_are_translated(server: RouterdServer, upstreams: Upstreams) -> None:
    message = claude_client(server).messages.create(
        model="gpt", max_tokens=64, system="be brief", messages=_hi("hello there")
    )
    assert message.content[0].text == "hello there"  # type: ignore[union-attr]  (the fake echoes)
    assert message.stop_reason == "end_turn" and message.usage.output_tokens > 0
    sent = upstreams.openai.requests[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.json["messages"][0] == {"role": "system", "content": "be brief"}


@pytest.mark.parametrize("model", ["claude", "gpt"])
def test_messages_streamed(server: RouterdServer, upstreams: Upstreams, model: str) -> None:
    with claude_client(server).messages.stream(
        model=model, max_tokens=64, messages=_hi("stream me")
    ) as stream:
        events = [event.type for event in stream]
        final = stream.get_final_message()
    echo = "echo: stream me" if model == "claude" else "stream me"  # each fake echoes its own way
    assert final.content[0].text == echo  # type: ignore[union-attr]
    assert events[0] == "message_start" and "message_stop" in events
    assert final.usage.output_tokens > 0


@pytest.mark.parametrize("model", ["claude", "gpt"])
def test_messages_tools(server: RouterdServer, upstreams: Upstreams, model: str) -> None:
    upstreams.anthropic.enqueue(AnthropicReply.tool_use("get_weather", {"city": "Paris"}, tool_id="toolu_1"))
    upstreams.openai.enqueue(Reply(json=_tool_completion()))
    client = claude_client(server)
    message = client.messages.create(model=model, max_tokens=64, tools=[WEATHER], messages=_hi("weather?"))
    tool_use = message.content[-1]
    assert message.stop_reason == "tool_use"
    assert tool_use.type == "tool_use" and tool_use.input == {"city": "Paris"}
    follow_up = client.messages.create(
        model=model,
        max_tokens=64,
        tools=[WEATHER],
        messages=[
            *_hi("weather?"),
            {"role": "assistant", "content": [tool_use.model_dump()]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "sunny"}],
            },
        ],
    )
    assert follow_up.content
    if model == "gpt":
        tool_message = upstreams.openai.requests[-1].json["messages"][-1]
        assert tool_message == {"role": "tool", "tool_call_id": tool_use.id, "content": "sunny"}


@pytest.mark.parametrize("model", ["claude", "gpt"])
def test_messages_images(server: RouterdServer, upstreams: Upstreams, model: str) -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PIXEL}}
    claude_client(server).messages.create(
        model=model,
        max_tokens=16,
        messages=[{"role": "user", "content": [image, {"type": "text", "text": "what is it?"}]}],
    )
    if model == "claude":
        assert upstreams.anthropic.requests[-1].json["messages"][0]["content"][0] == image
    else:
        part = upstreams.openai.requests[-1].json["messages"][0]["content"][0]
        assert part["image_url"]["url"] == f"data:image/png;base64,{PIXEL}"


@pytest.mark.parametrize("model", ["claude", "gpt"])
def test_count_tokens(server: RouterdServer, upstreams: Upstreams, model: str) -> None:
    client = claude_client(server)
    short = client.messages.count_tokens(model=model, messages=_hi("count"))
    longer = client.messages.count_tokens(model=model, messages=_hi("count these words please " * 10))
    assert 0 < short.input_tokens < longer.input_tokens
    assert upstreams.anthropic.requests == [] and upstreams.openai.requests == []  # routerd's own estimate


def test_anthropic_overloaded_falls_back_to_openai(server: RouterdServer, upstreams: Upstreams) -> None:
    upstreams.anthropic.enqueue(AnthropicReply.failure(529, "overloaded_error", "Overloaded"))
    raw = claude_client(server).messages.with_raw_response.create(
        model="claude-then-gpt", max_tokens=32, messages=_hi("anyone?")
    )
    message = raw.parse()
    assert message.content[0].text == "anyone?"  # type: ignore[union-attr]  (the OpenAI fake's echo)
    assert raw.headers["x-routerd-attempted-fallbacks"] == "1"
    assert (
        len(upstreams.anthropic.requests) == 1
        and upstreams.openai.requests[-1].path == "/v1/chat/completions"
    )


def test_anthropic_overloaded_stream_falls_back_to_openai(
    server: RouterdServer, upstreams: Upstreams
) -> None:
    upstreams.anthropic.enqueue(AnthropicReply.failure(529, "overloaded_error", "Overloaded"))
    with claude_client(server).messages.stream(
        model="claude-then-gpt", max_tokens=32, messages=_hi("anyone?")
    ) as stream:
        assert stream.get_final_text() == "anyone?"


def test_messages_errors_are_in_anthropics_shape(server: RouterdServer, upstreams: Upstreams) -> None:
    client = claude_client(server)
    with pytest.raises(anthropic.NotFoundError) as missing:
        client.messages.create(model="nope", max_tokens=8, messages=_hi())
    assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    with pytest.raises(anthropic.AuthenticationError) as denied:
        claude_client(server, "sk-wrong-key-0000000000").messages.create(
            model="gpt", max_tokens=8, messages=_hi()
        )
    assert denied.value.body["type"] == "error"  # type: ignore[index]
    bad = httpx.post(
        server.base_url + "/v1/messages",
        headers={"x-api-key": MASTER_KEY},
        json={"model": "gpt", "messages": _hi()},
    )
    assert bad.status_code == 400
    assert bad.json()["error"] == {
        "type": "invalid_request_error",
        "message": "max_tokens: max_tokens must be an integer",
    }
    upstreams.anthropic.enqueue(AnthropicReply.failure(400, "invalid_request_error", "prompt is bad"))
    with pytest.raises(anthropic.BadRequestError) as upstream:
        client.messages.create(model="claude", max_tokens=8, messages=_hi())
    assert upstream.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert not any(key in upstream.value.response.text for key in UPSTREAM_KEYS)


# -- OpenAI Responses --------------------------------------------------------------------------------


def test_responses_pass_through_to_an_openai_deployment(server: RouterdServer, upstreams: Upstreams) -> None:
    response = openai_client(server).responses.create(
        model="gpt", input="hello there", instructions="be brief"
    )
    assert response.output_text == "echo: hello there"
    sent = upstreams.openai.requests[-1]
    assert sent.path == "/v1/responses" and sent.json["instructions"] == "be brief"
    assert sent.json["model"] == "gpt-4o-mini"


def test_responses_streamed_pass_through(server: RouterdServer, upstreams: Upstreams) -> None:
    stream = openai_client(server).responses.create(model="gpt", input="stream me", stream=True)
    events = list(stream)
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "echo: stream me"
    assert events[-1].type == "response.completed"
    assert upstreams.openai.requests[-1].path == "/v1/responses"


def test_responses_tools_and_previous_response_id_pass_through(
    server: RouterdServer, upstreams: Upstreams
) -> None:
    client = openai_client(server)
    first = client.responses.create(model="gpt", input="weather in Paris?", tools=[WEATHER_FN])  # type: ignore[list-item]
    call = first.output[0]
    assert call.type == "function_call" and call.name == "get_weather"
    second = client.responses.create(
        model="gpt",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
        tools=[WEATHER_FN],  # type: ignore[list-item]
    )
    assert second.output_text == "echo: weather in Paris?"
    sent = upstreams.openai.requests[-1].json
    assert "previous_response_id" not in sent  # routerd sends the whole conversation instead
    assert [item["type"] for item in sent["input"]] == ["message", "function_call", "function_call_output"]
    assert second.previous_response_id == first.id


@pytest.mark.parametrize("model", ["gpt", "claude"])
def test_stored_responses_get_list_delete(server: RouterdServer, model: str) -> None:
    client = openai_client(server)
    created = client.responses.create(model=model, input="keep me")
    assert client.responses.retrieve(created.id).output_text == "echo: keep me"
    items = client.responses.input_items.list(created.id)
    assert [item.type for item in items.data] == ["message"]
    with pytest.raises(openai.NotFoundError):
        openai_client(server, ALICE).responses.retrieve(created.id)  # another key's response
    cancel = httpx.post(
        f"{server.base_url}/v1/responses/{created.id}/cancel",
        headers={"authorization": f"Bearer {MASTER_KEY}"},
    )
    assert cancel.status_code == 400 and cancel.json()["error"]["code"] == "response_not_cancellable"
    client.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError) as gone:
        client.responses.retrieve(created.id)
    assert gone.value.body["code"] == "response_not_found"  # type: ignore[index]


def test_responses_to_an_anthropic_deployment_are_translated(
    server: RouterdServer, upstreams: Upstreams
) -> None:
    client = openai_client(server)
    first = client.responses.create(model="claude", input="hello there", instructions="be brief")
    assert first.output_text == "echo: hello there" and first.id.startswith("resp_")
    sent = upstreams.anthropic.requests[-1].json
    assert sent["system"] == "be brief"
    second = client.responses.create(model="claude", input="again", previous_response_id=first.id)
    assert second.output_text == "echo: again"
    history = upstreams.anthropic.requests[-1].json["messages"]
    assert [m["role"] for m in history] == ["user", "assistant", "user"]


def test_responses_streamed_and_tools_translated(server: RouterdServer, upstreams: Upstreams) -> None:
    client = openai_client(server)
    events = list(client.responses.create(model="claude", input="stream me", stream=True))
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "echo: stream me"
    assert events[-1].type == "response.completed"
    upstreams.anthropic.enqueue(AnthropicReply.tool_use("get_weather", {"city": "Paris"}))
    called = client.responses.create(model="claude", input="weather?", tools=[WEATHER_FN])  # type: ignore[list-item]
    assert called.output[0].type == "function_call" and called.output[0].arguments == '{"city":"Paris"}'  # type: ignore[union-attr]


def test_responses_errors_are_in_openais_shape(server: RouterdServer) -> None:
    client = openai_client(server)
    with pytest.raises(openai.NotFoundError) as unknown:
        client.responses.create(model="gpt", input="x", previous_response_id="resp_never")
    assert unknown.value.body["code"] == "previous_response_not_found"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as bad:
        client.responses.create(model="gpt", input="x", background=True)
    assert bad.value.body["param"] == "background"  # type: ignore[index]
    with pytest.raises(openai.AuthenticationError):
        openai_client(server, "sk-wrong-key-0000000000").responses.create(model="gpt", input="x")


# -- keys, guardrails and spend on the new doors -----------------------------------------------------


def test_a_keys_model_access_applies_to_both_doors(server: RouterdServer, upstreams: Upstreams) -> None:
    with pytest.raises(anthropic.PermissionDeniedError) as refused:
        claude_client(server, BOB).messages.create(model="claude", max_tokens=8, messages=_hi())
    assert refused.value.body["error"]["type"] == "permission_error"  # type: ignore[index]
    with pytest.raises(openai.PermissionDeniedError):
        openai_client(server, BOB).responses.create(model="claude", input="x")
    assert upstreams.anthropic.requests == []
    assert claude_client(server, BOB).messages.create(model="gpt", max_tokens=8, messages=_hi()).content


def _blocks(server: RouterdServer) -> float:
    """``routerd_guardrail_actions_total{guardrail="secrets", action="block", mode="pre_call"}``."""
    text = httpx.get(server.base_url + "/metrics", headers={"authorization": f"Bearer {MASTER_KEY}"}).text
    prefix = 'routerd_guardrail_actions_total{action="block",guardrail="secrets",mode="pre_call"} '
    return sum(float(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix))


def test_a_guardrail_applies_to_both_doors(server: RouterdServer, upstreams: Upstreams) -> None:
    secret = "my key is AKIAIOSFODNN7EXAMPLE"
    blocks_before = _blocks(server)
    with pytest.raises(anthropic.BadRequestError) as blocked:
        claude_client(server, GUARDED).messages.create(model="claude", max_tokens=8, messages=_hi(secret))
    assert "AKIA" not in str(blocked.value.body)
    with pytest.raises(openai.BadRequestError):
        openai_client(server, GUARDED).responses.create(model="gpt", input=secret)
    assert upstreams.anthropic.requests == [] and upstreams.openai.requests == []
    assert _blocks(server) == blocks_before + 2  # a refusal at a front door is counted too
    # with a guardrail the call is translated (guardrails read the chat shape), and still answered
    ok = claude_client(server, GUARDED).messages.create(model="claude", max_tokens=8, messages=_hi("fine"))
    assert ok.content[0].text == "echo: fine"  # type: ignore[union-attr]


def _spend(server: RouterdServer, key: str) -> float:
    info = httpx.get(server.base_url + "/key/info", headers={"authorization": f"Bearer {key}"}).json()
    return float(info["info"]["spend"])


def test_spend_is_recorded_for_both_doors(server: RouterdServer) -> None:
    before = _spend(server, ALICE)
    claude_client(server, ALICE).messages.create(model="gpt", max_tokens=8, messages=_hi("count me"))
    after_messages = _spend(server, ALICE)
    assert after_messages > before
    openai_client(server, ALICE).responses.create(model="gpt", input="count me too")  # native, priced
    assert _spend(server, ALICE) > after_messages


# -- Azure routes ------------------------------------------------------------------------------------


def test_azure_client_chat_and_embeddings(server: RouterdServer, upstreams: Upstreams) -> None:
    client = tracked(
        openai.AzureOpenAI(
            azure_endpoint=server.base_url, api_key=MASTER_KEY, api_version="2024-10-21", max_retries=0
        )
    )
    answer = client.chat.completions.create(model="gpt", messages=_hi("via azure"))
    assert answer.choices[0].message.content == "via azure"
    vectors = client.embeddings.create(model="embed", input=["a", "b"])
    assert len(vectors.data) == 2
    assert [r.json["model"] for r in upstreams.openai.requests] == ["gpt-4o-mini", "text-embedding-3-small"]


def test_azure_route_errors(server: RouterdServer) -> None:
    headers = {"api-key": MASTER_KEY}
    body = {"messages": _hi()}
    missing = httpx.post(
        server.base_url + "/openai/deployments/nope/chat/completions?api-version=2024-10-21",
        headers=headers,
        json=body,
    )
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "DeploymentNotFound"
    no_version = httpx.post(
        server.base_url + "/openai/deployments/gpt/chat/completions", headers=headers, json=body
    )
    assert no_version.status_code == 400 and no_version.json()["error"]["code"] == "missing_api_version"
    denied = httpx.post(
        server.base_url + "/openai/deployments/gpt/chat/completions?api-version=2024-10-21", json=body
    )
    assert denied.status_code == 401


# -- LiteLLM's read endpoints ------------------------------------------------------------------------


def test_model_info_and_model_group_info(server: RouterdServer) -> None:
    headers = {"authorization": f"Bearer {MASTER_KEY}"}
    for path in ("/model/info", "/v1/model/info"):
        data = httpx.get(server.base_url + path, headers=headers).json()["data"]
        gpt = next(entry for entry in data if entry["model_name"] == "gpt")
        assert gpt["litellm_params"]["model"] == "openai/gpt-4o-mini"
        assert gpt["model_info"]["input_cost_per_token"] == 0.001
        assert gpt["model_info"]["max_input_tokens"] == 128000
        assert gpt["model_info"]["litellm_provider"] == "openai"
        assert not any(key in str(data) for key in (*UPSTREAM_KEYS, MASTER_KEY))
    groups = httpx.get(server.base_url + "/model_group/info", headers=headers).json()["data"]
    by_name = {g["model_group"]: g for g in groups}
    assert by_name["claude"]["providers"] == ["anthropic"] and by_name["embed"]["mode"] == "embedding"
    bob = httpx.get(server.base_url + "/model_group/info", headers={"authorization": f"Bearer {BOB}"}).json()
    assert [g["model_group"] for g in bob["data"]] == ["gpt"]


def test_health_of_one_model_runs_a_check(server: RouterdServer, upstreams: Upstreams) -> None:
    headers = {"authorization": f"Bearer {MASTER_KEY}"}
    upstreams.anthropic.enqueue(AnthropicReply.failure(401, "authentication_error", "invalid x-api-key"))
    report = httpx.get(server.base_url + "/health?model=claude", headers=headers).json()
    assert report["healthy_count"] == 0 and report["unhealthy_count"] == 1
    assert report["unhealthy_endpoints"][0]["model"] == "anthropic/claude-sonnet-4-5"
    assert len(upstreams.anthropic.requests) == 1
    healthy = httpx.get(server.base_url + "/health?model=embed", headers=headers).json()
    assert healthy["healthy_count"] == 1 and upstreams.openai.requests[-1].path == "/v1/embeddings"
    plain = httpx.get(server.base_url + "/health", headers=headers).json()
    assert "deployments" in plain  # without the query, /health is routerd's own report
    unknown = httpx.get(server.base_url + "/health?model=nope", headers=headers)
    assert unknown.status_code == 404


def test_a_native_stream_cut_mid_way_ends_with_an_error_event(
    server: RouterdServer, upstreams: Upstreams
) -> None:
    upstreams.anthropic.enqueue(AnthropicReply.text("a long answer " * 5, stream=StreamPlan(cut_after=4)))
    body = {"model": "claude", "max_tokens": 64, "stream": True, "messages": _hi()}
    with httpx.stream(
        "POST", server.base_url + "/v1/messages", headers={"x-api-key": MASTER_KEY}, json=body
    ) as reply:
        text = reply.read().decode()
    assert text.startswith("event: message_start")
    assert text.rstrip().split("\n\n")[-1].startswith("event: error")
    assert "message_stop" not in text


# -- moderations -------------------------------------------------------------------------------------


def test_moderations_are_routed_by_model(server: RouterdServer, upstreams: Upstreams) -> None:
    client = openai_client(server)
    result = client.moderations.create(model="mod", input=["hello", f"a {MODERATION_MARKER} here"])
    assert [r.flagged for r in result.results] == [False, True]
    sent = upstreams.openai.requests[-1]
    assert sent.path == "/v1/moderations" and sent.json["model"] == "omni-moderation-latest"
    with pytest.raises(openai.BadRequestError) as refused:
        client.moderations.create(model="claude", input="hello")
    assert "anthropic does not support moderations" in refused.value.message
    assert upstreams.anthropic.requests == []
    missing = httpx.post(
        server.base_url + "/v1/moderations",
        headers={"authorization": f"Bearer {MASTER_KEY}"},
        json={"input": "x"},
    )
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "model"


def test_image_generations_are_routed_by_model(server: RouterdServer, upstreams: Upstreams) -> None:
    client = openai_client(server)
    images = client.images.generate(model="gpt", prompt="a red square", n=2)
    assert [image.url for image in images.data] == [
        "https://images.example/0.png",
        "https://images.example/1.png",
    ]
    sent = upstreams.openai.requests[-1]
    assert (
        sent.path == "/v1/images/generations" and sent.json["model"] == "gpt-4o-mini" and sent.json["n"] == 2
    )
    with pytest.raises(openai.BadRequestError) as refused:
        client.images.generate(model="claude", prompt="a red square")
    assert "anthropic does not support image generation" in refused.value.message


def test_responses_fail_over_from_openai_native_to_anthropic_translated(
    server: RouterdServer, upstreams: Upstreams
) -> None:
    upstreams.openai.enqueue(Reply.error(503, "overloaded", path="/v1/responses"))
    raw = openai_client(server).responses.with_raw_response.create(model="gpt-then-claude", input="anyone?")
    assert raw.parse().output_text == "echo: anyone?"  # the Anthropic fake's echo, translated back
    assert raw.headers["x-routerd-attempted-fallbacks"] == "1"
    assert upstreams.openai.requests[-1].path == "/v1/responses" and len(upstreams.anthropic.requests) == 1


def test_rerank_is_routed_by_model(server: RouterdServer, upstreams: Upstreams) -> None:
    headers = {"authorization": f"Bearer {MASTER_KEY}"}
    body = {
        "model": "gpt",
        "query": "red apple",
        "documents": ["a blue car", "a red apple", "red"],
        "top_n": 2,
    }
    answer = httpx.post(server.base_url + "/v1/rerank", headers=headers, json=body)
    assert answer.status_code == 200
    assert [r["index"] for r in answer.json()["results"]] == [1, 2]
    assert upstreams.openai.requests[-1].path == "/v1/rerank"
    refused = httpx.post(server.base_url + "/v1/rerank", headers=headers, json={**body, "model": "claude"})
    assert (
        refused.status_code == 400
        and "anthropic does not support rerank" in refused.json()["error"]["message"]
    )
    missing = httpx.post(server.base_url + "/v1/rerank", headers=headers, json={"model": "gpt", "query": "x"})
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "documents"


def test_input_items_paging_and_its_errors(server: RouterdServer) -> None:
    client = openai_client(server)
    created = client.responses.create(
        model="gpt",
        input=[
            {"role": "user", "content": "one"},
            {"role": "user", "content": "two"},
            {"role": "user", "content": "three"},
        ],
    )
    url = f"{server.base_url}/v1/responses/{created.id}/input_items"
    headers = {"authorization": f"Bearer {MASTER_KEY}"}
    first = httpx.get(url + "?order=asc&limit=2", headers=headers).json()
    assert first["has_more"] is True and len(first["data"]) == 2
    rest = httpx.get(url + f"?order=asc&limit=2&after={first['last_id']}", headers=headers).json()
    assert [item["content"][0]["text"] for item in rest["data"]] == ["three"] and rest["has_more"] is False
    for query, param in (
        ("?limit=abc", "limit"),
        ("?limit=101", "limit"),
        ("?after=item_nope", "after"),
        ("?order=up", "order"),
    ):
        refused = httpx.get(url + query, headers=headers)
        assert refused.status_code == 400 and refused.json()["error"]["param"] == param


def test_bad_bodies_get_each_apis_error_shape(server: RouterdServer) -> None:
    headers = {"x-api-key": MASTER_KEY, "content-type": "application/json"}
    not_json = httpx.post(server.base_url + "/v1/messages", headers=headers, content=b"{nope")
    assert not_json.status_code == 400 and not_json.json()["type"] == "error"
    assert not_json.json()["error"]["type"] == "invalid_request_error"
    too_big = httpx.post(server.base_url + "/v1/messages", headers=headers, content=b" " * (11 * 1024 * 1024))
    assert too_big.status_code == 413 and too_big.json()["error"]["type"] == "request_too_large"
    array = httpx.post(server.base_url + "/v1/responses", headers=headers, json=[1, 2])
    assert array.status_code == 400 and set(array.json()["error"]) == {"message", "type", "param", "code"}


def test_audio_speech_and_transcriptions_are_routed_by_model(
    server: RouterdServer, upstreams: Upstreams
) -> None:
    client = openai_client(server)
    audio = client.audio.speech.create(model="gpt", voice="alloy", input="hello")
    assert audio.content == b"ID3hello"  # the fake's "audio", relayed byte for byte
    assert audio.response.headers["content-type"] == "audio/mpeg"
    assert upstreams.openai.requests[-1].json["model"] == "gpt-4o-mini"
    transcript = client.audio.transcriptions.create(model="gpt", file=("hi.wav", b"RIFF fake wave"))
    assert transcript.text.startswith("transcript of ")
    sent = upstreams.openai.requests[-1]
    assert (
        sent.path == "/v1/audio/transcriptions"
        and b"gpt-4o-mini" in sent.body
        and b"RIFF fake wave" in sent.body
    )
    srt = client.audio.transcriptions.create(model="gpt", file=("hi.wav", b"RIFF"), response_format="srt")
    assert "00:00:00,000 --> 00:00:01,000" in srt
    with pytest.raises(openai.BadRequestError) as refused:
        client.audio.speech.create(model="claude", voice="alloy", input="hello")
    assert "anthropic does not support audio speech" in refused.value.message


def test_image_edits_are_routed_by_model(server: RouterdServer, upstreams: Upstreams) -> None:
    client = openai_client(server)
    edited = client.images.edit(model="gpt", image=("in.png", b"\x89PNG image"), prompt="add a hat")
    assert edited.data[0].url == "https://images.example/edited.png"
    sent = upstreams.openai.requests[-1]
    assert sent.path == "/v1/images/edits" and b"add a hat" in sent.body and b"\x89PNG image" in sent.body
    with pytest.raises(openai.BadRequestError) as refused:
        client.images.edit(model="claude", image=("in.png", b"\x89PNG"), prompt="add a hat")
    assert "anthropic does not support image edits" in refused.value.message


@pytest.mark.parametrize("model", ["claude", "gpt"])
def test_a_client_leaving_a_messages_stream_closes_the_upstream(
    server: RouterdServer, upstreams: Upstreams, model: str
) -> None:
    upstreams.openai.enqueue(Reply(hang_after=2))  # two chunks, then quiet with the connection open
    upstreams.anthropic.enqueue(AnthropicReply.text("a long answer " * 5, stream=StreamPlan(hang_after=3)))
    with claude_client(server).messages.stream(model=model, max_tokens=64, messages=_hi("talk")) as stream:
        first = next(iter(stream))
    assert first.type == "message_start"
    fake = upstreams.anthropic if model == "claude" else upstreams.openai
    wait_for(lambda: fake.disconnects == 1, what="routerd to close the upstream stream")
    assert (
        claude_client(server).messages.create(model=model, max_tokens=8, messages=_hi("still here")).content
    )


def test_rerank_reaches_cohere_deployments(tmp_path: Path) -> None:
    with running_fake(FakeCohere(api_key="co-upstream-key-000")) as cohere:
        config = write_config(
            tmp_path,
            "model_list:\n"
            f"  - {{model_name: ranker, litellm_params: {{model: cohere/rerank-v3.5, api_base: {cohere.base_url},"
            " api_key: co-upstream-key-000}}\n"
            f"general_settings: {{master_key: {MASTER_KEY}}}\n",
        )
        with RouterdServer.from_file(config) as daemon:
            body = {
                "model": "ranker",
                "query": "red apple",
                "documents": ["a blue car", "a red apple"],
                "top_n": 1,
            }
            answer = httpx.post(
                daemon.base_url + "/v1/rerank", headers={"authorization": f"Bearer {MASTER_KEY}"}, json=body
            )
    assert answer.status_code == 200 and answer.json()["results"][0]["index"] == 1
    assert cohere.requests[-1].path == "/v2/rerank"
