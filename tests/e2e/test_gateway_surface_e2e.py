"""The rest of the OpenAI surface as gateway features, end to end through the daemon in front of a fake
OpenAI upstream: guardrails on moderations, images, speech, rerank and transcripts; who a guardrail
refused, in the request log; model access on ``/v1/messages/count_tokens``; a deployment's body
defaults on native ``/v1/responses`` calls; Azure deployment aliases from the routing file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from clients import tracked

from routerd.testing import FakeOpenAI
from routerd.testing.server import RouterdServer

from .support import (
    ANTHROPIC_KEY,
    MASTER_KEY,
    OPENAI_KEY,
    capture_logs,
    client_for,
    reset,
    running_fake,
    user,
    wait_for,
    write_config,
)

CAROL = "sk-surface-carol-0123456789"  # team "search", every call runs the "secrets" guardrail
DAVE = "sk-surface-dave-01234567890"  # runs "secrets" and, on answers, "sizes"
SECRET = "my key is AKIAIOSFODNN7EXAMPLE"
EMAIL = "mail jane@corp.example"
MASKED = "mail [EMAIL_REDACTED]"


def _config(openai_base: str, aliases: str = "{prod-chat: gpt}") -> str:
    oai = f"api_base: {openai_base}, api_key: {OPENAI_KEY}"
    return f"""\
model_list:
  - model_name: gpt
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: {openai_base}
      api_key: {OPENAI_KEY}
      temperature: 0.3
      max_tokens: 77
      frequency_penalty: 0.5
      reasoning_effort: low
      extra_body: {{prompt_cache_key: pk-surface}}
  - {{model_name: plain, litellm_params: {{model: openai/gpt-4o, {oai}}}}}
  - {{model_name: mod, litellm_params: {{model: openai/omni-moderation-latest, {oai}}}}}
  - {{model_name: claude, litellm_params: {{model: anthropic/claude-sonnet-4-5, api_key: {ANTHROPIC_KEY}}}}}
router_settings:
  num_retries: 0
  azure_deployment_aliases: {aliases}
general_settings: {{master_key: {MASTER_KEY}}}
teams:
  - {{team_id: search, models: [gpt, plain, mod]}}
keys:
  - {{key_alias: carol, key: {CAROL}, team_id: search, models: [gpt, plain, mod], guardrails: [secrets]}}
  - {{key_alias: dave, key: {DAVE}, guardrails: [sizes, secrets]}}
guardrails:
  - guardrail_name: secrets
    litellm_params:
      guardrail: litellm_content_filter
      patterns:
        - {{pattern_type: prebuilt, pattern_name: aws_access_key, action: BLOCK}}
        - {{pattern_type: prebuilt, pattern_name: email, action: MASK}}
  - guardrail_name: sizes
    litellm_params:
      guardrail: litellm_content_filter
      mode: [post_call]
      patterns:
        - {{pattern_type: regex, name: size, pattern: '\\b\\d+ bytes\\b', action: MASK}}
"""


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with running_fake(FakeOpenAI(api_key=OPENAI_KEY)) as started:
        yield started


@pytest.fixture(scope="module")
def config_path(tmp_path_factory: pytest.TempPathFactory, fake: FakeOpenAI) -> Path:
    return write_config(Path(tmp_path_factory.mktemp("surface")), _config(fake.base_url))


@pytest.fixture(scope="module")
def daemon(config_path: Path) -> Iterator[RouterdServer]:
    with RouterdServer.from_file(config_path, spend_db=config_path.parent / "spend.sqlite") as started:
        yield started


@pytest.fixture
def server(daemon: RouterdServer, fake: FakeOpenAI) -> RouterdServer:
    reset(fake)
    return daemon


def _post(server: RouterdServer, path: str, body: dict[str, Any], key: str = CAROL) -> httpx.Response:
    return httpx.post(server.base_url + path, headers={"authorization": f"Bearer {key}"}, json=body)


def _blocked(answer: httpx.Response) -> None:
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["type"] == "guardrail_violation" and set(error) >= {"message", "type", "param", "code"}
    assert "AKIA" not in answer.text


# -- guardrails read the inputs of the other endpoints ----------------------------------------------


def test_moderation_inputs_are_guarded(server: RouterdServer, fake: FakeOpenAI) -> None:
    _blocked(_post(server, "/v1/moderations", {"model": "mod", "input": ["fine", SECRET]}))
    assert fake.requests == []
    parts = [{"type": "text", "text": EMAIL}, {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]
    assert _post(server, "/v1/moderations", {"model": "mod", "input": ["fine", EMAIL]}).status_code == 200
    assert fake.requests[-1].json["input"] == ["fine", MASKED]
    assert _post(server, "/v1/moderations", {"model": "mod", "input": parts}).status_code == 200
    assert fake.requests[-1].json["input"][0]["text"] == MASKED


def test_image_prompts_are_guarded(server: RouterdServer, fake: FakeOpenAI) -> None:
    client = client_for(server, CAROL)
    with pytest.raises(openai.BadRequestError) as blocked:
        client.images.generate(model="gpt", prompt=SECRET)
    assert blocked.value.body["type"] == "guardrail_violation"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError):
        client.images.edit(model="gpt", image=("in.png", b"\x89PNG image"), prompt=SECRET)
    assert fake.requests == []
    client.images.generate(model="gpt", prompt=EMAIL)
    assert fake.requests[-1].json["prompt"] == MASKED
    client.images.edit(model="gpt", image=("in.png", b"\x89PNG image"), prompt=EMAIL)
    sent = fake.requests[-1]
    assert sent.path == "/v1/images/edits" and MASKED.encode() in sent.body and b"jane@" not in sent.body


def test_speech_input_is_guarded(server: RouterdServer, fake: FakeOpenAI) -> None:
    client = client_for(server, CAROL)
    with pytest.raises(openai.BadRequestError) as blocked:
        client.audio.speech.create(model="gpt", voice="alloy", input=SECRET)
    assert blocked.value.body["type"] == "guardrail_violation"  # type: ignore[index]
    assert fake.requests == []
    audio = client.audio.speech.create(model="gpt", voice="alloy", input=EMAIL)
    assert fake.requests[-1].json["input"] == MASKED
    assert audio.content == b"ID3" + MASKED.encode()  # the fake spells what it was sent


def test_rerank_query_and_documents_are_guarded(server: RouterdServer, fake: FakeOpenAI) -> None:
    body = {"model": "gpt", "query": "who is jane@corp.example", "documents": ["a", {"text": EMAIL}]}
    assert _post(server, "/v1/rerank", body).status_code == 200
    sent = fake.requests[-1].json
    assert sent["query"] == "who is [EMAIL_REDACTED]" and sent["documents"] == ["a", {"text": MASKED}]
    _blocked(_post(server, "/v1/rerank", {**body, "documents": ["a", SECRET]}))
    _blocked(_post(server, "/v1/rerank", {**body, "query": SECRET}))
    assert len(fake.requests) == 1


def test_transcripts_are_guarded_after_the_call(server: RouterdServer, fake: FakeOpenAI) -> None:
    plain = client_for(server).audio.transcriptions.create(model="gpt", file=("a.wav", b"RIFF wave"))
    assert plain.text.endswith(" bytes")  # no post_call guardrail for this key
    guarded = client_for(server, DAVE)
    masked = guarded.audio.transcriptions.create(model="gpt", file=("a.wav", b"RIFF wave"))
    assert masked.text == "transcript of [SIZE_REDACTED]"
    srt = guarded.audio.transcriptions.create(model="gpt", file=("a.wav", b"RIFF"), response_format="srt")
    assert "[SIZE_REDACTED]" in srt and " bytes" not in srt
    with pytest.raises(openai.BadRequestError):  # a transcription's prompt is request text
        guarded.audio.transcriptions.create(model="gpt", file=("a.wav", b"RIFF"), prompt=SECRET)
    assert len(fake.requests) == 3


# -- a guardrail refusal's log line says whose request it was ----------------------------------------


def _refusal_line(logs: Any, endpoint: str) -> dict[str, Any]:
    def line() -> dict[str, Any] | None:
        for record in logs.records:
            fields = getattr(record, "fields", {})
            if fields.get("endpoint") == endpoint and fields.get("status") == 400:
                return dict(fields)
        return None

    wait_for(lambda: line() is not None, what=f"the {endpoint} request line")
    found = line()
    assert found is not None
    return found


@pytest.mark.parametrize("door", ["chat", "messages", "responses"])
def test_a_refusals_log_line_names_key_team_and_end_user(server: RouterdServer, door: str) -> None:
    with capture_logs() as logs:
        if door == "chat":
            with pytest.raises(openai.BadRequestError):
                client_for(server, CAROL).chat.completions.create(
                    model="gpt", messages=user(SECRET), user="end-user-7"
                )
        elif door == "messages":
            claude = tracked(anthropic.Anthropic(base_url=server.base_url, api_key=CAROL, max_retries=0))
            with pytest.raises(anthropic.BadRequestError):
                claude.messages.create(
                    model="gpt",
                    max_tokens=8,
                    messages=user(SECRET),  # type: ignore[arg-type]
                    metadata={"user_id": "end-user-7"},
                )
        else:
            with pytest.raises(openai.BadRequestError):
                client_for(server, CAROL).responses.create(model="gpt", input=SECRET, user="end-user-7")
        fields = _refusal_line(logs, door)
    assert (fields["key_alias"], fields["team"], fields["end_user"]) == ("carol", "search", "end-user-7")
    assert fields["guardrails"] == [{"name": "secrets", "mode": "pre_call", "action": "block"}]
    assert CAROL not in str(fields) and "AKIA" not in str(fields)


def test_a_refusal_on_a_media_route_names_the_key_too(server: RouterdServer) -> None:
    with capture_logs() as logs:
        with pytest.raises(openai.BadRequestError):
            client_for(server, CAROL).audio.speech.create(model="gpt", voice="alloy", input=SECRET)
        fields = _refusal_line(logs, "speech")
    assert (fields["key_alias"], fields["team"]) == ("carol", "search")
    assert fields["guardrails"] == [{"name": "secrets", "mode": "pre_call", "action": "block"}]


# -- count_tokens checks the key's model access -----------------------------------------------------


def test_count_tokens_checks_model_access(server: RouterdServer) -> None:
    carol = tracked(anthropic.Anthropic(base_url=server.base_url, api_key=CAROL, max_retries=0))
    counted = carol.messages.count_tokens(model="gpt", messages=user("hello there"))  # type: ignore[arg-type]
    assert counted.input_tokens > 0
    with pytest.raises(anthropic.PermissionDeniedError) as refused:
        carol.messages.count_tokens(model="claude", messages=user("hi"))  # type: ignore[arg-type]
    assert refused.value.body["error"]["type"] == "permission_error"  # type: ignore[index]
    assert "'claude'" in refused.value.message
    with pytest.raises(anthropic.PermissionDeniedError):  # no access: not told whether it exists
        carol.messages.count_tokens(model="nope", messages=user("hi"))  # type: ignore[arg-type]
    master = tracked(anthropic.Anthropic(base_url=server.base_url, api_key=MASTER_KEY, max_retries=0))
    with pytest.raises(anthropic.NotFoundError) as missing:
        master.messages.count_tokens(model="nope", messages=user("hi"))  # type: ignore[arg-type]
    assert missing.value.body == {  # type: ignore[comparison-overlap]
        "type": "error",
        "error": {
            "type": "not_found_error",
            "message": "model: model 'nope' is not served by this router; GET /v1/models lists the "
            "available models",
        },
    }
    assert master.messages.count_tokens(model="claude", messages=user("hi")).input_tokens > 0  # type: ignore[arg-type]


# -- native /v1/responses gets the deployment's body defaults ---------------------------------------


def test_native_responses_get_the_deployments_body_defaults(server: RouterdServer, fake: FakeOpenAI) -> None:
    client = client_for(server)
    client.responses.create(model="gpt", input="hello")
    sent = fake.requests[-1]
    assert sent.path == "/v1/responses"
    assert sent.json["temperature"] == 0.3 and sent.json["max_output_tokens"] == 77
    assert sent.json["reasoning"] == {"effort": "low"} and sent.json["prompt_cache_key"] == "pk-surface"
    assert "max_tokens" not in sent.json and "frequency_penalty" not in sent.json  # chat-only
    assert sent.json["model"] == "gpt-4o-mini"
    client.responses.create(model="gpt", input="hello", temperature=0.9, max_output_tokens=5)
    assert fake.requests[-1].json["temperature"] == 0.9 and fake.requests[-1].json["max_output_tokens"] == 5
    # the translated chat path of the same group had them all along
    client.chat.completions.create(model="gpt", messages=user("hi"))
    chat = fake.requests[-1].json
    assert chat["max_tokens"] == 77 and chat["frequency_penalty"] == 0.5
    client.responses.create(model="plain", input="hello")  # a deployment without defaults adds none
    assert {"temperature", "max_output_tokens", "reasoning"}.isdisjoint(fake.requests[-1].json)


# -- Azure deployment aliases from the routing file -------------------------------------------------


def _azure(server: RouterdServer) -> openai.AzureOpenAI:
    return tracked(
        openai.AzureOpenAI(
            azure_endpoint=server.base_url, api_key=MASTER_KEY, api_version="2024-10-21", max_retries=0
        )
    )


def _reload(server: RouterdServer) -> httpx.Response:
    return httpx.post(server.base_url + "/admin/reload", headers={"authorization": f"Bearer {MASTER_KEY}"})


def test_azure_deployment_aliases_route_and_reload(
    server: RouterdServer, fake: FakeOpenAI, config_path: Path
) -> None:
    azure = _azure(server)
    azure.chat.completions.create(model="prod-chat", messages=user("hi"))
    assert fake.requests[-1].json["model"] == "gpt-4o-mini"
    original = config_path.read_text()
    try:
        config_path.write_text(_config(fake.base_url, "{prod-chat: plain, other-name: gpt}"))
        assert _reload(server).status_code == 200
        azure.chat.completions.create(model="prod-chat", messages=user("hi"))
        assert fake.requests[-1].json["model"] == "gpt-4o"
        azure.chat.completions.create(model="other-name", messages=user("hi"))
        assert fake.requests[-1].json["model"] == "gpt-4o-mini"
        config_path.write_text(_config(fake.base_url, "{prod-chat: gtp}"))
        refused = _reload(server)
        assert refused.status_code != 200 and "gtp" in refused.text
        azure.chat.completions.create(model="prod-chat", messages=user("hi"))  # the old table serves on
        assert fake.requests[-1].json["model"] == "gpt-4o"
    finally:
        config_path.write_text(original)
        assert _reload(server).status_code == 200
    with pytest.raises(openai.NotFoundError):
        azure.chat.completions.create(model="other-name", messages=user("hi"))
