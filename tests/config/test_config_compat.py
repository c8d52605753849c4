"""The LiteLLM compatibility rule: files LiteLLM serves load (with warnings); mistakes stay errors.

Each test writes a small file in LiteLLM's style (our own files, not copies of third-party configs).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from routerd.errors import InternalServerError
from routerd.sdk.router import Router

from .conftest import Check, messages

ONE = """\
model_list:
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_key: sk-test
"""


def test_a_typo_of_a_known_key_in_the_same_section_stays_an_error(check: Check) -> None:
    result = check(ONE + "router_settings:\n  num_retires: 3\n")
    assert result.table is None
    assert messages(result.errors) == [
        "router_settings.num_retires: unknown key; did you mean 'num_retries'?"
    ]


def test_unknown_top_level_and_router_keys_are_warnings(check: Check) -> None:
    text = ONE + "cache_config:\n  type: redis\nrouter_settings:\n  my_made_up_knob: 3\n"
    result = check(text)
    assert result.ok, [str(e) for e in result.errors]
    assert messages(result.warnings) == [
        "cache_config: not a setting routerd knows; ignored",
        "router_settings.my_made_up_knob: not a setting routerd knows; ignored",
    ]
    assert (result.warnings[0].line, result.warnings[0].col) == (6, 1)


def test_a_misplaced_known_key_says_where_it_belongs(check: Check) -> None:
    text = ONE + "general_settings:\n  num_retries: 2\n  litellm_settings:\n    drop_params: true\n"
    result = check(text)
    assert result.ok, [str(e) for e in result.errors]
    assert messages(result.warnings) == [
        "general_settings.num_retries: num_retries belongs under router_settings or litellm_settings "
        "or litellm_params; ignored here (as LiteLLM does)",
        "general_settings.litellm_settings: litellm_settings is a section of its own at the top level of "
        "the file; ignored here",
    ]


def test_a_misplaced_key_is_ignored_not_applied(check: Check) -> None:
    result = check(ONE + "general_settings:\n  num_retries: 7\n")
    assert result.table is not None
    assert result.table.policy.num_retries != 7


def test_enable_cooldowns_is_not_taken_for_a_typo_of_disable_cooldowns(check: Check) -> None:
    result = check(ONE + "router_settings:\n  enable_cooldowns: true\n")
    assert result.ok, [str(e) for e in result.errors]
    [warning] = messages(result.warnings)
    assert "disable_cooldowns: true" in warning and "did you mean" not in warning


def test_service_callback_is_litellms_own_key(check: Check) -> None:
    result = check(ONE + "litellm_settings:\n  service_callback: [prometheus_system]\n")
    assert result.ok
    assert messages(result.warnings) == [
        "litellm_settings.service_callback: accepted but not acted on (service health callbacks)"
    ]


def test_litellm_model_info_price_keys_are_not_typos(check: Check) -> None:
    text = ONE + (
        "    model_info:\n"
        "      input_cost_per_audio_token: 0.0001\n"
        "      output_cost_per_audio_token: 0.0002\n"
        "      supports_vision: true\n"
    )
    result = check(text)
    assert result.ok, [str(e) for e in result.errors]
    assert result.warnings == ()
    typo = check(ONE + "    model_info:\n      max_input_token: 10\n")
    assert messages(typo.errors) == [
        "model_list[0].model_info.max_input_token: unknown key; did you mean 'max_input_tokens'?"
    ]


def test_drop_params_as_a_list_is_ignored_with_a_warning(check: Check) -> None:
    text = ONE.replace("sk-test", "sk-test\n      drop_params: [logit_bias]") + (
        "litellm_settings:\n  drop_params: [user]\n"
    )
    result = check(text)
    assert result.table is not None, [str(e) for e in result.errors]
    note = (
        "drop_params is true or false; a list is ignored (as LiteLLM does) -- to drop particular "
        "parameters, list them in litellm_params.additional_drop_params"
    )
    assert messages(result.warnings) == [
        f"model_list[0].litellm_params.drop_params: {note}",
        f"litellm_settings.drop_params: {note}",
    ]
    [deployment] = result.table.deployments.values()
    assert not deployment.drop_params and not result.table.policy.drop_params


def test_unknown_provider_is_reported_once_with_the_supported_list(check: Check) -> None:
    entry = "  - model_name: m{i}\n    litellm_params: {{model: madeupai/model-{i}, api_key: k}}\n"
    text = "model_list:\n" + "".join(entry.format(i=i) for i in range(8))
    result = check(text)
    assert result.table is None
    [error] = result.errors
    assert (error.line, error.col) == (3, 29)
    assert error.message.startswith(
        "unknown provider 'madeupai' in 'madeupai/model-0' (also used by 7 more: "
        "model_list[1].litellm_params.model, "
    )
    assert "routerd serves: anthropic, azure," in error.message
    assert error.message.endswith(
        "For an OpenAI-compatible server write openai/<model> with api_base: <its URL>"
    )


def test_strict_check_fails_on_warnings(write_yaml: object) -> None:
    from routerd.cli import main

    path = write_yaml(ONE + "cache_config: {type: redis}\n")  # type: ignore[operator]
    assert main(["check", str(path)]) == 0
    assert main(["check", "--strict", str(path)]) == 1
    assert main(["check", "--strict", "--json", str(path)]) == 1
    clean = write_yaml(ONE, name="clean.yaml")  # type: ignore[operator]
    assert main(["check", "--strict", str(clean)]) == 0


MUTUAL = """\
model_list:
  - model_name: a
    litellm_params: {model: mock/a, mock_error_status: 500}
  - model_name: b
    litellm_params: {model: mock/b, mock_error_status: 500}
router_settings:
  num_retries: 0
  fallbacks: [{a: [b]}, {b: [a]}]
"""


def test_mutual_fallbacks_load_and_never_loop_under_failure(tmp_path: Path) -> None:
    path = tmp_path / "mutual.yaml"
    path.write_text(MUTUAL, encoding="utf-8")
    router = Router.from_config(path)
    try:
        with pytest.raises(InternalServerError) as caught:
            router.completion(model="a", messages=[{"role": "user", "content": "hi"}])
    finally:
        router.close()
    info = caught.value.routing
    assert info.tried_groups == ["a", "b"]
    assert (info.attempts, info.fallbacks) == (2, 1)


def test_a_litellm_proxy_example_shaped_file_loads_unchanged(write_yaml: object) -> None:
    from routerd.config import check_config

    text = textwrap.dedent(
        """\
        model_list:
          - model_name: gpt-3.5-turbo
            litellm_params:
              model: azure/chat-deployment-eu
              api_base: https://eu.example-azure.test/
              api_key: os.environ/AZURE_EU_KEY
              api_version: "2024-02-15-preview"
              rpm: 600
            model_info:
              base_model: azure/gpt-35-turbo
          - model_name: gpt-3.5-turbo
            litellm_params:
              model: openai/gpt-3.5-turbo
              api_key: os.environ/OPENAI_API_KEY
            tpm: 100000
          - model_name: gpt-3.5-turbo-instruct
            litellm_params:
              model: text-completion-openai/gpt-3.5-turbo-instruct
              api_key: os.environ/OPENAI_API_KEY
          - model_name: "anthropic/*"
            litellm_params:
              model: "anthropic/*"
              api_key: os.environ/ANTHROPIC_API_KEY
          - model_name: "*"
            litellm_params:
              model: "openai/*"
              api_key: os.environ/OPENAI_API_KEY
          - model_name: text-embedding-ada-002
            litellm_params:
              model: azure/embeddings-deployment
              api_base: https://eu.example-azure.test/
              api_key: os.environ/AZURE_EU_KEY
              api_version: "2024-02-15-preview"
            model_info:
              mode: embedding
        router_settings:
          model_group_alias: {gpt-4: gpt-3.5-turbo}
          routing_strategy: usage-based-routing-v2
          redis_host: os.environ/REDIS_HOST
          enable_pre_call_checks: true
        litellm_settings:
          drop_params: true
          num_retries: 3
          request_timeout: 600
          telemetry: false
          context_window_fallbacks: [{gpt-3.5-turbo: [gpt-3.5-turbo-instruct]}]
          fallbacks: [{gpt-3.5-turbo: [gpt-3.5-turbo-instruct]}, {gpt-3.5-turbo-instruct: [gpt-3.5-turbo]}]
          success_callback: [langfuse]
          service_callback: [prometheus_system]
          cache: true
          cache_params: {type: redis}
        general_settings:
          master_key: os.environ/PROXY_MASTER_KEY
          store_model_in_db: true
          proxy_budget_rescheduler_min_time: 60
          proxy_budget_rescheduler_max_time: 64
          database_url: os.environ/DATABASE_URL
          alerting: [slack]
          alerting_threshold: 300
        """
    )
    env = {
        "AZURE_EU_KEY": "azure-key",
        "OPENAI_API_KEY": "sk-openai",
        "ANTHROPIC_API_KEY": "sk-ant",
        "REDIS_HOST": "redis.internal",
        "PROXY_MASTER_KEY": "sk-master",
        "DATABASE_URL": "postgres://u:p@db/x",
    }
    path = write_yaml(text)  # type: ignore[operator]
    result = check_config(path, env=env)
    assert result.errors == (), [str(e) for e in result.errors]
    assert result.table is not None
    groups = result.table.groups
    assert [d.provider for d in groups["gpt-3.5-turbo"].deployments] == ["azure", "openai"]
    assert groups["gpt-3.5-turbo"].deployments[1].tpm == 100000
    assert "gpt-3.5-turbo-instruct" in groups
    assert {w.path for w in result.warnings} >= {
        "model_list[1].tpm",
        'litellm_settings.fallbacks[1]["gpt-3.5-turbo-instruct"][0]',
        "litellm_settings.service_callback",
    }
    assert all(w.severity == "warning" for w in result.warnings)


UNSUPPORTED = """\
model_list:
  - model_name: chat
    litellm_params: {model: mock/chat, mock_response: "hello"}
  - model_name: my-llm
    litellm_params: {model: my-custom-llm/my-model}
  - model_name: images
    litellm_params: {model: openai/dall-e-3, api_key: sk-test}
    model_info: {mode: image_generation}
  - model_name: voice
    litellm_params: {model: elevenlabs/scribe_v1, api_key: k}
  - model_name: whisper
    litellm_params: {model: whisper-1, api_key: sk-test}
litellm_settings:
  custom_provider_map:
    - {provider: my-custom-llm, custom_handler: custom_handler.my_custom_llm}
"""


def test_unsupported_litellm_features_warn_precisely_and_answer_400(tmp_path: Path) -> None:
    from routerd.config import check_config
    from routerd.errors import BadRequestError

    path = tmp_path / "unsupported.yaml"
    path.write_text(UNSUPPORTED, encoding="utf-8")
    result = check_config(path, env={})
    assert result.errors == (), [str(e) for e in result.errors]
    assert [(w.line, w.path, w.message) for w in result.warnings] == [
        (
            5,
            "model_list[1].litellm_params.model",
            "provider 'my-custom-llm' is registered through litellm_settings.custom_provider_map (a Python "
            "handler); this deployment answers every call with a 400",
        ),
        (
            7,
            "model_list[2].litellm_params.model",
            "mode: image_generation (image generation); this deployment answers every call with a 400",
        ),
        (
            10,
            "model_list[3].litellm_params.model",
            "'elevenlabs' serves audio models; this deployment answers every call with a 400",
        ),
        (
            12,
            "model_list[4].litellm_params.model",
            "'whisper-1' is a model for audio transcription; this deployment answers every call with a 400",
        ),
        (
            14,
            "litellm_settings.custom_provider_map",
            "custom provider handlers are Python code routerd does not run; deployments of my-custom-llm "
            "load but answer every call with a 400",
        ),
    ]
    router = Router.from_config(path)
    try:
        hi = [{"role": "user", "content": "hi"}]
        assert router.completion(model="chat", messages=hi).choices[0].message.content == "hello"
        with pytest.raises(BadRequestError) as caught:
            router.completion(model="images", messages=hi)
    finally:
        router.close()
    assert (caught.value.status_code, caught.value.code) == (400, "unsupported_by_routerd")
    assert (
        "model group 'images': mode: image_generation (image generation); routerd does not serve it yet"
        in (str(caught.value))
    )


def test_cache_control_injection_points_are_checked(check: Check) -> None:
    claude = (
        "model_list:\n"
        "  - model_name: claude\n"
        "    litellm_params:\n"
        "      model: anthropic/claude-sonnet-4-5\n"
        "      api_key: k\n"
        "      cache_control_injection_points:\n"
        "        - {location: message, role: system}\n"
    )
    good = check(claude)
    assert good.ok and good.warnings == (), [str(i) for i in (*good.errors, *good.warnings)]
    [deployment] = good.table.deployments.values()  # type: ignore[union-attr]
    [point] = deployment.extra["cache_control_injection_points"]
    assert dict(point) == {"location": "message", "role": "system"}
    bad = check(claude.replace("{location: message, role: system}", "{location: tools, index: x}"))
    assert messages(bad.errors) == [
        "model_list[0].litellm_params.cache_control_injection_points: "
        "cache_control_injection_points[0].location must be 'message' (the only location LiteLLM defines)",
        "model_list[0].litellm_params.cache_control_injection_points: "
        "cache_control_injection_points[0].index must be an integer",
    ]
    other = check(claude.replace("anthropic/claude-sonnet-4-5", "openai/gpt-4o"))
    assert other.ok
    assert messages(other.warnings) == [
        "model_list[0].litellm_params.cache_control_injection_points: accepted but not acted on for provider "
        "'openai' (routerd injects cache_control for: anthropic)"
    ]


def test_the_daemon_serves_the_rest_and_says_why_in_health_and_a_400(tmp_path: Path) -> None:
    import httpx

    from routerd.testing.server import RouterdServer

    path = tmp_path / "unsupported.yaml"
    path.write_text(UNSUPPORTED, encoding="utf-8")
    hi = [{"role": "user", "content": "hi"}]
    with RouterdServer.from_file(path) as server:
        health = httpx.get(server.base_url + "/health", timeout=10).json()
        ok = httpx.post(
            server.base_url + "/v1/chat/completions", json={"model": "chat", "messages": hi}, timeout=10
        )
        refused = httpx.post(
            server.base_url + "/v1/chat/completions", json={"model": "my-llm", "messages": hi}, timeout=10
        )
    assert any(
        "custom_provider_map" in w and "answers every call with a 400" in w
        for w in health["config"]["warnings"]
    )
    assert ok.status_code == 200
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["code"] == "unsupported_by_routerd" and error["type"] == "invalid_request_error"
    assert (
        "provider 'my-custom-llm' is registered through litellm_settings.custom_provider_map"
        in error["message"]
    )


def test_a_misspelt_setting_that_now_acts_is_an_error(check: Check) -> None:
    # enable_pre_call_checks changes routing, so its singular misspelling must not be silently ignored
    result = check(ONE + "router_settings:\n  enable_pre_call_check: true\n")
    assert messages(result.errors) == [
        "router_settings.enable_pre_call_check: unknown key; did you mean 'enable_pre_call_checks'?"
    ]
