"""Gateway batches end to end: the official openai client against the daemon, a "staging" OpenAI fake
behind ``files_settings`` (where ``/v1/files`` uploads go) and the OpenAI fake of the model group's
deployment (where routerd re-uploads the input file and creates the batch, with that deployment's
credentials). Keys, scoping, the bounds of the input file and the metering of a completed batch."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest

from routerd.testing.finetune_fakes import FakeAzureFineTuning, FakeOpenAIFineTuning
from routerd.testing.server import RouterdServer, free_port

from .support import ANTHROPIC_KEY, MASTER_KEY, client_for, reset, running_fake, write_config

STAGING_KEY = "sk-staging-upstream-0a1b2c3d"
DEPLOY_KEY = "sk-deploy-upstream-4e5f6a7b"
AZURE_KEY = "azure-deploy-upstream-8c9d0e1f"
CAROL = "sk-batch-carol-0123456789ab"  # gpt, plain, claude
BOB = "sk-batch-bob-0123456789abcd"  # plain only
DANA = "sk-batch-dana-0123456789ab"  # plain, with a budget a batch overspends
MAX_LINES = 3


def _config(staging: str, deployment: str, azure: str) -> str:
    upstream = f"api_base: {deployment}, api_key: {DEPLOY_KEY}"
    return f"""\
model_list:
  - model_name: gpt
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: {deployment}
      api_key: {DEPLOY_KEY}
      input_cost_per_token: 0.001
      output_cost_per_token: 0.002
      input_cost_per_token_batches: 0.0005
      output_cost_per_token_batches: 0.001
  - {{model_name: plain, litellm_params: {{model: openai/gpt-4o, {upstream}, input_cost_per_token: 0.001, output_cost_per_token: 0.002}}}}
  - {{model_name: claude, litellm_params: {{model: anthropic/claude-sonnet-4-5, api_key: {ANTHROPIC_KEY}}}}}
  - {{model_name: pair, litellm_params: {{model: openai/gpt-4o, api_base: "http://127.0.0.1:{free_port()}/v1", api_key: {DEPLOY_KEY}}}}}
  - {{model_name: pair, litellm_params: {{model: openai/gpt-4o-mini, {upstream}}}}}
  - {{model_name: az, litellm_params: {{model: azure/gpt4o-deploy, api_base: {azure}, api_key: {AZURE_KEY}, api_version: "2024-10-21", input_cost_per_token: 0.001, output_cost_per_token: 0.002}}}}
files_settings:
  - {{custom_llm_provider: openai, api_base: {staging}, api_key: {STAGING_KEY}}}
general_settings: {{master_key: {MASTER_KEY}}}
keys:
  - {{key_alias: carol, key: {CAROL}, models: [gpt, plain, claude, az, pair]}}
  - {{key_alias: dana, key: {DANA}, models: [plain], max_budget: 0.01, budget_duration: 30d}}
  - {{key_alias: bob, key: {BOB}, models: [plain]}}
"""


class Upstreams:
    def __init__(
        self, staging: FakeOpenAIFineTuning, deployment: FakeOpenAIFineTuning, azure: FakeAzureFineTuning
    ) -> None:
        self.staging = staging
        self.deployment = deployment
        self.azure = azure


@pytest.fixture(scope="module")
def upstreams() -> Iterator[Upstreams]:
    with (
        running_fake(FakeOpenAIFineTuning(api_key=STAGING_KEY)) as staging,
        running_fake(FakeOpenAIFineTuning(api_key=DEPLOY_KEY)) as deployment,
        running_fake(FakeAzureFineTuning(api_key=AZURE_KEY)) as azure,
    ):
        yield Upstreams(staging, deployment, azure)


@pytest.fixture(scope="module")
def daemon(upstreams: Upstreams, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RouterdServer]:
    directory = Path(tmp_path_factory.mktemp("batches"))
    config = write_config(
        directory,
        _config(upstreams.staging.base_url, upstreams.deployment.base_url, upstreams.azure.origin),
    )
    with RouterdServer.from_file(
        config, spend_db=directory / "spend.sqlite", batch_max_lines=MAX_LINES, batch_max_file_bytes=4096
    ) as started:
        yield started


@pytest.fixture
def server(daemon: RouterdServer, upstreams: Upstreams) -> RouterdServer:
    reset(upstreams.staging)
    reset(upstreams.deployment)
    reset(upstreams.azure)
    return daemon


def _line(custom_id: str, model: str = "gpt", **body: Any) -> dict[str, Any]:
    request = {"model": model, "messages": [{"role": "user", "content": f"q {custom_id}"}], **body}
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": request}


def _jsonl(*lines: dict[str, Any]) -> bytes:
    return b"".join(orjson.dumps(line) + b"\n" for line in lines)


def _create(client: openai.OpenAI, content: bytes) -> Any:
    uploaded = client.files.create(file=("in.jsonl", content), purpose="batch")
    return uploaded, client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )


def _spend(server: RouterdServer, key: str) -> float:
    info = httpx.get(server.base_url + "/key/info", headers={"authorization": f"Bearer {key}"}).json()
    return float(info["info"]["spend"])


def test_a_keys_batch_runs_on_its_groups_deployment_and_is_metered_once(
    server: RouterdServer, upstreams: Upstreams
) -> None:
    carol = client_for(server, CAROL)
    uploaded, batch = _create(carol, _jsonl(_line("a"), _line("b")))
    assert upstreams.staging.book.files[uploaded.id].purpose == "batch"  # the upload went to staging
    # the deployment got its own copy, with its model id in every line, under its own key
    copy_upload = next(r for r in upstreams.deployment.requests if r.path == "/v1/files")
    assert copy_upload.headers["authorization"] == f"Bearer {DEPLOY_KEY}"
    upstream_batch = upstreams.deployment.batches[batch.id]
    copy = upstreams.deployment.book.files[upstream_batch["input_file_id"]].content
    assert [orjson.loads(line)["body"]["model"] for line in copy.splitlines()] == ["gpt-4o-mini"] * 2
    assert batch.input_file_id == uploaded.id and batch.status == "validating"
    assert all(STAGING_KEY not in str(r.headers) for r in upstreams.deployment.requests)

    bob = client_for(server, BOB)
    with pytest.raises(openai.NotFoundError):
        bob.batches.retrieve(batch.id)  # scoped to the key that created it
    assert [b.id for b in bob.batches.list()] == []
    assert [b.id for b in carol.batches.list()] == [batch.id]

    before = _spend(server, CAROL)
    upstreams.deployment.complete_batch(batch.id, usage=(10, 5))
    done = carol.batches.retrieve(batch.id)
    assert done.status == "completed" and done.output_file_id
    expected = 2 * (10 * 0.0005 + 5 * 0.001)  # the deployment's batch prices
    assert _spend(server, CAROL) - before == pytest.approx(expected)
    assert carol.batches.retrieve(batch.id).status == "completed"
    output = carol.files.content(done.output_file_id).content
    assert sorted(orjson.loads(line)["custom_id"] for line in output.splitlines()) == ["a", "b"]
    assert _spend(server, CAROL) - before == pytest.approx(expected)  # counted once
    with pytest.raises(openai.NotFoundError):
        bob.files.content(done.output_file_id)
    # the master key sees every gateway batch
    assert client_for(server).batches.retrieve(batch.id).status == "completed"


def test_without_batch_prices_the_normal_price_is_charged(
    server: RouterdServer, upstreams: Upstreams
) -> None:
    carol = client_for(server, CAROL)
    _, batch = _create(carol, _jsonl(_line("a", model="plain")))
    before = _spend(server, CAROL)
    upstreams.deployment.complete_batch(batch.id, usage=(10, 5))
    assert carol.batches.retrieve(batch.id).status == "completed"
    assert _spend(server, CAROL) - before == pytest.approx(10 * 0.001 + 5 * 0.002)


def test_a_batch_runs_on_an_azure_deployment(server: RouterdServer, upstreams: Upstreams) -> None:
    carol = client_for(server, CAROL)
    _, batch = _create(carol, _jsonl(_line("a", model="az")))
    created = next(r for r in upstreams.azure.requests if r.path == "/openai/batches")
    assert created.headers["api-key"] == AZURE_KEY and "api-version" in created.query
    copy_id = upstreams.azure.batches[batch.id]["input_file_id"]
    assert orjson.loads(upstreams.azure.book.files[copy_id].content)["body"]["model"] == "gpt4o-deploy"
    before = _spend(server, CAROL)
    upstreams.azure.complete_batch(batch.id, usage=(4, 2))
    assert carol.batches.retrieve(batch.id).status == "completed"
    assert _spend(server, CAROL) - before == pytest.approx(4 * 0.001 + 2 * 0.002)
    assert upstreams.deployment.requests == []


def test_a_batch_fails_over_to_the_groups_next_deployment(
    server: RouterdServer, upstreams: Upstreams
) -> None:
    carol = client_for(server, CAROL)
    _, batch = _create(carol, _jsonl(_line("a", model="pair")))  # the first deployment is down
    copy_id = upstreams.deployment.batches[batch.id]["input_file_id"]
    assert orjson.loads(upstreams.deployment.book.files[copy_id].content)["body"]["model"] == "gpt-4o-mini"
    assert carol.batches.retrieve(batch.id).id == batch.id  # and it is polled where it runs


def test_a_spent_budget_refuses_the_next_batch(server: RouterdServer, upstreams: Upstreams) -> None:
    dana = client_for(server, DANA)
    _, batch = _create(dana, _jsonl(_line("a", model="plain")))
    upstreams.deployment.complete_batch(batch.id, usage=(10, 5))  # 0.04 against a 0.01 budget
    assert dana.batches.retrieve(batch.id).status == "completed"
    with pytest.raises(openai.BadRequestError) as refused:
        _create(dana, _jsonl(_line("b", model="plain")))
    assert refused.value.body["type"] == "budget_exceeded"  # type: ignore[index]
    assert "key 'dana'" in refused.value.message


def test_a_batch_needs_access_to_its_model(server: RouterdServer, upstreams: Upstreams) -> None:
    bob = client_for(server, BOB)
    with pytest.raises(openai.PermissionDeniedError) as refused:
        _create(bob, _jsonl(_line("a")))
    assert "'gpt'" in refused.value.message
    assert upstreams.deployment.requests == []
    carol_upload = client_for(server, CAROL).files.create(
        file=("in.jsonl", _jsonl(_line("a"))), purpose="batch"
    )
    with pytest.raises(openai.NotFoundError):  # another key's upload
        bob.batches.create(
            input_file_id=carol_upload.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    with pytest.raises(openai.NotFoundError):
        bob.files.content(carol_upload.id)
    provider = {"custom_llm_provider": "openai"}
    for provider_level in (  # provider-level calls are the master key's, each of them
        lambda: bob.batches.list(extra_query=provider),
        lambda: bob.batches.retrieve("batch_1", extra_query=provider),
        lambda: bob.batches.cancel("batch_1", extra_query=provider),
    ):
        with pytest.raises(openai.PermissionDeniedError, match="provider-level batch call"):
            provider_level()
    with pytest.raises(openai.PermissionDeniedError):
        bob.files.create(file=("t.jsonl", b"{}\n"), purpose="fine-tune")


@pytest.mark.parametrize(
    ("content", "status", "words"),
    [
        (_jsonl(_line("a"), {**_line("b"), "body": {"model": "gpt"}}), 400, "line 2 (messages)"),
        (_jsonl(_line("a"), _line("b", model="plain")), 400, "a batch runs on one model"),
        (_jsonl(_line("a"), _line("a")), 400, "used twice"),
        (_jsonl({**_line("a"), "url": "/v1/embeddings"}), 400, "'url' must be"),
        (b"not json\n", 400, "line 1 is not JSON"),
        (_jsonl(*(_line(str(i)) for i in range(MAX_LINES + 1))), 400, "ROUTERD_BATCH_MAX_LINES"),
        (_jsonl(_line("a", user="x" * 5000)), 400, "ROUTERD_BATCH_MAX_FILE_BYTES"),
        (_jsonl(_line("a", model="claude")), 400, "anthropic does not support batches"),
        (_jsonl(_line("a", model="nope")), 404, "'nope'"),
    ],
)
def test_the_input_file_is_checked_and_bounded(
    server: RouterdServer, upstreams: Upstreams, content: bytes, status: int, words: str
) -> None:
    client = client_for(server)  # the master key: only the file itself can be wrong
    uploaded = client.files.create(file=("in.jsonl", content), purpose="batch")
    answer = httpx.post(
        server.base_url + "/v1/batches",
        headers={"authorization": f"Bearer {MASTER_KEY}"},
        json={"input_file_id": uploaded.id, "endpoint": "/v1/chat/completions", "completion_window": "24h"},
    )
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert set(error) >= {"message", "type", "param", "code"} and words in error["message"]
    assert upstreams.deployment.requests == []
