"""Guardrails over gateway batches, end to end: the official openai client against the daemon, a staging
OpenAI fake behind ``files_settings``, the deployment's OpenAI fake (where the checked copy of the input
file goes) and a policy webhook on loopback. Assertions are on what the deployment received: a blocked
line means no upload at all, a masked line is masked in the deployment's copy, a line's guardrail
selection never reaches it; and on the output file as the client fetches it through routerd."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest
from aiohttp import web

from routerd.testing.fake_http import FakeServer
from routerd.testing.finetune_fakes import FakeOpenAIFineTuning
from routerd.testing.server import RouterdServer

from .support import MASTER_KEY, capture_logs, client_for, guardrail_counts, reset, running_fake, write_config

STAGING_KEY = "sk-staging-upstream-9f8e7d6c"
DEPLOY_KEY = "sk-deploy-upstream-5b4a3928"
CAROL = "sk-guarded-carol-0123456789"  # no guardrails of her own
PHONES = "sk-guarded-phones-012345678"  # a key whose calls run the 'phones' guardrail
AWS_KEY = "AKIAIOSFODNN7EXAMPLE"  # what the default_on 'secrets' guardrail blocks
SECRETS = (STAGING_KEY, DEPLOY_KEY, CAROL, PHONES, MASTER_KEY, AWS_KEY)


class PolicyService(FakeServer[None]):
    """A policy webhook on loopback: ``/check`` blocks texts that say "forbidden", ``/down`` answers 500.
    It records the texts of every check."""

    def __init__(self) -> None:
        super().__init__(None)
        self.checked: list[list[str]] = []

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/{action}", self._check)]

    async def _check(self, request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        self.checked.append(list(body["texts"]))
        if request.match_info["action"] == "down":
            return web.json_response({"error": "maintenance"}, status=500)
        if any("forbidden" in text for text in body["texts"]):
            return web.json_response({"action": "BLOCKED", "blocked_reason": "policy 9: forbidden topic"})
        return web.json_response({"action": "NONE"})


def _config(staging: str, deployment: str, service: str) -> str:
    return f"""\
model_list:
  - {{model_name: gpt, litellm_params: {{model: openai/gpt-4o-mini, api_base: {deployment}, api_key: {DEPLOY_KEY}}}}}
files_settings:
  - {{custom_llm_provider: openai, api_base: {staging}, api_key: {STAGING_KEY}}}
general_settings: {{master_key: {MASTER_KEY}}}
keys:
  - {{key_alias: carol, key: {CAROL}, models: [gpt]}}
  - {{key_alias: phones, key: {PHONES}, models: [gpt], guardrails: [phones]}}
guardrails:
  - guardrail_name: secrets
    litellm_params:
      guardrail: litellm_content_filter
      default_on: true
      patterns:
        - {{pattern_type: prebuilt, pattern_name: aws_access_key, action: BLOCK}}
        - {{pattern_type: prebuilt, pattern_name: email, action: MASK}}
  - guardrail_name: addresses
    litellm_params:
      guardrail: litellm_content_filter
      patterns: [{{pattern_type: prebuilt, pattern_name: ipv4, action: MASK}}]
  - guardrail_name: phones
    litellm_params:
      guardrail: litellm_content_filter
      patterns: [{{pattern_type: prebuilt, pattern_name: phone, action: BLOCK}}]
  - guardrail_name: policy
    litellm_params: {{guardrail: generic_guardrail_api, api_base: {service}/check, timeout: 5}}
  - guardrail_name: policy-down
    litellm_params: {{guardrail: generic_guardrail_api, api_base: {service}/down, timeout: 5}}
  - guardrail_name: answers
    litellm_params:
      guardrail: litellm_content_filter
      mode: post_call
      default_on: true
      patterns:
        - {{pattern_type: prebuilt, pattern_name: email, action: MASK}}
        - {{pattern_type: prebuilt, pattern_name: aws_access_key, action: BLOCK}}
  - guardrail_name: answer-policy
    litellm_params: {{guardrail: generic_guardrail_api, mode: post_call, api_base: {service}/check, timeout: 5}}
"""


class World:
    def __init__(self, staging: Any, deployment: Any, service: PolicyService, server: RouterdServer) -> None:
        self.staging = staging
        self.deployment = deployment
        self.service = service
        self.server = server


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    directory = Path(tmp_path_factory.mktemp("batch-guardrails"))
    with (
        running_fake(FakeOpenAIFineTuning(api_key=STAGING_KEY)) as staging,
        running_fake(FakeOpenAIFineTuning(api_key=DEPLOY_KEY)) as deployment,
        running_fake(PolicyService()) as service,
    ):
        config = write_config(directory, _config(staging.base_url, deployment.base_url, service.base_url))
        with RouterdServer.from_file(config, spend_db=directory / "spend.sqlite") as server:
            yield World(staging, deployment, service, server)


@pytest.fixture
def fresh(world: World) -> World:
    reset(world.staging)
    reset(world.deployment)
    world.service.checked.clear()
    return world


def _line(custom_id: str, text: str, **extra: Any) -> dict[str, Any]:
    body = {"model": "gpt", "messages": [{"role": "user", "content": text}], **extra}
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}


def _jsonl(*lines: dict[str, Any]) -> bytes:
    return b"".join(orjson.dumps(line) + b"\n" for line in lines)


def _create(world: World, content: bytes, key: str = CAROL) -> Any:
    client = client_for(world.server, key)
    uploaded = client.files.create(file=("in.jsonl", content), purpose="batch")
    return client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )


def _refused(world: World, content: bytes, key: str = CAROL) -> dict[str, Any]:
    """The creation's error body (it must be refused), and nothing reached the deployment."""
    with pytest.raises(openai.APIStatusError) as refused:
        _create(world, content, key)
    assert world.deployment.requests == []  # no upload, no batch: nothing went upstream
    body = refused.value.response.json()
    assert set(body["error"]) >= {"message", "type", "param", "code"}
    assert not any(secret in refused.value.response.text for secret in SECRETS)
    return {"status": refused.value.status_code, **body["error"]}


def _uploaded_lines(world: World, batch_id: str) -> list[dict[str, Any]]:
    """The lines of the copy of the input file the deployment received."""
    copy_id = world.deployment.batches[batch_id]["input_file_id"]
    return [orjson.loads(raw) for raw in world.deployment.book.files[copy_id].content.splitlines()]


def _texts(lines: list[dict[str, Any]]) -> list[str]:
    return [line["body"]["messages"][0]["content"] for line in lines]


def test_a_line_with_a_secret_refuses_the_batch_naming_the_line(fresh: World) -> None:
    content = _jsonl(_line("a", "hello"), _line("b", f"my key is {AWS_KEY}"), _line("c", "bye"))
    error = _refused(fresh, content)
    assert error["status"] == 400 and error["type"] == "guardrail_violation"
    assert error["guardrail"] == "secrets" and error["param"] == "input_file_id"
    assert "line 2" in error["message"] and "aws_access_key" in error["message"]


def test_a_masked_line_is_masked_in_the_deployments_copy(fresh: World) -> None:
    batch = _create(fresh, _jsonl(_line("a", "write to ann@example.com please"), _line("b", "plain")))
    texts = _texts(_uploaded_lines(fresh, batch.id))
    assert "ann@example.com" not in texts[0] and "REDACTED" in texts[0]
    assert texts[1] == "plain"


def test_a_lines_selection_runs_its_guardrail_and_is_not_forwarded(fresh: World) -> None:
    address = "connect to 10.1.2.3 now"
    content = _jsonl(
        _line("a", address, guardrails=["addresses"]),
        _line("b", address, metadata={"guardrails": ["addresses"], "team": "x"}),
        _line("c", address),  # no selection: 'addresses' is not default_on
    )
    lines = _uploaded_lines(fresh, _create(fresh, content).id)
    texts = _texts(lines)
    assert "10.1.2.3" not in texts[0] and "10.1.2.3" not in texts[1] and texts[2] == address
    assert all("guardrails" not in line["body"] for line in lines)
    assert lines[1]["body"]["metadata"] == {"team": "x"}  # the rest of the metadata goes on


@pytest.mark.parametrize(
    ("selection", "words"),
    [(["nope"], "unknown guardrail 'nope'"), ("addresses", "must be a list of guardrail names")],
)
def test_a_bad_selection_refuses_the_batch_naming_the_line(fresh: World, selection: Any, words: str) -> None:
    error = _refused(fresh, _jsonl(_line("a", "hi"), _line("b", "hi", guardrails=selection)))
    assert error["status"] == 400 and error["message"].startswith("line 2: ") and words in error["message"]


def test_a_keys_guardrails_apply_to_its_batches(fresh: World) -> None:
    content = _jsonl(_line("a", "call me on +1 415 555 0100"))
    error = _refused(fresh, content, key=PHONES)
    assert error["guardrail"] == "phones" and "line 1" in error["message"]
    batch = _create(fresh, content, key=CAROL)  # carol's key does not run 'phones'
    assert _texts(_uploaded_lines(fresh, batch.id)) == ["call me on +1 415 555 0100"]


def test_a_webhook_blocks_line_3_and_each_line_is_one_check(fresh: World) -> None:
    selected = {"metadata": {"guardrails": ["policy"]}}
    content = _jsonl(
        _line("a", "fine one", **selected),
        _line("b", "fine two", **selected),
        _line("c", "a forbidden one", **selected),
        _line("d", "fine four", **selected),
    )
    error = _refused(fresh, content)
    assert error["guardrail"] == "policy" and "line 3" in error["message"]
    assert "policy 9: forbidden topic" in error["message"]
    checked = [texts[0] for texts in fresh.service.checked]
    assert {"fine one", "fine two", "a forbidden one"} <= set(checked)  # every line before it was checked


def test_a_fail_closed_webhook_that_is_down_refuses_with_503(fresh: World) -> None:
    error = _refused(fresh, _jsonl(_line("a", "hi", guardrails=["policy-down"])))
    assert error["status"] == 503 and error["code"] == "guardrail_unavailable"
    assert "policy-down" in error["message"] and "line 1" in error["message"]


def test_the_creation_counts_each_lines_actions_and_logs_them_once(fresh: World) -> None:
    before = guardrail_counts(fresh.server)
    content = _jsonl(_line("a", "x ann@example.com"), _line("b", "plain"), _line("c", "y bo@example.org"))
    with capture_logs() as logs:
        _create(fresh, content)
    after = guardrail_counts(fresh.server)
    grew = {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}
    assert grew == {("secrets", "mask", "pre_call"): 2, ("secrets", "allow", "pre_call"): 1}
    lines = [r for r in logs.records if r.getMessage() == "batch guardrails"]
    assert len(lines) == 1
    fields = lines[0].fields  # type: ignore[attr-defined]
    assert fields["guardrails"] == {"secrets": {"allow": 1, "mask": 2}}
    assert fields["key_alias"] == "carol" and fields["stage"] == "input" and fields["lines"] == 3
    assert "example.com" not in logs.gateway_text and "example.org" not in logs.gateway_text


def _complete_with(world: World, batch_id: str, answers: list[str]) -> str:
    """Complete the batch at the deployment, its answers' texts replaced by ``answers``."""
    batch = world.deployment.complete_batch(batch_id)
    stored = world.deployment.book.files[batch["output_file_id"]]
    lines = [orjson.loads(raw) for raw in stored.content.splitlines()]
    for line, text in zip(lines, answers, strict=True):
        line["response"]["body"]["choices"][0]["message"]["content"] = text
    content = b"".join(orjson.dumps(line) + b"\n" for line in lines)
    world.deployment.book.files[stored.id] = dataclasses.replace(stored, content=content)
    return str(batch["output_file_id"])


def test_the_output_file_is_masked_and_blocked_per_line(fresh: World) -> None:
    carol = client_for(fresh.server, CAROL)
    batch = _create(fresh, _jsonl(_line("a", "one"), _line("b", "two"), _line("c", "three")))
    answers = ["mail ann@example.com", f"the key is {AWS_KEY}", "all clear"]
    output_id = _complete_with(fresh, batch.id, answers)
    assert carol.batches.retrieve(batch.id).output_file_id == output_id
    before = guardrail_counts(fresh.server)
    fetched = carol.files.content(output_id)
    after = guardrail_counts(fresh.server)
    grew = {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}
    assert grew == {("answers", action, "post_call"): 1 for action in ("mask", "block", "allow")}
    assert AWS_KEY not in fetched.text and "ann@example.com" not in fetched.text
    lines = {line["custom_id"]: line for line in map(orjson.loads, fetched.content.splitlines())}
    masked = lines["a"]["response"]["body"]["choices"][0]["message"]["content"]
    assert masked.startswith("mail ") and "REDACTED" in masked
    assert lines["b"]["response"] is None
    assert lines["b"]["error"]["type"] == "guardrail_violation"
    assert lines["b"]["error"]["guardrail"] == "answers"
    assert lines["c"]["response"]["body"]["choices"][0]["message"]["content"] == "all clear"


def test_the_output_runs_guardrails_a_line_named(fresh: World) -> None:
    content = _jsonl(_line("a", "one", guardrails=["answer-policy"]), _line("b", "two"))
    batch = _create(fresh, content)
    output_id = _complete_with(fresh, batch.id, ["a forbidden answer", "a fine answer"])
    admin = client_for(fresh.server)  # the master key gets the answers the batch's guardrails let out
    assert admin.batches.retrieve(batch.id).output_file_id == output_id
    fetched = admin.files.content(output_id)
    lines = {line["custom_id"]: line for line in map(orjson.loads, fetched.content.splitlines())}
    assert lines["a"]["response"] is None and lines["a"]["error"]["guardrail"] == "answer-policy"
    assert "a forbidden answer" not in fetched.text
    assert lines["b"]["response"]["body"]["choices"][0]["message"]["content"] == "a fine answer"


def test_responses_lines_are_read_natively(fresh: World) -> None:
    def line(custom_id: str, text: str) -> dict[str, Any]:
        body = {"model": "gpt", "instructions": "be brief", "input": [{"role": "user", "content": text}]}
        return {"custom_id": custom_id, "method": "POST", "url": "/v1/responses", "body": body}

    client = client_for(fresh.server, CAROL)
    secret = client.files.create(
        file=("in.jsonl", _jsonl(line("a", "ok"), line("b", AWS_KEY))), purpose="batch"
    )
    with pytest.raises(openai.BadRequestError, match="line 2 of the batch input file"):
        client.batches.create(input_file_id=secret.id, endpoint="/v1/responses", completion_window="24h")
    assert fresh.deployment.requests == []
    mail = client.files.create(file=("in.jsonl", _jsonl(line("a", "to ann@example.com"))), purpose="batch")
    batch = client.batches.create(input_file_id=mail.id, endpoint="/v1/responses", completion_window="24h")
    [uploaded] = _uploaded_lines(fresh, batch.id)
    text = uploaded["body"]["input"][0]["content"]
    assert "ann@example.com" not in text and "REDACTED" in text
