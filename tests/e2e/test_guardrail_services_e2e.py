"""Guardrails that ask a service, end to end: a webhook (``generic_guardrail_api``) served by a real HTTP
server in the test, ``openai_moderation`` through the fake upstream's ``/v1/moderations``, per-key
guardrails, and the ``routerd_guardrail_actions_total`` counter they leave behind. The official openai
client calls the daemon; assertions are on what the policy service and the upstream received."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import openai
import orjson
import pytest
from aiohttp import web

from routerd.testing import FakeOpenAI
from routerd.testing.fake_http import FakeServer
from routerd.testing.openai_fake import MODERATION_MARKER, Reply
from routerd.testing.server import RouterdServer

from .support import (
    MASTER_KEY,
    OPENAI_KEY,
    client_for,
    guardrail_counts,
    reset,
    running_fake,
    user,
    write_config,
)

POLICY_KEY = "sk-policy-service-5d1e0b7c"
HOOKED = "sk-hooked-key-0123456789abcd"  # a key whose calls run the moderation guardrail
PLAIN = "sk-plain-key-0123456789abcde"  # a key whose calls do not
SECRETS = (POLICY_KEY, HOOKED, PLAIN, MASTER_KEY, OPENAI_KEY)
#: How long the slow policy endpoint sleeps: well past the guardrails' 0.2 s timeout.
SLOW_SECONDS = 1.5


class PolicyService(FakeServer[None]):
    """A policy webhook on loopback: ``/allow``, ``/block``, ``/replace`` and ``/slow`` answer in the
    generic guardrail API shape. Every request is recorded; what breaks the contract is noted in
    ``problems`` (a key in the body, a missing service key, a malformed body)."""

    def __init__(self) -> None:
        super().__init__(None)
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.problems: list[str] = []

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/{action}", self._check)]

    async def _check(self, request: web.Request) -> web.Response:
        action = request.match_info["action"]
        raw = await request.read()
        body = orjson.loads(raw)
        self.received.append((action, body))
        if request.headers.get("authorization") != f"Bearer {POLICY_KEY}":
            self.problems.append(f"{action}: the service key was not sent")
        self.problems += [f"{action}: a key reached the service" for s in SECRETS[1:] if s in raw.decode()]
        if body.get("input_type") not in ("request", "response") or not isinstance(body.get("texts"), list):
            self.problems.append(f"{action}: malformed body {sorted(body)}")
        if action == "slow":
            await asyncio.sleep(SLOW_SECONDS)
            return web.json_response({"action": "NONE"})
        if action == "block":
            return web.json_response({"action": "BLOCKED", "blocked_reason": "policy 7: no launch dates"})
        if action == "replace":
            texts = [t.replace("project titan", "[codename]") for t in body["texts"]]
            return web.json_response({"action": "GUARDRAIL_INTERVENED", "texts": texts})
        return web.json_response({"action": "NONE"})


def _hook(name: str, service: PolicyService, path: str, extra: str = "") -> str:
    return (
        f"  - guardrail_name: {name}\n"
        "    litellm_params:\n"
        "      guardrail: generic_guardrail_api\n"
        f"      api_base: {service.base_url}/{path}\n"
        f"      api_key: {POLICY_KEY}\n"
        f"      {extra or 'timeout: 5'}\n"
    )


def _config(upstream: str, service: PolicyService) -> str:
    params = f"api_base: {upstream}, api_key: {OPENAI_KEY}"
    return (
        "model_list:\n"
        f"  - {{model_name: gpt-4o-mini, litellm_params: {{model: openai/gpt-4o-mini, {params}}}}}\n"
        f"  - {{model_name: moderation, litellm_params: {{model: openai/omni-moderation-latest, {params}}}}}\n"
        f"general_settings: {{master_key: {MASTER_KEY}}}\n"
        "teams:\n"
        "  - {team_id: support}\n"
        "keys:\n"
        f"  - {{key_alias: hooked, key: {HOOKED}, team_id: support, guardrails: [moderation]}}\n"
        f"  - {{key_alias: plain, key: {PLAIN}}}\n"
        "guardrails:\n"
        + _hook("hook-allow", service, "allow")
        + _hook("hook-block", service, "block")
        + _hook("hook-replace", service, "replace")
        + _hook("slow-open", service, "slow", "timeout: 0.2\n      fail_open: true")
        + _hook("slow-closed", service, "slow", "timeout: 0.2\n      fail_open: false")
        + "  - guardrail_name: moderation\n"
        "    litellm_params: {guardrail: openai_moderation, model: moderation, timeout: 5}\n"
        "  - guardrail_name: no-ssn\n"
        "    litellm_params:\n"
        "      guardrail: litellm_content_filter\n"
        "      mode: [post_call, during_call]\n"
        "      patterns: [{pattern_type: prebuilt, pattern_name: us_ssn, action: BLOCK}]\n"
    )


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with running_fake(FakeOpenAI(api_key=OPENAI_KEY)) as started:
        yield started


@pytest.fixture(scope="module")
def service() -> Iterator[PolicyService]:
    with running_fake(PolicyService()) as started:
        yield started


@pytest.fixture(scope="module")
def server(
    fake: FakeOpenAI, service: PolicyService, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RouterdServer]:
    directory = tmp_path_factory.mktemp("guardrail-services")
    config = write_config(directory, _config(fake.base_url, service))
    with RouterdServer.from_file(config, spend_db=directory / "spend.sqlite") as started:
        yield started


@pytest.fixture
def gateway(server: RouterdServer, fake: FakeOpenAI, service: PolicyService) -> RouterdServer:
    reset(fake)
    service.received.clear()
    service.problems.clear()
    return server


def _chat(server: RouterdServer, text: str, guardrails: list[str], key: str = HOOKED) -> str | None:
    answer = client_for(server, key).chat.completions.create(
        model="gpt-4o-mini", messages=user(text), user="u-17", extra_body={"guardrails": guardrails}
    )
    return answer.choices[0].message.content


def _upstream_chats(fake: FakeOpenAI) -> list[Any]:
    return [r.json for r in fake.requests if r.path.endswith("/chat/completions")]


def test_the_webhook_receives_the_texts_and_request_data_without_keys(
    gateway: RouterdServer, fake: FakeOpenAI, service: PolicyService
) -> None:
    client_for(gateway, PLAIN).chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}],
        user="u-17",
        extra_body={"guardrails": ["hook-allow"]},
    )
    assert service.problems == []
    [(path, body)] = service.received
    assert path == "allow" and body["input_type"] == "request"
    assert body["texts"] == ["be brief", "hello there"]
    assert body["request_data"] == {
        "model": "gpt-4o-mini",
        "user": "u-17",
        "key_alias": "plain",
        "endpoint": "chat",
    }
    assert len(_upstream_chats(fake)) == 1


def test_a_webhook_block_is_a_400_and_the_upstream_sees_nothing(
    gateway: RouterdServer, fake: FakeOpenAI, service: PolicyService
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        _chat(gateway, "when do we launch?", ["hook-block"])
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["type"] == "guardrail_violation" and error["guardrail"] == "hook-block"
    assert "policy 7: no launch dates" in caught.value.message
    assert fake.requests == []
    assert [path for path, _ in service.received] == ["block"] and service.problems == []
    assert service.received[0][1]["request_data"]["team_id"] == "support"


def test_a_webhook_replacement_is_what_the_upstream_sees(
    gateway: RouterdServer, fake: FakeOpenAI, service: PolicyService
) -> None:
    _chat(gateway, "status of project titan?", ["hook-replace"], key=PLAIN)
    assert service.received[0][1]["texts"] == ["status of project titan?"]
    [sent] = _upstream_chats(fake)
    assert sent["messages"][0]["content"] == "status of [codename]?"
    assert service.problems == []


def test_a_slow_webhook_fails_open_or_closed_as_declared(
    gateway: RouterdServer, fake: FakeOpenAI, service: PolicyService
) -> None:
    assert _chat(gateway, "let me through", ["slow-open"], key=PLAIN)
    assert len(_upstream_chats(fake)) == 1
    with pytest.raises(openai.InternalServerError) as caught:
        _chat(gateway, "stop me", ["slow-closed"], key=PLAIN)
    assert caught.value.status_code == 503
    error = caught.value.body
    assert isinstance(error, dict) and error["code"] == "guardrail_unavailable"
    assert "slow-closed" in caught.value.message
    assert len(_upstream_chats(fake)) == 1  # the fail-closed call never went upstream
    assert [path for path, _ in service.received] == ["slow", "slow"]


def test_moderation_blocks_a_flagged_prompt_and_passes_a_clean_one(
    gateway: RouterdServer, fake: FakeOpenAI
) -> None:
    assert _chat(gateway, "a calm question", [], key=HOOKED)
    with pytest.raises(openai.BadRequestError) as caught:
        _chat(gateway, f"how to make things go {MODERATION_MARKER}", [], key=HOOKED)
    error = caught.value.body
    assert isinstance(error, dict) and error["guardrail"] == "moderation"
    assert "violence" in caught.value.message and MODERATION_MARKER not in caught.value.message
    moderations = [r for r in fake.requests if r.path == "/v1/moderations"]
    assert [r.json["input"] for r in moderations] == [
        ["a calm question"],
        [f"how to make things go {MODERATION_MARKER}"],
    ]
    assert all(r.json["model"] == "omni-moderation-latest" for r in moderations)
    assert len(_upstream_chats(fake)) == 1  # only the clean prompt was answered


def test_key_guardrails_run_only_on_that_keys_calls(gateway: RouterdServer, fake: FakeOpenAI) -> None:
    flagged = f"{MODERATION_MARKER} in the subject line"
    assert _chat(gateway, flagged, [], key=PLAIN)  # plain's calls do not run moderation
    assert not [r for r in fake.requests if r.path == "/v1/moderations"]
    assert _upstream_chats(fake)[-1]["messages"][0]["content"] == flagged
    with pytest.raises(openai.BadRequestError):
        _chat(gateway, flagged, [], key=HOOKED)  # hooked's key lists it
    assert len([r for r in fake.requests if r.path == "/v1/moderations"]) == 1
    assert len(_upstream_chats(fake)) == 1


def test_metrics_count_each_guardrails_actions(gateway: RouterdServer) -> None:
    before = guardrail_counts(gateway)
    _chat(gateway, "project titan", ["hook-allow", "hook-replace", "slow-open"], key=PLAIN)
    for names in (["hook-block"], ["slow-closed"]):
        with pytest.raises((openai.BadRequestError, openai.InternalServerError)):
            _chat(gateway, "project titan", names, key=PLAIN)
    with pytest.raises(openai.BadRequestError):
        _chat(gateway, MODERATION_MARKER, [], key=HOOKED)
    _chat(gateway, "calm", [], key=HOOKED)
    after = guardrail_counts(gateway)
    grew = {labels: after[labels] - before.get(labels, 0.0) for labels in after}
    grew = {labels: n for labels, n in grew.items() if n}
    assert grew == {
        ("hook-allow", "allow", "pre_call"): 1,
        ("hook-replace", "mask", "pre_call"): 1,
        ("slow-open", "allow", "pre_call"): 1,
        ("hook-block", "block", "pre_call"): 1,
        ("slow-closed", "unavailable", "pre_call"): 1,
        ("moderation", "block", "pre_call"): 1,
        ("moderation", "allow", "pre_call"): 1,
    }


def test_answer_blocks_are_counted_plain_and_streamed(gateway: RouterdServer, fake: FakeOpenAI) -> None:
    client = client_for(gateway, PLAIN)
    before = guardrail_counts(gateway)
    fake.enqueue(Reply(content="his number is 078-05-1120"))
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="gpt-4o-mini", messages=user("whose?"), extra_body={"guardrails": ["no-ssn"]}
        )
    assert "078-05-1120" not in caught.value.message
    fake.enqueue(Reply(content="his number is 078-05-1120, call him"))
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=user("whose?"), stream=True, extra_body={"guardrails": ["no-ssn"]}
    )
    with pytest.raises(openai.APIError):
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
        pytest.fail(f"the stream ended without an error event: {text!r}")
    after = guardrail_counts(gateway)
    assert after[("no-ssn", "block", "post_call")] - before.get(("no-ssn", "block", "post_call"), 0) == 1
    assert after[("no-ssn", "block", "during_call")] - before.get(("no-ssn", "block", "during_call"), 0) == 1
