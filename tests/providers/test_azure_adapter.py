"""Azure OpenAI: deployment URLs, api-version, api-key, Azure's error shapes; against FakeAzureOpenAI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from routerd import errors
from routerd.errors import ConfigError
from routerd.providers.azure import DEFAULT_AZURE_API_VERSION
from routerd.providers.base import get_adapter
from routerd.testing import FakeAzureOpenAI, Reply

KEY = "azure-key-0123456789abcdef"
CHAT_BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Classify this ticket"}]}


@pytest.fixture
async def fake_azure() -> AsyncIterator[FakeAzureOpenAI]:
    async with FakeAzureOpenAI(api_key=KEY, deployments=["my-gpt4o", "my-instruct", "my-embeddings"]) as fake:
        yield fake


@pytest.fixture
def deployment(make_deployment, fake_azure: FakeAzureOpenAI):
    def build(provider: str = "azure", model: str = "my-gpt4o", **fields: Any):
        fields.setdefault("api_base", fake_azure.base_url)
        fields.setdefault("api_key", KEY)
        fields.setdefault("api_version", "2024-06-01")
        return make_deployment(provider, model, **fields)

    return build


# --- pure ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "api_base",
    [
        "https://res.openai.azure.com",
        "https://res.openai.azure.com/",
        "https://res.openai.azure.com/openai",
        "https://res.openai.azure.com/openai/deployments/other/chat/completions?api-version=2023-05-15",
    ],
)
def test_deployment_urls(make_deployment, api_base: str) -> None:
    ep = make_deployment(
        "azure", "my deploy", api_base=api_base, api_key=KEY, api_version="2024-06-01"
    ).prepared
    base = "https://res.openai.azure.com/openai/deployments/my%20deploy"
    assert ep.chat_url == f"{base}/chat/completions?api-version=2024-06-01"
    assert ep.completions_url == f"{base}/completions?api-version=2024-06-01"
    assert ep.embeddings_url == f"{base}/embeddings?api-version=2024-06-01"
    assert ep.headers == {"content-type": "application/json", "api-key": KEY}


def test_api_version_default_and_environment(make_deployment, monkeypatch: pytest.MonkeyPatch) -> None:
    ep = make_deployment("azure", "d", api_base="https://r.openai.azure.com", api_key=KEY).prepared
    assert ep.chat_url.endswith(f"?api-version={DEFAULT_AZURE_API_VERSION}")
    monkeypatch.setenv("AZURE_API_VERSION", "2025-01-01-preview")
    monkeypatch.setenv("AZURE_API_BASE", "https://env.openai.azure.com")
    monkeypatch.setenv("AZURE_API_KEY", "env-key")
    ep = make_deployment("azure", "d").prepared
    assert (
        ep.chat_url
        == "https://env.openai.azure.com/openai/deployments/d/chat/completions?api-version=2025-01-01-preview"
    )
    assert ep.headers["api-key"] == "env-key"


def test_versionless_v1_api(make_deployment) -> None:
    ep = make_deployment(
        "azure", "gpt-4o", api_base="https://r.openai.azure.com", api_key=KEY, api_version="v1"
    ).prepared
    assert ep.chat_url == "https://r.openai.azure.com/openai/v1/chat/completions"
    assert ep.body({"model": "public", "messages": []}, stream=False)["model"] == "gpt-4o"


def test_entra_token_instead_of_key(make_deployment) -> None:
    ep = make_deployment(
        "azure", "d", api_base="https://r", extra={"azure_ad_token": "eyJ-token-value"}
    ).prepared
    assert ep.headers["authorization"] == "Bearer eyJ-token-value"
    assert "api-key" not in ep.headers
    assert "eyJ-token-value" in ep.errors.secrets
    assert "azure_ad_token" not in ep.body_defaults


def test_missing_base_or_key_is_a_config_error(make_deployment) -> None:
    with pytest.raises(ConfigError, match="azure needs api_base"):
        make_deployment("azure", "d", api_key=KEY)
    with pytest.raises(ConfigError, match="azure needs api_key"):
        make_deployment("azure", "d", api_base="https://r")


# --- against the fake ----------------------------------------------------------------------------


async def test_chat_goes_to_the_deployment_url(http_client, fake_azure, deployment, make_request) -> None:
    response = await get_adapter("azure").chat(http_client, make_request(deployment(), CHAT_BODY))
    ChatCompletion.model_validate(response.body)
    sent = fake_azure.requests[-1]
    assert sent.path == "/openai/deployments/my-gpt4o/chat/completions"
    assert sent.query == {"api-version": "2024-06-01"}
    assert sent.headers["api-key"] == KEY
    assert "authorization" not in sent.headers
    assert response.body["choices"][0]["message"]["content"] == "Classify this ticket"
    assert "prompt_filter_results" in response.body  # Azure's extras pass through


async def test_stream_drops_the_prompt_filter_chunk(
    http_client, fake_azure, deployment, make_request
) -> None:
    body = {**CHAT_BODY, "stream_options": {"include_usage": True}}
    chunks = [
        c async for c in get_adapter("azure").chat_stream(http_client, make_request(deployment(), body))
    ]
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0
    assert all(c["choices"] or c.get("usage") for c in chunks)


async def test_content_filter_error(http_client, fake_azure, deployment, make_request) -> None:
    fake_azure.enqueue(FakeAzureOpenAI.content_filter_reply())
    with pytest.raises(errors.ContentPolicyViolationError) as info:
        await get_adapter("azure").chat(http_client, make_request(deployment(), CHAT_BODY))
    assert info.value.llm_provider == "azure"
    assert info.value.code == "content_filter"
    assert info.value.status_code == 400


async def test_rate_limit_with_retry_after_ms(http_client, fake_azure, deployment, make_request) -> None:
    fake_azure.enqueue(FakeAzureOpenAI.rate_limited_reply(7))
    with pytest.raises(errors.RateLimitError) as info:
        await get_adapter("azure").chat(http_client, make_request(deployment(), CHAT_BODY))
    assert info.value.retry_after == 7.0
    assert "exceeded call rate limit" in info.value.message


async def test_stream_rate_limit_before_first_chunk(
    http_client, fake_azure, deployment, make_request
) -> None:
    fake_azure.enqueue(FakeAzureOpenAI.rate_limited_reply(3))
    stream = get_adapter("azure").chat_stream(http_client, make_request(deployment(), CHAT_BODY))
    with pytest.raises(errors.RateLimitError):
        await anext(stream)


async def test_wrong_key_and_unknown_deployment(http_client, fake_azure, deployment, make_request) -> None:
    with pytest.raises(errors.AuthenticationError) as auth:
        await get_adapter("azure").chat(
            http_client, make_request(deployment(api_key="wrong-key-123"), CHAT_BODY)
        )
    assert "Access denied" in auth.value.message
    with pytest.raises(errors.NotFoundError) as missing:
        await get_adapter("azure").chat(http_client, make_request(deployment(model="nope"), CHAT_BODY))
    assert missing.value.code == "DeploymentNotFound"
    assert missing.value.cools_down


async def test_server_error_in_azure_shape(http_client, fake_azure, deployment, make_request) -> None:
    fake_azure.enqueue(
        Reply(status=500, json={"error": {"code": "InternalServerError", "message": "Backend error"}})
    )
    with pytest.raises(errors.BadGatewayError) as info:
        await get_adapter("azure").chat(http_client, make_request(deployment(), CHAT_BODY))
    assert info.value.message == "Backend error"


async def test_embeddings(http_client, fake_azure, deployment, make_request) -> None:
    dep = deployment(model="my-embeddings")
    response = await get_adapter("azure").embedding(
        http_client, make_request(dep, {"model": "e", "input": "hello"})
    )
    assert fake_azure.requests[-1].path == "/openai/deployments/my-embeddings/embeddings"
    assert response.body["data"][0]["object"] == "embedding"


async def test_chat_model_completions_through_chat(http_client, fake_azure, deployment, make_request) -> None:
    response = await get_adapter("azure").completion(
        http_client, make_request(deployment(), {"prompt": "Hi there"})
    )
    assert fake_azure.requests[-1].path == "/openai/deployments/my-gpt4o/chat/completions"
    assert response.body["choices"][0]["text"] == "Hi there"


async def test_azure_text_native_completions_and_chat(
    http_client, fake_azure, deployment, make_request
) -> None:
    dep = deployment("azure_text", "my-instruct")
    adapter = get_adapter("azure_text")
    response = await adapter.completion(http_client, make_request(dep, {"prompt": "Say this is a test"}))
    assert fake_azure.requests[-1].path == "/openai/deployments/my-instruct/completions"
    assert response.body["choices"][0]["text"] == "Say this is a test"
    chat = await adapter.chat(http_client, make_request(dep, CHAT_BODY))
    assert fake_azure.requests[-1].path == "/openai/deployments/my-instruct/completions"
    assert chat.body["object"] == "chat.completion"
    stream_body = {"prompt": "a b", "stream": True}
    chunks = [c async for c in adapter.completion_stream(http_client, make_request(dep, stream_body))]
    assert "".join(c["choices"][0]["text"] for c in chunks) == "a b"
