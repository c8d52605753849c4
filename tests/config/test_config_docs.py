"""The configuration reference (docs/configuration.md) documents every key routerd accepts, and every LiteLLM
key it ignores."""

from __future__ import annotations

import pytest
from docs_pages import doc_page
from pydantic import BaseModel

from routerd.config import keys
from routerd.config.models import (
    AliasSpec,
    AllowedFailsPolicySpec,
    Config,
    DeploymentSpec,
    GeneralSettings,
    LiteLLMParams,
    LiteLLMSettings,
    ModelInfoSpec,
    ProviderSettingsSpec,
    RetryPolicySpec,
    RouterSettings,
)
from routerd.providers.infer import PROVIDER_PREFIXES

DOC = doc_page("configuration.md")

MODELS: list[type[BaseModel]] = [
    Config,
    DeploymentSpec,
    LiteLLMParams,
    ModelInfoSpec,
    RouterSettings,
    RetryPolicySpec,
    AllowedFailsPolicySpec,
    AliasSpec,
    LiteLLMSettings,
    GeneralSettings,
    ProviderSettingsSpec,
]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_accepted_key_is_documented(model: type[BaseModel]) -> None:
    missing = [name for name in model.model_fields if f"`{name}`" not in DOC]
    assert not missing, f"docs/configuration.md does not mention {missing}"


def test_every_ignored_litellm_key_is_documented() -> None:
    ignored = [*keys.IGNORED_TOP_LEVEL, *keys.IGNORED_ROUTER_SETTINGS, *keys.IGNORED_LITELLM_SETTINGS]
    ignored += list(keys.IGNORED_GENERAL_SETTINGS)
    missing = [key for key in ignored if f"`{key}`" not in DOC]
    assert not missing, f"docs/configuration.md does not list {missing} as accepted but not acted on"


def test_every_provider_prefix_and_strategy_is_documented() -> None:
    assert [p for p in PROVIDER_PREFIXES if f"`{p}/`" not in DOC] == []
    assert [s for s in keys.ROUTING_STRATEGIES if f"`{s}`" not in DOC] == []
