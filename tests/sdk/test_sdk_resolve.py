"""Model strings and arguments -> the deployment an on-the-fly table gets."""

from __future__ import annotations

import pytest

import routerd.errors
from routerd.sdk.resolve import resolve_fallbacks, resolve_target

NO_ENV: dict[str, str] = {}


@pytest.mark.parametrize(
    ("model", "provider", "upstream"),
    [
        ("gpt-4", "openai", "gpt-4"),
        ("openai/gpt-4o", "openai", "gpt-4o"),
        (
            "ft:gpt-3.5-turbo:my-org:custom-suffix:abc123",
            "openai",
            "ft:gpt-3.5-turbo:my-org:custom-suffix:abc123",
        ),
        ("claude-3-opus-20240229", "anthropic", "claude-3-opus-20240229"),
        ("anthropic/claude-3-opus-20240229", "anthropic", "claude-3-opus-20240229"),
        ("gemini-1.5-pro", "gemini", "gemini-1.5-pro"),
        ("azure/my-gpt4-deployment", "azure", "my-gpt4-deployment"),
        ("gpt-3.5-turbo-instruct", "text-completion-openai", "gpt-3.5-turbo-instruct"),
    ],
)
def test_provider_resolution_matches_the_daemon(model: str, provider: str, upstream: str) -> None:
    target = resolve_target(model, env=NO_ENV)
    assert (target.provider, target.model, target.group) == (provider, upstream, model)
    assert target.params["model"] == f"{provider}/{upstream}"


def test_unknown_bare_model_names_the_prefixes() -> None:
    with pytest.raises(routerd.errors.BadRequestError, match="provider/model") as info:
        resolve_target("my-local-llama", env=NO_ENV)
    assert "anthropic" in str(info.value)
    target = resolve_target("my-local-llama", custom_llm_provider="hosted_vllm", env=NO_ENV)
    assert target.params["model"] == "hosted_vllm/my-local-llama"
    with pytest.raises(routerd.errors.BadRequestError, match="custom_llm_provider"):
        resolve_target("x", custom_llm_provider="nope", env=NO_ENV)


def test_keys_bases_and_versions_come_from_arguments_else_environment() -> None:
    env = {
        "AZURE_API_KEY": "env-key",
        "AZURE_API_BASE": "https://env.openai.azure.com",
        "AZURE_API_VERSION": "2024-06-01",
    }
    from_env = resolve_target("azure/dep", env=env)
    assert from_env.params["api_key"] == "env-key"
    assert from_env.params["api_base"] == "https://env.openai.azure.com"
    assert from_env.params["api_version"] == "2024-06-01"
    given = resolve_target(
        "azure/dep", api_key="arg-key", api_base="https://arg", api_version="2024-02-01", env=env
    )
    assert (given.params["api_key"], given.params["api_base"], given.params["api_version"]) == (
        "arg-key",
        "https://arg",
        "2024-02-01",
    )
    openai = resolve_target("gpt-4", env={"OPENAI_API_KEY": "o-key", "OPENAI_ORGANIZATION": "org-1"})
    assert openai.params["api_key"] == "o-key" and openai.params["organization"] == "org-1"
    assert "api_key" not in resolve_target("gpt-4", env=NO_ENV).params


def test_deployment_id_selects_an_azure_deployment() -> None:
    target = resolve_target("gpt-4", deployment_id="my-azure-deployment", env=NO_ENV)
    assert target.params["model"] == "azure/my-azure-deployment"
    assert target.group == "gpt-4"


def test_mock_keeps_the_model_name_and_skips_credentials() -> None:
    target = resolve_target("anthropic/claude-3-opus-20240229", api_key="sk-x", mock=True, env=NO_ENV)
    assert target.provider == "mock"
    assert target.params == {"model": "mock/claude-3-opus-20240229"}
    unknown = resolve_target("totally-custom-model", mock=True, env=NO_ENV)
    assert unknown.params["model"] == "mock/totally-custom-model"


def test_cache_key_never_holds_a_raw_secret() -> None:
    target = resolve_target("gpt-4", api_key="sk-very-secret-value", env=NO_ENV)
    key = repr(target.cache_key())
    assert "sk-very-secret-value" not in key
    assert "sk-very-secret-value" not in repr(target)
    other = resolve_target("gpt-4", api_key="sk-another-secret", env=NO_ENV)
    assert target.cache_key() != other.cache_key()
    assert (
        target.cache_key() == resolve_target("gpt-4", api_key="sk-very-secret-value", env=NO_ENV).cache_key()
    )


def test_fallbacks_resolve_names_and_mappings_with_distinct_groups() -> None:
    primary = resolve_target("gpt-4", env=NO_ENV)
    targets = resolve_fallbacks(
        ["claude-3-haiku-20240307", {"model": "gpt-4", "api_key": "other"}, "claude-3-haiku-20240307"],
        primary,
        mock=False,
        env=NO_ENV,
    )
    assert [t.group for t in targets] == ["claude-3-haiku-20240307", "gpt-4#2", "claude-3-haiku-20240307#2"]
    assert targets[0].provider == "anthropic"
    assert targets[1].params["api_key"] == "other"
    with pytest.raises(routerd.errors.BadRequestError):
        resolve_fallbacks([42], primary, mock=False, env=NO_ENV)
