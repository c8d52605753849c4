"""Issue 16 cause 7: bare model names LiteLLM knows are recognised without a provider prefix.

``codex-mini-latest`` and OpenAI's other current names resolve to ``openai`` (legacy completion models
to ``text-completion-openai``), bare ``claude-*`` to ``anthropic`` and ``gemini-*`` to ``gemini``, both in
:func:`infer_provider` and in a whole config checked as ``routerd check`` does; names that only look
alike (``o1x``, ``codexish``) stay unknown and are reported.
"""

from __future__ import annotations

import pytest

from routerd.providers.infer import infer_provider, split_model

from .conftest import Check

OPENAI_NAMES = [
    "codex-mini-latest",
    "o1",
    "o1-mini",
    "o1-pro",
    "o1-2024-12-17",
    "o3",
    "o3-mini",
    "o3-pro",
    "o3-deep-research",
    "o4-mini",
    "o4-mini-2025-04-16",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano-2025-04-14",
    "gpt-5",
    "gpt-5-mini",
    "gpt-5-nano",
    "gpt-5-chat-latest",
    "gpt-4o",
    "chatgpt-4o-latest",
    "computer-use-preview",
    "computer-use-preview-2025-03-11",
    "text-embedding-3-small",
    "text-embedding-ada-002",
    "omni-moderation-latest",
    "text-moderation-latest",
    "ft:gpt-4o-mini:org:suffix:id",
    # audio / image: recognised; the config then warns that routerd does not serve them
    "whisper-1",
    "tts-1-hd",
    "dall-e-3",
    "gpt-image-1",
]


@pytest.mark.parametrize("name", OPENAI_NAMES)
def test_current_openai_names_are_inferred(name: str) -> None:
    assert infer_provider(name) == "openai"
    assert split_model(name) == ("openai", name)


@pytest.mark.parametrize(
    ("name", "provider"),
    [
        ("gpt-3.5-turbo-instruct", "text-completion-openai"),
        ("davinci-002", "text-completion-openai"),
        ("claude-3-5-sonnet-20241022", "anthropic"),
        ("claude-sonnet-4-20250514", "anthropic"),
        ("claude-opus-4-1", "anthropic"),
        ("gemini-1.5-flash", "gemini"),
        ("gemini-2.5-pro", "gemini"),
    ],
)
def test_other_bare_names_keep_their_provider(name: str, provider: str) -> None:
    assert infer_provider(name) == provider


@pytest.mark.parametrize("name", ["o1x", "o3de", "codexish", "llama-3.1-8b", "computer", "mistral-large"])
def test_lookalikes_are_not_inferred(name: str) -> None:
    assert infer_provider(name) is None


def test_a_config_naming_bare_models_checks_clean(check: Check) -> None:
    result = check(
        """
        model_list:
          - model_name: codex
            litellm_params: {model: codex-mini-latest, api_key: sk-test}
          - model_name: reasoning
            litellm_params: {model: o4-mini, api_key: sk-test}
          - model_name: newest
            litellm_params: {model: gpt-5-mini, api_key: sk-test}
          - model_name: agent
            litellm_params: {model: computer-use-preview, api_key: sk-test}
          - model_name: claude
            litellm_params: {model: claude-sonnet-4-20250514, api_key: sk-ant-test}
        """
    )
    assert result.table is not None, [str(e) for e in result.errors]
    providers = {
        name: [(d.provider, d.model) for d in group.deployments]
        for name, group in result.table.groups.items()
    }
    assert providers["codex"] == [("openai", "codex-mini-latest")]
    assert providers["reasoning"] == [("openai", "o4-mini")]
    assert providers["newest"] == [("openai", "gpt-5-mini")]
    assert providers["agent"] == [("openai", "computer-use-preview")]
    assert providers["claude"] == [("anthropic", "claude-sonnet-4-20250514")]
    assert result.errors == ()


def test_a_lookalike_bare_name_is_still_an_error_where_it_is_written(check: Check) -> None:
    result = check(
        """
        model_list:
          - model_name: unknown
            litellm_params: {model: codexish, api_key: sk-test}
        """
    )
    assert result.table is None
    assert [(e.line, e.message) for e in result.errors] == [
        (4, "cannot tell the provider of 'codexish'; write it as provider/model, e.g. openai/codexish")
    ]
