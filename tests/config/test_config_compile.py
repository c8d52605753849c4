"""Stage 3: the compiled RoutingTable (groups, deployments, ids, policy, hash) and the public API."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import orjson
import pytest

from routerd.config import ConfigError, check_config, compile_config, load, load_config, validate
from routerd.config.frozen import FrozenDict
from routerd.config.table import RoutingTable
from routerd.providers import base as provider_base

from .conftest import Check, WriteYaml, messages


def table_of(check: Check, text: str, env: dict[str, str] | None = None) -> RoutingTable:
    result = check(text, env)
    assert result.table is not None, [str(e) for e in result.errors]
    return result.table


GROUPS = """\
model_list:
  - model_name: gpt-4o
    litellm_params: {model: openai/gpt-4o, api_key: sk-a, weight: 2, rpm: 100}
  - model_name: gpt-4o
    litellm_params: {model: azure/gpt-4o-eu, api_key: az, api_base: "https://eu.example.com", api_version: "2024-10-21"}
  - model_name: anthropic/*
    litellm_params: {model: anthropic/*, api_key: ant}
  - model_name: claude
    litellm_params: {model: claude-3-5-sonnet-20241022, api_key: ant}
router_settings:
  model_group_alias:
    gpt-4: gpt-4o
    secret-name: {model: claude, hidden: true}
"""


def test_groups_wildcards_and_aliases(check: Check) -> None:
    table = table_of(check, GROUPS)
    assert list(table.groups) == ["gpt-4o", "claude"]
    assert [g.name for g in table.wildcard_groups] == ["anthropic/*"]
    assert [d.provider for d in table.groups["gpt-4o"].deployments] == ["openai", "azure"]
    assert dict(table.aliases) == {"gpt-4": "gpt-4o", "secret-name": "claude"}
    assert table.hidden_aliases == {"secret-name"}
    assert table.public_names() == ["claude", "gpt-4", "gpt-4o"]
    resolved = table.resolve("secret-name")
    assert resolved is not None and resolved.name == "claude"
    assert table.resolve("anthropic/claude-3-opus") is table.wildcard_groups[0]
    assert len(table.deployments) == 4


def test_deployment_provider_and_model(check: Check) -> None:
    table = table_of(check, GROUPS)
    openai, azure = table.groups["gpt-4o"].deployments
    assert (openai.provider, openai.model, openai.litellm_model) == ("openai", "gpt-4o", "openai/gpt-4o")
    assert (azure.provider, azure.model, azure.api_version) == ("azure", "gpt-4o-eu", "2024-10-21")
    [claude] = table.groups["claude"].deployments
    assert (claude.provider, claude.model) == ("anthropic", "claude-3-5-sonnet-20241022")
    [wildcard] = table.wildcard_groups[0].deployments
    assert (wildcard.provider, wildcard.model, wildcard.prepared) == ("anthropic", "*", None)
    assert (openai.weight, openai.rpm) == (2.0, 100)


@pytest.mark.parametrize(
    ("params", "provider", "model"),
    [
        ("model: custom_openai/my-model", "openai", "my-model"),
        ("model: ft:gpt-4o-mini:org:suffix:abc", "openai", "ft:gpt-4o-mini:org:suffix:abc"),
        ("model: gpt-3.5-turbo-instruct", "text-completion-openai", "gpt-3.5-turbo-instruct"),
        (
            "model: meta-llama/Llama-3-8B\n      custom_llm_provider: hosted_vllm\n      api_base: http://127.0.0.1:8000",
            "hosted_vllm",
            "meta-llama/Llama-3-8B",
        ),
        ("model: groq/llama-3.1-8b-instant", "groq", "llama-3.1-8b-instant"),
        ("model: ollama_chat/llama3", "ollama", "llama3"),
    ],
)
def test_provider_resolution(check: Check, params: str, provider: str, model: str) -> None:
    text = f"model_list:\n  - model_name: m\n    litellm_params:\n      {params}\n      api_key: k\n"
    [deployment] = table_of(check, text).deployments.values()
    assert (deployment.provider, deployment.model) == (provider, model)


def test_credentials_default_from_the_environment(check: Check) -> None:
    text = """\
    environment_variables:
      AZURE_API_VERSION: "2024-06-01"
    model_list:
      - model_name: a
        litellm_params: {model: openai/gpt-4o}
      - model_name: b
        litellm_params: {model: azure/dep}
      - model_name: c
        litellm_params: {model: openai/gpt-4o, api_key: explicit, api_base: "https://mine"}
    """
    env = {"OPENAI_API_KEY": "sk-env", "AZURE_API_KEY": "az-env", "AZURE_API_BASE": "https://az.example.com"}
    table = table_of(check, text, env)
    a, b, c = (table.groups[n].deployments[0] for n in "abc")
    assert (a.api_key, a.api_base) == ("sk-env", None)
    assert (b.api_key, b.api_base, b.api_version) == ("az-env", "https://az.example.com", "2024-06-01")
    assert (c.api_key, c.api_base) == ("explicit", "https://mine")


def test_costs_limits_and_passthrough(check: Check) -> None:
    text = """\
    model_list:
      - model_name: a
        litellm_params:
          model: mock/a
          input_cost_per_token: 0.1
          output_cost_per_token: 0.2
          temperature: 0.3
          extra_headers: {x-team: blue}
          stop: ["\\n"]
        model_info:
          input_cost_per_token: 0.5
          max_input_tokens: 1000
          mode: chat
          supports_vision: true
    """
    [deployment] = table_of(check, text).deployments.values()
    assert deployment.input_cost_per_token == 0.5  # model_info wins
    assert deployment.output_cost_per_token == 0.2  # else litellm_params
    assert (deployment.info.max_input_tokens, deployment.info.mode) == (1000, "chat")
    assert dict(deployment.info.extra) == {"supports_vision": True}
    assert deployment.extra == {"temperature": 0.3, "extra_headers": {"x-team": "blue"}, "stop": ("\n",)}
    assert isinstance(deployment.extra, FrozenDict)
    with pytest.raises(TypeError):
        deployment.extra["temperature"] = 1
    with pytest.raises(TypeError):
        deployment.extra["extra_headers"]["x-team"] = "red"
    # adapters merge these into request bodies: they must serialise as plain JSON
    assert orjson.loads(orjson.dumps(deployment.extra))["stop"] == ["\n"]
    assert pickle.loads(pickle.dumps(deployment.extra)) == deployment.extra


def test_policy_defaults(check: Check) -> None:
    policy = table_of(check, "model_list: []\n").policy
    assert (policy.routing_strategy, policy.num_retries, policy.timeout, policy.cooldown_time) == (
        "simple-shuffle",
        2,
        600.0,
        60.0,
    )
    assert (dict(policy.fallbacks), policy.default_fallbacks, policy.drop_params) == ({}, (), False)


def test_compiled_values_are_hashable(check: Check) -> None:
    table = table_of(check, GROUPS.replace("rpm: 100}", "rpm: 100, extra_body: {tags: [a]}}"))
    assert len({*table.deployments.values()}) == 4
    assert hash(table.policy) == hash(table_of(check, GROUPS).policy)


def test_router_settings_win_over_litellm_settings(check: Check) -> None:
    text = """\
    model_list:
      - {model_name: a, litellm_params: {model: mock/a}}
      - {model_name: b, litellm_params: {model: mock/b}}
      - {model_name: c, litellm_params: {model: mock/c}}
    router_settings:
      num_retries: 5
      routing_strategy: least-busy
      routing_strategy_args: {ttl: 10}
      fallbacks: [{a: [b]}]
      retry_policy: {RateLimitErrorRetries: 7}
      allowed_fails_policy: {TimeoutErrorAllowedFails: 4}
    litellm_settings:
      num_retries: 1
      request_timeout: 30
      drop_params: true
      cooldown_time: 12
      fallbacks: [{a: [c]}, {b: [c]}]
      default_fallbacks: [c]
    """
    policy = table_of(check, text).policy
    assert (policy.num_retries, policy.timeout, policy.cooldown_time, policy.drop_params) == (
        5,
        30.0,
        12.0,
        True,
    )
    assert policy.routing_strategy == "least-busy"
    assert dict(policy.routing_strategy_args) == {"ttl": 10}
    assert dict(policy.fallbacks) == {"a": ("b",), "b": ("c",)}  # merged per group, router_settings wins
    assert policy.default_fallbacks == ("c",)
    assert (policy.retry_policy.rate_limit, policy.retry_policy.timeout) == (7, None)
    assert policy.allowed_fails_policy.timeout == 4


def test_server_settings(check: Check) -> None:
    text = """\
    model_list: []
    litellm_settings:
      callbacks: [prometheus]
      success_callback: prometheus
    router_settings:
      redis_host: redis.internal
      redis_password: "p@ss word"
      redis_port: 6380
    general_settings:
      master_key: sk-master
      max_request_size_mb: 2.5
    """
    server = table_of(check, text).server
    assert (server.master_key, server.max_request_size_mb, server.callbacks) == (
        "sk-master",
        2.5,
        ("prometheus",),
    )
    assert server.redis_url == "redis://:p%40ss%20word@redis.internal:6380/0"


def test_files_and_finetune_settings(check: Check) -> None:
    text = """\
    model_list: []
    files_settings:
      - custom_llm_provider: azure
        api_base: https://files.example.com
        api_version: "2024-05-01"
    finetune_settings:
      - custom_llm_provider: openai
      - custom_llm_provider: vertex_ai
        vertex_project: p
        vertex_location: us-central1
        vertex_credentials: {type: service_account, private_key: k}
    """
    table = table_of(check, text, {"AZURE_API_KEY": "az", "OPENAI_API_KEY": "sk"})
    [files] = table.files_settings
    assert (files.custom_llm_provider, files.api_key, files.api_base) == (
        "azure",
        "az",
        "https://files.example.com",
    )
    openai, vertex = table.finetune_settings
    assert openai.api_key == "sk"
    assert (vertex.vertex_project, vertex.vertex_location) == ("p", "us-central1")
    assert orjson.loads(vertex.vertex_credentials or "") == {"type": "service_account", "private_key": "k"}


# -- ids and hashes ---------------------------------------------------------------------------------

PLAIN = """\
# the same routing, written one way
model_list:
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_key: sk-a
      rpm: 100
      vertex_project: p
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_key: sk-b
router_settings:
  num_retries: 3
"""

REFORMATTED = """\
router_settings: {num_retries: 3}   # sections in another order
model_list:
- litellm_params: {rpm: 100, vertex_project: p, api_key: sk-a, model: openai/gpt-4o}
  model_name: gpt-4o
- {model_name: gpt-4o, litellm_params: {api_key: "sk-b", model: "openai/gpt-4o"}}
"""


def test_ids_and_hash_survive_formatting_changes(check: Check) -> None:
    first, second = (
        table_of(check, PLAIN),
        table_of(
            check,
            REFORMATTED,
        ),
    )
    assert list(first.deployments) == list(second.deployments)
    assert first.content_hash == second.content_hash
    assert first == second and hash(first) == hash(second)
    assert all(len(i) == 16 for i in first.deployments)
    assert len(set(first.deployments)) == 2  # different keys, different deployments


def test_tuning_keeps_the_id_but_changes_the_hash(check: Check) -> None:
    before = table_of(check, PLAIN)
    after = table_of(check, PLAIN.replace("rpm: 100", "rpm: 200\n      weight: 3"))
    assert list(before.deployments) == list(after.deployments)
    assert before.content_hash != after.content_hash
    assert before != after


def test_endpoint_changes_change_the_id(check: Check) -> None:
    before = table_of(check, PLAIN)
    after = table_of(check, PLAIN.replace("vertex_project: p", "vertex_project: q"))
    (first_before, second_before), (first_after, second_after) = before.deployments, after.deployments
    assert first_before != first_after
    assert second_before == second_after


def test_explicit_ids_and_identical_deployments(check: Check) -> None:
    text = """\
    model_list:
      - {model_name: a, litellm_params: {model: mock/a}}
      - {model_name: a, litellm_params: {model: mock/a}}
      - {model_name: a, litellm_params: {model: mock/a}, model_info: {id: 42}}
    """
    ids = list(table_of(check, text).deployments)
    assert ids[1] == f"{ids[0]}-2"
    assert ids[2] == "42"


def test_secrets_never_appear_in_reprs_or_warnings(check: Check) -> None:
    text = """\
    environment_variables:
      MY_PROVIDER_API_KEY: sk-env-secret
    model_list:
      - model_name: a
        litellm_params:
          model: openai/gpt-4o
          api_key: os.environ/MY_PROVIDER_API_KEY
          aws_secret_access_key: aws-secret
          rpm: lots
    general_settings:
      master_key: sk-master-secret
    """
    result = check(text)
    shown = " ".join(str(i) for i in (*result.errors, *result.warnings))
    fixed = check(text.replace("rpm: lots", "rpm: 5"))
    assert fixed.table is not None
    shown += repr(fixed.table) + " ".join(fixed.table.warnings)
    for secret in ("sk-env-secret", "aws-secret", "sk-master-secret"):
        assert secret not in shown
    [deployment] = fixed.table.deployments.values()
    assert deployment.api_key == "sk-env-secret"  # still there for the adapter


def test_compile_of_500_deployments(check: Check) -> None:
    lines = ["model_list:"]
    for i in range(500):
        lines += [
            f"  - model_name: group-{i % 50}",
            f"    litellm_params: {{model: openai/gpt-4o-{i}, api_key: sk-{i}, rpm: {i}, weight: {i % 3 + 1}}}",
        ]
    table = table_of(check, "\n".join(lines) + "\n")
    assert len(table.groups) == 50 and len(table.deployments) == 500


# -- adapters ---------------------------------------------------------------------------------------


class _Rejecting:
    name = "openai"

    def prepare(self, deployment: Any) -> Any:
        raise ValueError("api_base must be https")


def test_prepared_by_the_registered_adapter(check: Check) -> None:
    table = table_of(check, "model_list:\n  - {model_name: a, litellm_params: {model: mock/a}}\n")
    [deployment] = table.deployments.values()
    assert deployment.prepared is not None


def test_without_an_adapter_prepared_stays_none(check: Check, monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> Any:
        raise KeyError(name)

    monkeypatch.setattr(provider_base, "get_adapter", missing)
    table = table_of(check, "model_list:\n  - {model_name: a, litellm_params: {model: mock/a}}\n")
    assert next(iter(table.deployments.values())).prepared is None


def test_an_adapter_refusing_a_deployment_is_a_located_error(
    check: Check, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(provider_base, "get_adapter", lambda name: _Rejecting())
    result = check(
        "model_list:\n  - model_name: a\n    litellm_params:\n      model: openai/x\n      api_key: k\n"
    )
    assert messages(result.errors) == [
        "model_list[0].litellm_params: provider openai: api_base must be https"
    ]
    assert (result.errors[0].line, result.errors[0].col) == (4, 7)


# -- public API -------------------------------------------------------------------------------------


def test_load_config_raises_config_error_with_every_issue(write_yaml: WriteYaml) -> None:
    path = write_yaml("model_list:\n  - model_name: a\n    litellm_params: {model: opneai/x, rmp: 1}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert len(caught.value.issues) == 2
    assert str(caught.value).splitlines()[0].startswith(f"{path}:3:")


def test_stages_compose(write_yaml: WriteYaml) -> None:
    path = write_yaml("model_list:\n  - {model_name: a, litellm_params: {model: mock/a}}\n")
    table = compile_config(validate(load(path, env={})))
    assert table.source == str(path) and table.sources == (str(path),)
    assert table == load_config(path, env={})


def test_compile_refuses_an_invalid_config(write_yaml: WriteYaml) -> None:
    validated = validate(load(write_yaml("model_list: 3\n"), env={}))
    assert validated.config is None
    with pytest.raises(ConfigError):
        compile_config(validated)


def test_check_result_summary_and_json(write_yaml: WriteYaml) -> None:
    result = check_config(Path(write_yaml(GROUPS)), env={})
    assert result.summary()["groups"] == 3
    body = result.to_dict()
    assert body["valid"] is True and body["summary"]["deployments"] == 4 and body["errors"] == []


def test_fallbacks_are_resolved_through_aliases(check: Check) -> None:
    text = """\
    model_list:
      - {model_name: gpt-4o, litellm_params: {model: mock/gpt-4o}}
      - {model_name: claude, litellm_params: {model: mock/claude}}
    router_settings:
      model_group_alias: {best: gpt-4o, safe: claude, safest: safe}
      fallbacks: [{best: [safest]}]
      default_fallbacks: [safe, claude]
    """
    table = table_of(check, text)
    assert dict(table.aliases) == {"best": "gpt-4o", "safe": "claude", "safest": "claude"}
    assert dict(table.policy.fallbacks) == {"gpt-4o": ("claude",)}
    assert table.policy.default_fallbacks == ("claude",)
