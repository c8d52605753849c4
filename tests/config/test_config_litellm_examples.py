"""Config files in the shapes LiteLLM's documentation uses load cleanly, and mean what they say."""

from __future__ import annotations

from routerd.config import check_config

from .conftest import FIXTURES, messages

PROVIDER_ENV = {
    "OPENAI_API_KEY": "sk-openai",
    "OPENAI_ORGANIZATION": "org-1",
    "AZURE_API_KEY": "azure-key",
    "AZURE_API_BASE": "https://my-endpoint.openai.azure.com",
    "ANTHROPIC_API_KEY": "sk-ant",
    "REDIS_PASSWORD": "redis-secret",
}


def test_fallbacks_and_reliability_example() -> None:
    result = check_config(FIXTURES / "litellm_fallbacks.yaml", env=PROVIDER_ENV)
    assert result.table is not None, [str(e) for e in result.errors]
    table = result.table
    assert messages(result.warnings) == [
        "litellm_settings.set_verbose: accepted but not acted on (use ROUTERD_LOG_LEVEL)",
    ]
    policy = table.policy
    assert dict(policy.fallbacks) == {"gpt-3.5-turbo": ("gpt-4", "claude-opus")}
    assert dict(policy.context_window_fallbacks) == {"gpt-3.5-turbo": ("gpt-3.5-turbo-16k", "claude-opus")}
    assert dict(policy.content_policy_fallbacks) == {"gpt-3.5-turbo": ("claude-opus",)}
    assert policy.default_fallbacks == ("claude-opus",)
    assert (policy.num_retries, policy.timeout, policy.allowed_fails, policy.cooldown_time) == (
        3,
        30.0,
        3,
        30.0,
    )
    assert (policy.routing_strategy, policy.retry_after, policy.enable_pre_call_checks) == (
        "usage-based-routing-v2",
        5.0,
        True,
    )
    assert policy.drop_params is True
    assert table.server.redis_url == "redis://:redis-secret@redis.internal:6379/0"
    azure, openai = table.groups["gpt-3.5-turbo"].deployments
    assert (azure.provider, azure.model, azure.api_key, azure.rpm) == (
        "azure",
        "chatgpt-v-2",
        "azure-key",
        1440,
    )
    assert (openai.provider, openai.model) == ("openai", "gpt-3.5-turbo")
    assert table.groups["claude-opus"].deployments[0].provider == "anthropic"


def test_router_settings_example() -> None:
    result = check_config(FIXTURES / "litellm_router_settings.yaml", env=PROVIDER_ENV)
    assert result.table is not None, [str(e) for e in result.errors]
    assert messages(result.warnings) == [
        "router_settings.default_max_parallel_requests: accepted but not acted on (parallel request limits)",
        "router_settings.enable_tag_filtering: accepted but not acted on (tag-based routing)",
    ]
    policy = result.table.policy
    assert policy.routing_strategy == "latency-based-routing"
    assert dict(policy.routing_strategy_args) == {"ttl": 10, "lowest_latency_buffer": 0.5}
    assert policy.retry_policy.content_policy == 4 and policy.retry_policy.bad_request is None
    assert policy.allowed_fails_policy.bad_request == 1000 and policy.allowed_fails_policy.rate_limit == 10000
    assert dict(policy.fallbacks) == {"gpt-4o": ("claude-3-haiku",)}
    assert result.table.public_names() == ["claude-3-haiku", "gpt-4", "gpt-4o"]


def test_azure_openai_anthropic_and_files_example() -> None:
    result = check_config(FIXTURES / "litellm_providers.yaml", env=PROVIDER_ENV)
    assert result.table is not None, [str(e) for e in result.errors]
    assert result.warnings == ()
    table = result.table
    azure, openai = table.groups["gpt-4o"].deployments
    assert (azure.api_base, azure.api_version) == (
        "https://my-endpoint.openai.azure.com",
        "2024-08-01-preview",
    )
    assert azure.info.base_model == "azure/gpt-4o"
    assert openai.organization == "org-1"
    assert (
        table.groups["ft-support-bot"].deployments[0].model
        == "ft:gpt-4o-mini-2024-07-18:my-org:support:abc123"
    )
    assert table.groups["gpt-3.5-turbo-instruct"].deployments[0].provider == "text-completion-openai"
    assert table.groups["claude-3-5-sonnet"].deployments[0].extra == {"max_tokens": 4096}
    vllm = table.groups["vllm-model"].deployments[0]
    assert (vllm.provider, vllm.model, vllm.info.mode) == ("openai", "facebook/opt-125m", "completion")
    assert [s.custom_llm_provider for s in table.finetune_settings] == ["azure", "openai", "vertex_ai"]
    assert [s.api_key for s in table.files_settings] == ["fake-key", "sk-openai"]
    assert table.finetune_settings[2].vertex_credentials == "/etc/routerd/vertex-sa.json"


def test_shipped_example_configs_are_valid() -> None:
    root = FIXTURES.parent.parent.parent / "configs"
    example = check_config(root / "example.yaml", env={})
    assert example.ok and example.warnings == ()
    assert example.summary()["groups"] == 2 and example.summary()["deployments"] == 3
    env = {
        name: "test-value"
        for name in (
            "OPENAI_API_KEY",
            "AZURE_EASTUS_API_KEY",
            "AZURE_SWEDEN_API_KEY",
            "ANTHROPIC_API_KEY",
            "ROUTERD_MASTER_KEY",
        )
    }
    multi = check_config(root / "multi-provider.yaml", env=env)
    assert multi.ok and multi.warnings == (), [str(e) for e in multi.errors]
    assert {d.provider for d in multi.table.deployments.values()} == {"openai", "azure", "anthropic"}  # type: ignore[union-attr]
    for path in sorted(root.glob("*.yaml")):
        assert path.read_text().startswith("# yaml-language-server: $schema=../schemas/config.schema.json\n")
