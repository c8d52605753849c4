"""``guardrails:``, ``keys:`` and ``teams:`` in the routing file: compiled into the table, every mistake
reported at its line and column, secrets never shown, and the table's hash following their files."""

from __future__ import annotations

from pathlib import Path

from config.conftest import Check, WriteYaml, messages
from routerd.access.spec import hash_key
from routerd.config import check_config
from routerd.guardrails.engine import Mode

BASE = """\
model_list:
  - model_name: gpt-4o
    litellm_params: {model: mock/gpt-4o, mock_response: hi}
    model_info: {access_groups: [beta]}
  - model_name: omni-moderation
    litellm_params: {model: mock/omni-moderation}
"""


def test_guardrails_compile_into_the_table(check: Check) -> None:
    result = check(
        BASE
        + """\
guardrails:
  - guardrail_name: pii
    litellm_params:
      guardrail: litellm_content_filter
      mode: [pre_call, during_call]
      default_on: true
      patterns: [{pattern_type: prebuilt, pattern_name: email, action: MASK}]
  - guardrail_name: hook
    litellm_params:
      guardrail: generic_guardrail_api
      api_base: http://127.0.0.1:9/check
      api_key: sk-hook-secret
      timeout: 2
      fail_open: true
  - guardrail_name: mod
    litellm_params: {guardrail: openai_moderation, model: omni-moderation, categories: [violence]}
"""
    )
    assert result.ok, [str(e) for e in result.errors]
    table = result.table
    assert table is not None and list(table.guardrails) == ["pii", "hook", "mod"]
    pii = table.guardrails["pii"]
    assert pii.modes == {Mode.PRE_CALL, Mode.DURING_CALL} and pii.default_on
    assert pii.content_filter.scan("a@b.example").text == "[EMAIL_REDACTED]"
    hook = table.guardrails["hook"]
    assert (hook.url, hook.timeout, hook.fail_open) == ("http://127.0.0.1:9/check", 2.0, True)
    assert hook.headers["authorization"] == "Bearer sk-hook-secret"
    assert "sk-hook-secret" not in repr(hook)
    assert table.guardrails["mod"].categories == {"violence"}


def test_guardrail_mistakes_point_at_their_line(check: Check) -> None:
    result = check(
        BASE
        + """\
guardrails:
  - guardrail_name: a
    litellm_params:
      guardrail: lakera_prompt_injection
  - guardrail_name: b
    litellm_params:
      guardrail: litellm_content_filter
      pattens: []
  - guardrail_name: c
    litellm_params:
      guardrail: litellm_content_filter
      patterns: [{pattern_type: prebuilt, pattern_name: emial}]
"""
    )
    assert not result.ok
    located = [f"{e.line}:{e.col}: {e.path}: {e.message}" for e in result.errors]
    assert located[0] == (
        "10:18: guardrails[0].litellm_params.guardrail: unknown guardrail type 'lakera_prompt_injection'; "
        "routerd runs litellm_content_filter, generic_guardrail_api, openai_moderation"
    )
    assert located[1] == (
        "14:7: guardrails[1].litellm_params.pattens: not a key of litellm_content_filter guardrails; "
        "did you mean 'patterns'?"
    )
    assert located[2].startswith(
        "18:18: guardrails[2].litellm_params.patterns[0]: unknown prebuilt pattern 'emial'; known: amex,"
    )


def test_skipped_unknown_guardrail_is_a_loud_warning(check: Check) -> None:
    result = check(
        BASE
        + "guardrails:\n  - guardrail_name: e\n    litellm_params: {guardrail: lakera_v2, skip_if_unsupported: true}\n"
    )
    assert result.ok and result.table is not None and not result.table.guardrails
    assert any("unknown guardrail type 'lakera_v2'" in w and "skipped" in w for w in result.table.warnings)


def test_old_style_guardrails_are_rejected_not_ignored(check: Check) -> None:
    result = check(
        BASE + "litellm_settings:\n  guardrails:\n    - pi: {callbacks: [lakera_prompt_injection]}\n"
    )
    assert messages(result.errors) == [
        "litellm_settings.guardrails: guardrails are declared in the top-level `guardrails:` list (LiteLLM's "
        "current shape); a guardrail routerd cannot run is never silently skipped, so this file is rejected "
        "until they move"
    ]


def test_category_files_are_read_relative_to_the_config_and_hashed(
    write_yaml: WriteYaml, tmp_path: Path
) -> None:
    write_yaml("keywords: [{keyword: bluebird, severity: high}]\n", name="lists/codenames.yaml")
    config = write_yaml(
        BASE
        + """\
guardrails:
  - guardrail_name: codenames
    litellm_params:
      guardrail: litellm_content_filter
      categories: [{category: codenames, category_file: lists/codenames.yaml}]
"""
    )
    first = check_config(config, env={})
    assert first.ok and first.table is not None
    assert first.table.guardrails["codenames"].content_filter.scan("Bluebird!").blocked is not None
    (tmp_path / "lists" / "codenames.yaml").write_text("keywords: [{keyword: sparrow, severity: high}]\n")
    second = check_config(config, env={})
    assert second.table is not None and second.table.content_hash != first.table.content_hash


def test_keys_and_teams_compile_with_access_groups(check: Check) -> None:
    result = check(
        BASE
        + """\
teams:
  - {team_id: search, models: [gpt-4o], max_budget: 10, budget_duration: 30d}
keys:
  - key_alias: search-backend
    key: os.environ/SEARCH_KEY
    team_id: search
    models: [beta]
    rpm_limit: 3
""",
        env={"SEARCH_KEY": "sk-search-0123456789abcdef"},
    )
    assert result.ok, [str(e) for e in result.errors]
    access = result.table.access  # type: ignore[union-attr]
    policy = access.lookup("sk-search-0123456789abcdef")
    assert policy.alias == "search-backend" and policy.team.max_budget == 10
    assert access.access_groups == {"beta": frozenset({"gpt-4o"})}
    assert "sk-search" not in repr(result.table.access)  # type: ignore[union-attr]


def test_key_mistakes_are_located_and_never_show_the_key(check: Check) -> None:
    result = check(
        BASE
        + """\
keys:
  - key: sk-short
  - key: sk-long-enough-0123456789
    team_id: ghost
  - key_hash: sha256:nothex
""",
        env={},
    )
    located = [f"{e.line}:{e.col}: {e.path}: {e.message}" for e in result.errors]
    assert located[0].startswith("8:5: keys[0]")
    assert located[1].startswith("11:5: keys[2]")
    assert not any("sk-short" in line or "sk-long" in line for line in located)


def test_key_hash_lets_the_file_omit_the_key(check: Check) -> None:
    digest = hash_key("sk-hashed-0123456789abcdef").hex()
    result = check(BASE + f"keys:\n  - {{key_alias: h, key_hash: 'sha256:{digest}'}}\n")
    assert result.ok and result.table is not None
    assert result.table.access.lookup("sk-hashed-0123456789abcdef").alias == "h"


def test_hash_changes_with_keys(check: Check) -> None:
    one = check(BASE + "keys:\n  - {key_alias: a, key: sk-aaaaaaaaaaaaaaaaaaaa}\n").table
    two = check(BASE + "keys:\n  - {key_alias: a, key: sk-bbbbbbbbbbbbbbbbbbbb}\n").table
    assert one is not None and two is not None and one.content_hash != two.content_hash


def test_stream_check_chars_of_service_guardrails_is_bounded_and_located(check: Check) -> None:
    result = check(
        BASE
        + """\
guardrails:
  - guardrail_name: hook
    litellm_params: {guardrail: generic_guardrail_api, api_base: 'http://127.0.0.1:9/', stream_check_chars: 128}
  - guardrail_name: mod
    litellm_params: {guardrail: openai_moderation, model: omni-moderation}
"""
    )
    assert result.ok and result.table is not None
    assert result.table.guardrails["hook"].stream_check_chars == 128
    assert result.table.guardrails["mod"].stream_check_chars == 512  # the documented default
    result = check(
        BASE
        + """\
guardrails:
  - guardrail_name: hook
    litellm_params:
      guardrail: generic_guardrail_api
      api_base: http://127.0.0.1:9/
      stream_check_chars: 8
  - guardrail_name: mod
    litellm_params:
      guardrail: openai_moderation
      model: omni-moderation
      stream_check_char: 64
"""
    )
    located = [f"{e.line}:{e.col}: {e.path}: {e.message}" for e in result.errors]
    assert located[0].startswith("12:27: guardrails[0].litellm_params.stream_check_chars: ")
    assert "greater than or equal to 16" in located[0]
    assert located[1] == (
        "17:7: guardrails[1].litellm_params.stream_check_char: not a key of openai_moderation guardrails; "
        "did you mean 'stream_check_chars'?"
    )


def test_builtin_categories_are_chosen_by_name_and_a_misspelt_one_is_located(check: Check) -> None:
    result = check(
        BASE
        + """\
guardrails:
  - guardrail_name: harm
    litellm_params:
      guardrail: litellm_content_filter
      categories: [{category: harmful_self_harm, severity_threshold: high}]
"""
    )
    assert result.ok and result.table is not None
    assert result.table.guardrails["harm"].content_filter.scan("I will kill myself").blocked is not None
    result = check(
        BASE
        + """\
guardrails:
  - guardrail_name: harm
    litellm_params:
      guardrail: litellm_content_filter
      categories:
        - {category: harmful_self_harm}
        - {category: harmful_wepons}
"""
    )
    located = [f"{e.line}:{e.col}: {e.path}: {e.message}" for e in result.errors]
    assert located == [
        "13:11: guardrails[0].litellm_params.categories[1]: category 'harmful_wepons' is not a built-in "
        "category; did you mean 'harmful_illegal_weapons'? built-in: harmful_self_harm, harmful_violence, "
        "harmful_illegal_weapons, denied_financial_advice, denied_medical_advice, denied_legal_advice "
        "(or give a `category_file`)"
    ]
