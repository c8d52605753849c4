"""Stage 2: every kind of problem, with its exact location and message, all reported at once."""

from __future__ import annotations

import pytest

from routerd.providers.infer import PROVIDER_PREFIXES

from .conftest import Check, messages

ONE_DEPLOYMENT = """\
model_list:
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_key: sk-test
"""


def only_error(check: Check, text: str, env: dict[str, str] | None = None) -> str:
    """The one error of ``text``, rendered without the temp dir."""
    result = check(text, env)
    assert result.table is None
    assert len(result.errors) == 1, [str(e) for e in result.errors]
    error = result.errors[0]
    return f"{error.line}:{error.col}: {error.path}: {error.message}"


def test_typo_in_litellm_params_is_an_error_with_did_you_mean(check: Check) -> None:
    text = ONE_DEPLOYMENT + "      api_bse: https://example.com\n"
    assert only_error(check, text) == (
        "6:7: model_list[0].litellm_params.api_bse: unknown key; did you mean 'api_base'?"
    )


def test_transposed_short_key_is_a_typo(check: Check) -> None:
    text = ONE_DEPLOYMENT + "      rmp: 10\n"
    assert (
        only_error(check, text) == "6:7: model_list[0].litellm_params.rmp: unknown key; did you mean 'rpm'?"
    )


def test_provider_specific_keys_pass_through(check: Check) -> None:
    text = ONE_DEPLOYMENT + "      seed: 7\n      my_gateway_flag: true\n      mock_latency_ms: 5\n"
    result = check(text)
    assert result.table is not None
    [deployment] = result.table.deployments.values()
    assert dict(deployment.extra) == {"seed": 7, "my_gateway_flag": True, "mock_latency_ms": 5}


def test_typo_in_model_info_is_an_error(check: Check) -> None:
    text = ONE_DEPLOYMENT + "    model_info:\n      max_input_token: 10\n      supports_vision: true\n"
    assert only_error(check, text) == (
        "7:7: model_list[0].model_info.max_input_token: unknown key; did you mean 'max_input_tokens'?"
    )


def test_unknown_key_in_a_closed_section(check: Check) -> None:
    text = ONE_DEPLOYMENT + "router_settings:\n  num_retires: 3\n"
    assert (
        only_error(check, text)
        == "7:3: router_settings.num_retires: unknown key; did you mean 'num_retries'?"
    )


def test_unknown_key_in_a_deployment_entry(check: Check) -> None:
    text = ONE_DEPLOYMENT + "    modelinfo: {}\n"
    assert only_error(check, text) == "6:5: model_list[0].modelinfo: unknown key; did you mean 'model_info'?"


def test_unknown_top_level_key(check: Check) -> None:
    assert only_error(check, ONE_DEPLOYMENT + "router_setting: {}\n") == (
        "6:1: router_setting: unknown key; did you mean 'router_settings'?"
    )


def test_x_prefixed_top_level_keys_hold_anchors(check: Check) -> None:
    result = check("x-common: &k {api_key: sk-test}\n" + ONE_DEPLOYMENT)
    assert result.ok, [str(e) for e in result.errors]


def test_wrong_type_points_at_the_value(check: Check) -> None:
    text = ONE_DEPLOYMENT + "      rpm: lots\n"
    assert (
        only_error(check, text) == "6:12: model_list[0].litellm_params.rpm: expected an integer, got 'lots'"
    )


def test_wrong_type_of_a_section(check: Check) -> None:
    assert only_error(check, ONE_DEPLOYMENT + "router_settings: [1, 2]\n") == (
        "6:18: router_settings: expected a mapping, got a list"
    )


def test_missing_required_key_names_it(check: Check) -> None:
    text = "model_list:\n  - model_name: gpt-4o\n    litellm_params:\n      api_key: sk-test\n"
    assert only_error(check, text) == "4:7: model_list[0].litellm_params.model: required key is missing"


def test_empty_model_name(check: Check) -> None:
    text = ONE_DEPLOYMENT.replace("model_name: gpt-4o", 'model_name: ""')
    assert only_error(check, text) == "2:17: model_list[0].model_name: must not be empty"


def test_negative_weight(check: Check) -> None:
    text = ONE_DEPLOYMENT + "      weight: -1\n"
    assert only_error(check, text) == "6:15: model_list[0].litellm_params.weight: must be >= 0, got -1"


def test_group_whose_weights_sum_to_zero(check: Check) -> None:
    text = (
        ONE_DEPLOYMENT
        + "      weight: 0\n"
        + (
            "  - model_name: gpt-4o\n    litellm_params:\n      model: openai/gpt-4o-2024-08-06\n"
            "      api_key: sk-test\n      weight: 0\n"
        )
    )
    assert only_error(check, text) == (
        "6:15: model_list[0].litellm_params.weight: the weights of group 'gpt-4o' sum to zero "
        "(model_list[0], model_list[1]); no deployment could be chosen"
    )


def test_a_zero_weight_beside_a_positive_one_is_fine(check: Check) -> None:
    text = (
        ONE_DEPLOYMENT
        + "      weight: 0\n"
        + ("  - model_name: gpt-4o\n    litellm_params:\n      model: mock/gpt-4o\n      weight: 1\n")
    )
    assert check(text).ok


SERVED = (
    "; routerd serves: "
    + ", ".join(sorted(PROVIDER_PREFIXES))
    + ". For an OpenAI-compatible server write openai/<model> with api_base: <its URL>"
)


def test_unknown_provider_prefix_suggests_the_closest(check: Check) -> None:
    text = ONE_DEPLOYMENT.replace("openai/gpt-4o", "opneai/gpt-4o")
    assert only_error(check, text) == (
        "4:14: model_list[0].litellm_params.model: unknown provider 'opneai' in 'opneai/gpt-4o'; "
        "did you mean 'openai'?" + SERVED
    )


def test_bare_name_of_unknown_provider(check: Check) -> None:
    text = ONE_DEPLOYMENT.replace("openai/gpt-4o", "llama3")
    assert only_error(check, text) == (
        "4:14: model_list[0].litellm_params.model: cannot tell the provider of 'llama3'; "
        "write it as provider/model, e.g. openai/llama3"
    )


def test_wildcard_model_needs_a_wildcard_group(check: Check) -> None:
    text = "model_list:\n  - model_name: claude\n    litellm_params: {model: anthropic/*, api_key: k}\n"
    assert only_error(check, text) == (
        "3:29: model_list[0].litellm_params.model: 'anthropic/*' is a wildcard, so model_name must be one too "
        "(e.g. anthropic/*)"
    )


def test_unknown_custom_llm_provider(check: Check) -> None:
    text = ONE_DEPLOYMENT + "      custom_llm_provider: antropic\n"
    assert only_error(check, text) == (
        "6:28: model_list[0].litellm_params.custom_llm_provider: unknown provider 'antropic'; "
        "did you mean 'anthropic'?" + SERVED
    )


def test_unknown_routing_strategy(check: Check) -> None:
    text = ONE_DEPLOYMENT + "router_settings:\n  routing_strategy: least_busy\n"
    assert only_error(check, text) == (
        "7:21: router_settings.routing_strategy: unknown routing strategy 'least_busy'; did you mean 'least-busy'?"
    )


def test_unknown_routing_strategy_far_from_any_lists_them(check: Check) -> None:
    text = ONE_DEPLOYMENT + "router_settings:\n  routing_strategy: random\n"
    assert "expected one of: simple-shuffle, least-busy, latency-based-routing" in only_error(check, text)


TWO_GROUPS = """\
model_list:
  - model_name: gpt-4o
    litellm_params: {model: mock/gpt-4o}
  - model_name: claude
    litellm_params: {model: mock/claude}
  - model_name: anthropic/*
    litellm_params: {model: anthropic/*, api_key: k}
"""


def test_fallback_target_that_names_no_group(check: Check) -> None:
    text = TWO_GROUPS + "router_settings:\n  fallbacks:\n    - gpt-4o: [claude, cluade-2]\n"
    assert only_error(check, text) == (
        "10:24: router_settings.fallbacks[0].gpt-4o[1]: fallback target 'cluade-2' names no model group; "
        "did you mean 'claude'?"
    )


def test_fallback_source_that_names_no_group(check: Check) -> None:
    text = TWO_GROUPS + "router_settings:\n  fallbacks:\n    gpt-5: [claude]\n"
    assert only_error(check, text) == (
        "10:5: router_settings.fallbacks.gpt-5: fallbacks are given for 'gpt-5', which names no model group; "
        "did you mean 'gpt-4o'?"
    )


def test_fallback_targets_may_be_aliases_and_wildcard_matches(check: Check) -> None:
    text = TWO_GROUPS + (
        "router_settings:\n"
        "  model_group_alias: {best: gpt-4o}\n"
        "  fallbacks: [{claude: [best]}, {best: [anthropic/claude-3-opus]}]\n"
        "  default_fallbacks: [claude]\n"
    )
    assert check(text).ok


BOUNDED = "; allowed (as in LiteLLM): a call never tries a group twice and stops after max_fallbacks groups"


def only_warning(check: Check, text: str) -> str:
    result = check(text)
    assert result.ok, [str(e) for e in result.errors]
    [warning] = result.warnings
    return f"{warning.line}:{warning.col}: {warning.path}: {warning.message}"


def test_fallback_cycle(check: Check) -> None:
    text = TWO_GROUPS + "router_settings:\n  fallbacks:\n    - gpt-4o: [claude]\n    - claude: [gpt-4o]\n"
    assert only_warning(check, text) == (
        "11:16: router_settings.fallbacks[1].claude[0]: fallback cycle: gpt-4o -> claude -> gpt-4o" + BOUNDED
    )


def test_fallback_cycle_through_an_alias_and_across_sections(check: Check) -> None:
    text = TWO_GROUPS + (
        "router_settings:\n"
        "  model_group_alias: {best: gpt-4o}\n"
        "  context_window_fallbacks: {gpt-4o: [claude]}\n"
        "litellm_settings:\n"
        "  context_window_fallbacks: [{claude: [best]}]\n"
    )
    assert only_warning(check, text) == (
        "12:40: litellm_settings.context_window_fallbacks[0].claude[0]: "
        "context_window_fallbacks cycle: gpt-4o -> claude -> gpt-4o" + BOUNDED
    )


def test_self_fallback_is_a_cycle(check: Check) -> None:
    text = TWO_GROUPS + "router_settings:\n  content_policy_fallbacks: {claude: claude}\n"
    assert only_warning(check, text).endswith("content_policy_fallbacks cycle: claude -> claude" + BOUNDED)


def test_default_fallback_that_names_no_group(check: Check) -> None:
    text = TWO_GROUPS + "litellm_settings:\n  default_fallbacks: [claude, gpt4]\n"
    assert only_error(check, text) == (
        "9:31: litellm_settings.default_fallbacks[1]: fallback target 'gpt4' names no model group; "
        "did you mean 'gpt-4o'?"
    )


def test_malformed_fallbacks(check: Check) -> None:
    text = TWO_GROUPS + "router_settings:\n  fallbacks: [gpt-4o]\n"
    assert only_error(check, text) == (
        "9:14: router_settings.fallbacks: item 0 must be a mapping like {model-group: [fallback groups]}"
    )


def test_wrong_type_inside_list_form_fallbacks_is_located(check: Check) -> None:
    text = TWO_GROUPS + "router_settings:\n  fallbacks:\n    - claude: [gpt-4o]\n    - gpt-4o: [{a: 1}]\n"
    assert only_error(check, text) == (
        "11:16: router_settings.fallbacks[1].gpt-4o[0]: expected a string, got a mapping"
    )


def test_duplicate_deployment_ids(check: Check) -> None:
    text = TWO_GROUPS.replace(
        "{model: mock/gpt-4o}", "{model: mock/gpt-4o}\n    model_info: {id: same}"
    ).replace("{model: mock/claude}", "{model: mock/claude}\n    model_info: {id: same}")
    error = only_error(check, text)
    assert error.startswith(
        "7:22: model_list[1].model_info.id: duplicate deployment id 'same' (also used by model_list[0] at "
    )
    assert error.endswith("config.yaml:4:22)")


def test_alias_target_that_names_no_group(check: Check) -> None:
    text = TWO_GROUPS + "router_settings:\n  model_group_alias:\n    best: {model: gtp-4o}\n"
    assert only_error(check, text) == (
        "10:19: router_settings.model_group_alias.best.model: alias target 'gtp-4o' names no model group; "
        "did you mean 'gpt-4o'?"
    )


def test_alias_cycle(check: Check) -> None:
    text = TWO_GROUPS + "router_settings:\n  model_group_alias: {a: b, b: a}\n"
    assert only_error(check, text).endswith("router_settings.model_group_alias.a: alias cycle: a -> b -> a")


def test_alias_that_hides_a_group_is_a_warning(check: Check) -> None:
    result = check(TWO_GROUPS + "router_settings:\n  model_group_alias: {claude: gpt-4o}\n")
    assert result.ok
    assert messages(result.warnings) == [
        "router_settings.model_group_alias.claude: alias 'claude' hides the model group of the same name; "
        "requests for it go to 'gpt-4o'"
    ]


def test_files_settings_problems(check: Check) -> None:
    text = ONE_DEPLOYMENT + (
        "files_settings:\n"
        "  - custom_llm_provider: openai\n"
        "  - custom_llm_provider: openai\n"
        "  - custom_llm_provider: bedrock\n"
        "    api_kye: x\n"
    )
    result = check(text)
    assert [f"{e.line}:{e.col}: {e.path}: {e.message}" for e in result.errors] == [
        "8:26: files_settings[1].custom_llm_provider: a second entry for provider 'openai' "
        "(the first is files_settings[0])",
        "9:26: files_settings[2].custom_llm_provider: unknown provider 'bedrock'; "
        "expected one of: openai, azure, vertex_ai",
        "10:5: files_settings[2].api_kye: unknown key; did you mean 'api_key'?",
    ]


def test_backoff_base_above_cap(check: Check) -> None:
    text = ONE_DEPLOYMENT + "router_settings:\n  backoff_base: 10\n  backoff_cap: 2\n"
    assert only_error(check, text) == (
        "7:17: router_settings.backoff_base: backoff_base (10.0) is larger than backoff_cap (2.0)"
    )


def test_every_problem_is_reported_at_once(check: Check) -> None:
    text = """\
    model_list:
      - model_name: a
        litellm_params:
          model: opneai/gpt-4o
          rpm: many
      - model_name: b
        litellm_params:
          model: mock/b
          api_bse: http://x
    router_settings:
      routing_strategy: fastest
      fallbacks: [{a: [c]}]
    litellm_settings:
      num_retries: -2
    general_settings:
      master_kye: sk
    """
    result = check(text)
    assert [e.path for e in result.errors] == [
        "model_list[0].litellm_params.model",
        "model_list[0].litellm_params.rpm",
        "model_list[1].litellm_params.api_bse",
        "router_settings.routing_strategy",
        "router_settings.fallbacks[0].a[0]",
        "litellm_settings.num_retries",
        "general_settings.master_kye",
    ]


def test_unset_variable_causes_no_follow_up_errors(check: Check) -> None:
    text = "model_list:\n  - model_name: a\n    litellm_params:\n      model: os.environ/M\n      rpm: os.environ/R\n"
    result = check(text)
    assert messages(result.errors) == [
        "model_list[0].litellm_params.model: environment variable M is not set (referenced as os.environ/M)",
        "model_list[0].litellm_params.rpm: environment variable R is not set (referenced as os.environ/R)",
    ]


def test_values_from_the_environment_never_appear_in_messages(check: Check) -> None:
    text = ONE_DEPLOYMENT + "      rpm: os.environ/SECRET_RPM\n"
    result = check(text, env={"SECRET_RPM": "sk-very-secret"})
    assert messages(result.errors) == ["model_list[0].litellm_params.rpm: expected an integer, got a string"]


def test_secret_fields_never_appear_in_messages(check: Check) -> None:
    text = ONE_DEPLOYMENT + "general_settings:\n  master_key: [sk-in-a-list]\n"
    result = check(text)
    assert "sk-in-a-list" not in str([str(e) for e in result.errors])
    assert messages(result.errors) == ["general_settings.master_key: expected a string, got a list"]


def test_syntax_error_snippets_mask_secret_values(check: Check) -> None:
    result = check("general_settings:\n  master_key: sk-secret-value: oops\n")
    [error] = result.errors
    assert error.line == 2
    assert error.message.startswith("invalid YAML: mapping values are not allowed here")
    assert "sk-secret-value" not in str(error)
    assert error.snippet.splitlines()[0].strip() == "master_key: ***"


# -- warnings ---------------------------------------------------------------------------------------


def test_accepted_but_ignored_litellm_keys_are_warnings_with_locations(check: Check) -> None:
    text = ONE_DEPLOYMENT + (
        "router_settings:\n"
        "  cache_responses: true\n"
        "litellm_settings:\n"
        "  set_verbose: true\n"
        "  success_callback: [langfuse]\n"
        "general_settings:\n"
        "  database_url: postgres://db\n"
        "assistant_settings: {}\n"
    )
    result = check(text, env={})
    assert result.ok
    assert [f"{w.line}:{w.col}: {w.path}: {w.message}" for w in result.warnings] == [
        "7:3: router_settings.cache_responses: accepted but not acted on (response caching)",
        "9:3: litellm_settings.set_verbose: accepted but not acted on (use ROUTERD_LOG_LEVEL)",
        "10:22: litellm_settings.success_callback[0]: callback 'langfuse' is accepted but not acted on "
        "(routerd acts on: otel, prometheus, and module.instance paths of CustomLogger instances)",
        "12:3: general_settings.database_url: accepted but not acted on (LiteLLM proxy feature)",
        "13:1: assistant_settings: accepted but not acted on (the Assistants API)",
    ]
    assert all(w.severity == "warning" for w in result.warnings)
    assert [str(w) for w in result.warnings] == list(result.table.warnings)  # type: ignore[union-attr]


def test_unknown_litellm_settings_key_is_a_warning_unless_it_is_a_typo(check: Check) -> None:
    result = check(ONE_DEPLOYMENT + "litellm_settings:\n  some_future_setting: 1\n  set_verbos: true\n")
    assert result.ok
    assert messages(result.warnings) == [
        "litellm_settings.some_future_setting: not a setting routerd knows; ignored",
        "litellm_settings.set_verbos: not a setting routerd knows; did you mean 'set_verbose'? (ignored either way)",
    ]
    assert only_error(check, ONE_DEPLOYMENT + "litellm_settings:\n  request_timout: 5\n") == (
        "7:3: litellm_settings.request_timout: unknown key; did you mean 'request_timeout'?"
    )


@pytest.mark.parametrize(
    ("params", "env", "warned"),
    [
        ("model: openai/gpt-4o", {}, True),
        ("model: openai/gpt-4o", {"OPENAI_API_KEY": "sk"}, False),
        ("model: openai/gpt-4o\n      api_key: sk", {}, False),
        ("model: openai/my-model\n      api_base: http://127.0.0.1:8000/v1", {}, False),
        ("model: mock/x", {}, False),
        ("model: azure/d\n      azure_ad_token: t\n      api_base: https://x", {}, False),
    ],
)
def test_missing_credentials_warning(check: Check, params: str, env: dict[str, str], warned: bool) -> None:
    result = check(f"model_list:\n  - model_name: a\n    litellm_params:\n      {params}\n", env)
    assert result.ok
    expected = [
        "model_list[0].litellm_params: no api_key, and OPENAI_API_KEY is not set; calls to this deployment will fail"
    ]
    assert messages(result.warnings) == (expected if warned else [])


def test_empty_model_list_is_a_warning(check: Check) -> None:
    result = check("model_list: []\n")
    assert result.ok
    assert messages(result.warnings) == [
        "model_list: no deployments: every call will fail with 'model not found'"
    ]


def test_empty_sections_are_accepted(check: Check) -> None:
    result = check(ONE_DEPLOYMENT + "router_settings:\nlitellm_settings:\ngeneral_settings:\n")
    assert result.ok, [str(e) for e in result.errors]


def test_deployment_settings_written_beside_litellm_params(check: Check) -> None:
    # any litellm_params key but tpm/rpm written beside litellm_params would be ignored by LiteLLM
    # and misroute the call (an api_base not used): an error
    text = ONE_DEPLOYMENT + "    api_base: https://example.test/v1\n"
    assert only_error(check, text) == (
        "6:5: model_list[0].api_base: unknown key; api_base belongs under litellm_params"
    )


def test_deployment_level_tpm_rpm_move_into_litellm_params_as_litellm_does(check: Check) -> None:
    result = check(ONE_DEPLOYMENT + "    rpm: 10\n    tpm: 2000\n")
    assert result.table is not None, [str(e) for e in result.errors]
    [deployment] = result.table.deployments.values()
    assert (deployment.rpm, deployment.tpm) == (10, 2000)
    assert messages(result.warnings) == [
        "model_list[0].rpm: moved into litellm_params.rpm (as LiteLLM does) and enforced there",
        "model_list[0].tpm: moved into litellm_params.tpm (as LiteLLM does) and enforced there",
    ]
    inner = check(ONE_DEPLOYMENT.replace("sk-test", "sk-test\n      rpm: 5") + "    rpm: 10\n")
    assert inner.table is not None
    assert [d.rpm for d in inner.table.deployments.values()] == [5]
    assert messages(inner.warnings) == [
        "model_list[0].rpm: rpm is also set in litellm_params, which wins; ignored here"
    ]


def test_numbers_are_accepted_where_names_are_expected(check: Check) -> None:
    result = check(
        "model_list:\n  - model_name: 4\n    litellm_params: {model: mock/x, organization: 12345}\n"
    )
    assert result.table is not None
    [deployment] = result.table.deployments.values()
    assert (deployment.group, deployment.organization) == ("4", "12345")


def test_redis_settings_are_accepted_and_acted_on(check: Check) -> None:
    text = ONE_DEPLOYMENT + "router_settings:\n  redis_host: cache.internal\n  redis_port: 6379\n"
    result = check(text, env={})
    assert result.ok
    assert list(result.warnings) == []
    assert result.table is not None
    assert result.table.server.redis_url == "redis://cache.internal:6379/0"


def test_redis_cluster_nodes_win_over_a_single_address_with_a_warning(check: Check) -> None:
    text = ONE_DEPLOYMENT + (
        "router_settings:\n  redis_host: cache.internal\n"
        "  redis_startup_nodes: [{host: 10.0.0.1, port: '7001'}, {host: 10.0.0.2}]\n"
    )
    result = check(text, env={})
    assert result.ok
    assert [f"{w.line}:{w.col}: {w.path}" for w in result.warnings] == ["7:3: router_settings.redis_host"]
    assert "redis_startup_nodes is set" in result.warnings[0].message
    assert result.table is not None
    assert result.table.server.redis_startup_nodes == (("10.0.0.1", 7001), ("10.0.0.2", 6379))


def test_azure_deployment_aliases_must_name_a_served_model(check: Check) -> None:
    text = ONE_DEPLOYMENT + (
        "router_settings:\n"
        "  model_group_alias: {best: gpt-4o}\n"
        "  azure_deployment_aliases:\n"
        "    prod-chat: gpt-4o\n"
        "    via-alias: best\n"
        "    typo: gpt-4\n"
    )
    assert only_error(check, text) == (
        "11:11: router_settings.azure_deployment_aliases.typo: Azure deployment alias 'typo' names no "
        "model group: 'gpt-4'; did you mean 'gpt-4o'?"
    )
    served = check(ONE_DEPLOYMENT + "router_settings:\n  azure_deployment_aliases: {prod-chat: gpt-4o}\n")
    assert served.table is not None and dict(served.table.azure_aliases) == {"prod-chat": "gpt-4o"}


def test_an_azure_alias_named_like_a_served_model_is_a_warning(check: Check) -> None:
    result = check(ONE_DEPLOYMENT + "router_settings:\n  azure_deployment_aliases: {gpt-4o: gpt-4o}\n")
    assert result.ok and [f"{w.line}:{w.col}: {w.message}" for w in result.warnings] == [
        "7:30: Azure deployment alias 'gpt-4o' is also a model name routerd serves; that model wins"
    ]
