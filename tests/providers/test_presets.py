"""OpenAI-compatible presets: each reaches its documented path with its key variable as a bearer token."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

import pytest

from routerd import errors
from routerd.config.table import Deployment
from routerd.http import HttpClient
from routerd.providers.base import UpstreamRequest, get_adapter
from routerd.providers.infer import DEFAULT_API_KEY_ENV, PROVIDER_PREFIXES, split_model
from routerd.providers.openai import OpenAIAdapter
from routerd.providers.presets import CLOUDFLARE_ACCOUNT_ENV, PRESETS, CloudflareAdapter
from routerd.testing import FakeOpenAI

KEY = "preset-key-0123456789"
MakeDeployment = Callable[..., Deployment]


def _fake_for(prefix: str) -> FakeOpenAI:
    fake_type = type("PresetFake", (FakeOpenAI,), {"api_prefix": prefix})
    fake: FakeOpenAI = fake_type(api_key=KEY)
    return fake


def _chat(deployment: Deployment) -> UpstreamRequest:
    body: dict[str, Any] = {"model": "group", "messages": [{"role": "user", "content": "hi"}]}
    return UpstreamRequest(deployment=deployment, body=body, timeout=10.0)


@pytest.fixture
async def presets_env(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[pytest.MonkeyPatch]:
    monkeypatch.delenv(CLOUDFLARE_ACCOUNT_ENV, raising=False)
    yield monkeypatch


@pytest.mark.parametrize("provider", sorted(PRESETS))
async def test_preset_reaches_its_documented_path_with_the_env_key(
    provider: str, presets_env: pytest.MonkeyPatch, make_deployment: MakeDeployment, http_client: HttpClient
) -> None:
    documented = urlsplit(PRESETS[provider])
    async with _fake_for(documented.path) as fake:
        adapter = get_adapter(provider)
        assert isinstance(adapter, OpenAIAdapter)
        # the default base URL with its host swapped for the fake's: the path is the preset's own
        presets_env.setattr(type(adapter), "default_api_base", fake.origin + documented.path)
        presets_env.setenv(DEFAULT_API_KEY_ENV[provider], KEY)
        deployment = make_deployment(provider, "some-org/some-model")
        response = await adapter.chat(http_client, _chat(deployment))
    recorded = fake.requests[-1]
    assert recorded.path == f"{documented.path}/chat/completions"
    assert recorded.headers["authorization"] == f"Bearer {KEY}"
    assert recorded.json["model"] == "some-org/some-model"
    assert response.body["choices"][0]["message"]["content"]


@pytest.mark.parametrize(
    ("prefix", "canonical"), [("lambda", "lambda_ai"), ("featherless", "featherless_ai")]
)
def test_litellm_alias_prefixes(prefix: str, canonical: str) -> None:
    assert split_model(f"{prefix}/m") == (canonical, "m")
    assert get_adapter(prefix).name == canonical


def test_every_preset_is_a_known_prefix_with_a_key_variable() -> None:
    for provider in [*PRESETS, "cloudflare"]:
        assert PROVIDER_PREFIXES[provider] == provider
        assert provider in DEFAULT_API_KEY_ENV


async def test_cloudflare_puts_the_account_id_in_the_url(
    presets_env: pytest.MonkeyPatch, make_deployment: MakeDeployment, http_client: HttpClient
) -> None:
    path = "/client/v4/accounts/acct-42/ai/v1"
    async with _fake_for(path) as fake:
        presets_env.setattr(
            CloudflareAdapter, "default_api_base", fake.origin + "/client/v4/accounts/{account_id}/ai/v1"
        )
        deployment = make_deployment(
            "cloudflare", "@cf/meta/llama-3.1-8b-instruct", api_key=KEY, extra={"account_id": "acct-42"}
        )
        await get_adapter("cloudflare").chat(http_client, _chat(deployment))
        assert fake.requests[-1].path == f"{path}/chat/completions"
        assert fake.requests[-1].json is not None
        assert "account_id" not in fake.requests[-1].json  # a URL part, never a body field

        presets_env.setenv(CLOUDFLARE_ACCOUNT_ENV, "acct-42")
        from_env = make_deployment("cloudflare", "@cf/meta/llama-3.1-8b-instruct", api_key=KEY)
        await get_adapter("cloudflare").chat(http_client, _chat(from_env))
        assert fake.requests[-1].path == f"{path}/chat/completions"


def test_cloudflare_without_an_account_id_is_a_config_error(
    presets_env: pytest.MonkeyPatch, make_deployment: MakeDeployment
) -> None:
    with pytest.raises(errors.ConfigError, match="CLOUDFLARE_ACCOUNT_ID"):
        make_deployment("cloudflare", "@cf/meta/llama", api_key=KEY)


def test_custom_requires_api_base(make_deployment: MakeDeployment) -> None:
    with pytest.raises(errors.ConfigError, match="custom needs api_base"):
        make_deployment("custom", "my-model", api_key=KEY)


async def test_custom_calls_the_given_api_base(
    fake_openai: FakeOpenAI, make_deployment: MakeDeployment, http_client: HttpClient
) -> None:
    deployment = make_deployment(
        "custom", "gpt-4o-mini", api_key="sk-test-key-123456", api_base=fake_openai.base_url
    )
    await get_adapter("custom").chat(http_client, _chat(deployment))
    assert fake_openai.requests[-1].path == "/v1/chat/completions"
