"""The new providers from a LiteLLM-style config file, through the real daemon and the official client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from clients import tracked

from routerd.config import check_text
from routerd.testing.bedrock_fake import BedrockReply, FakeBedrock
from routerd.testing.cohere_fake import CohereReply, FakeCohere
from routerd.testing.openai_fake import run_in_thread
from routerd.testing.server import RouterdServer

MASTER = "sk-e2e-master-providers-01"
AKID = "AKIDE2EPROVIDERS0001"
SECRET = "e2e-aws-secret-never-logged-789"
COHERE_KEY = "e2e-cohere-key-0123456789"


def config(bedrock: str, cohere: str) -> str:
    aws = f"""aws_access_key_id: os.environ/E2E_AWS_KEY_ID
      aws_secret_access_key: os.environ/E2E_AWS_SECRET
      aws_region_name: us-east-1
      aws_bedrock_runtime_endpoint: {bedrock}"""
    return f"""
model_list:
  - model_name: claude
    litellm_params:
      model: bedrock/us.anthropic.claude-3-5-sonnet-20240620-v1:0
      {aws}
  - model_name: titan
    litellm_params:
      model: bedrock/amazon.titan-embed-text-v2:0
      {aws}
  - model_name: command
    litellm_params:
      model: cohere/command-r-plus
      api_key: os.environ/E2E_COHERE_KEY
      api_base: {cohere}
general_settings:
  master_key: {MASTER}
router_settings:
  num_retries: 0
"""


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[FakeBedrock, FakeCohere]]:
    with (
        run_in_thread(FakeBedrock(access_key=AKID, secret_key=SECRET)) as bedrock,  # type: ignore[arg-type]
        run_in_thread(FakeCohere(api_key=COHERE_KEY)) as cohere,  # type: ignore[arg-type]
    ):
        yield bedrock, cohere  # type: ignore[misc]


@pytest.fixture(scope="module")
def server(
    fakes: tuple[FakeBedrock, FakeCohere], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RouterdServer]:
    bedrock, cohere = fakes
    path: Path = tmp_path_factory.mktemp("providers") / "config.yaml"
    path.write_text(config(bedrock.base_url, cohere.base_url))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("E2E_AWS_KEY_ID", AKID)
        env.setenv("E2E_AWS_SECRET", SECRET)
        env.setenv("E2E_COHERE_KEY", COHERE_KEY)
        daemon = RouterdServer.from_file(path)
    with daemon:
        yield daemon


def client(server: RouterdServer) -> openai.OpenAI:
    return tracked(openai.OpenAI(base_url=server.base_url + "/v1", api_key=MASTER, max_retries=0))


def test_bedrock_chat_stream_and_embeddings(
    server: RouterdServer, fakes: tuple[FakeBedrock, FakeCohere]
) -> None:
    bedrock, _ = fakes
    answer = client(server).chat.completions.create(
        model="claude", messages=[{"role": "user", "content": "ping"}]
    )
    assert answer.choices[0].message.content == "echo: ping"
    assert answer.usage is not None and answer.usage.total_tokens == 10

    stream = client(server).chat.completions.create(
        model="claude", messages=[{"role": "user", "content": "stream me"}], stream=True
    )
    chunks = list(stream)
    assert "".join((c.choices[0].delta.content or "") for c in chunks if c.choices) == "echo: stream me"
    assert all(c.usage is None for c in chunks)  # metered by routerd, not shown: the client did not ask

    metered = client(server).chat.completions.create(
        model="claude",
        messages=[{"role": "user", "content": "count me"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    last = list(metered)[-1]
    assert last.usage is not None and last.usage.completion_tokens == 3

    vectors = client(server).embeddings.create(model="titan", input=["a", "b"])
    assert len(vectors.data) == 2
    assert bedrock.requests[-1].path == "/model/amazon.titan-embed-text-v2:0/invoke"


def test_bedrock_throttling_reaches_the_client_as_429_without_the_secret(
    server: RouterdServer, fakes: tuple[FakeBedrock, FakeCohere]
) -> None:
    bedrock, _ = fakes
    bedrock.enqueue(BedrockReply.failure(429, "ThrottlingException", "Too many requests, please wait"))
    with pytest.raises(openai.RateLimitError) as caught:
        client(server).chat.completions.create(model="claude", messages=[{"role": "user", "content": "x"}])
    assert "ThrottlingException" in caught.value.message
    assert SECRET not in str(caught.value.body)


def test_cohere_chat_and_error(server: RouterdServer, fakes: tuple[FakeBedrock, FakeCohere]) -> None:
    _, cohere = fakes
    answer = client(server).chat.completions.create(
        model="command", messages=[{"role": "user", "content": "hi"}]
    )
    assert answer.choices[0].message.content == "echo: hi"
    cohere.enqueue(CohereReply.failure(400, "too many tokens: size limit exceeded"))
    with pytest.raises(openai.BadRequestError) as caught:
        client(server).chat.completions.create(model="command", messages=[{"role": "user", "content": "x"}])
    assert caught.value.code == "context_length_exceeded"


def test_a_litellm_file_naming_every_new_prefix_checks_clean() -> None:
    presets = [
        "cerebras/llama3.1-8b",
        "github/gpt-4o",
        "nvidia_nim/meta/llama3-70b-instruct",
        "sambanova/Meta-Llama-3.1-8B-Instruct",
        "deepinfra/meta-llama/Llama-3-8b",
        "novita/deepseek/deepseek-r1",
        "nebius/Qwen/Qwen3-235B-A22B",
        "hyperbolic/deepseek-ai/DeepSeek-V3",
        "lambda_ai/llama3.1-8b",
        "zai/glm-4.6",
        "dashscope/qwen-turbo",
        "moonshot/kimi-k2",
        "featherless_ai/featherless-ai/Qwerky-72B",
        "cohere_chat/command-r",
    ]
    entries = "".join(
        f"""
  - model_name: m{index}
    litellm_params:
      model: {model}
      api_key: k-{index}-0123456789"""
        for index, model in enumerate(presets)
    )
    text = f"""
model_list:{entries}
  - model_name: cf
    litellm_params:
      model: cloudflare/@cf/meta/llama-3.1-8b-instruct
      api_key: cf-key-0123456789
      account_id: acct-1
  - model_name: mine
    litellm_params:
      model: custom/my-model
      api_base: http://127.0.0.1:9/v1
  - model_name: sm
    litellm_params:
      model: sagemaker/my-endpoint
      aws_access_key_id: AKIDEXAMPLE
      aws_secret_access_key: secret-0123456789
      aws_region_name: eu-central-1
  - model_name: smc
    litellm_params:
      model: sagemaker_chat/my-endpoint
      aws_region_name: eu-central-1
"""
    result = check_text(text)
    assert result.errors == ()
    assert result.table is not None
    providers = {d.provider for group in result.table.groups.values() for d in group.deployments}
    assert {"cloudflare", "custom", "sagemaker", "sagemaker_chat", "cohere", "lambda_ai", "zai"} <= providers
