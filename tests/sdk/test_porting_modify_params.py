"""Porting suite: ``routerd.modify_params = True`` (LiteLLM's setting) fixes the messages Anthropic's
Messages API would refuse, against the loopback Anthropic fake (which refuses them as the API does)."""

from __future__ import annotations

from typing import Any

import pytest

import routerd
from routerd.providers.anthropic_translate import PLACEHOLDER_TURN
from tests.sdk.conftest import ANTHROPIC_KEY

MODEL = "anthropic/claude-3-5-haiku-20241022"

ASSISTANT_FIRST = [
    {"role": "system", "content": "Be brief."},
    {"role": "assistant", "content": "How can I help?"},
    {"role": "user", "content": "Say hi."},
]
ONLY_SYSTEM = [{"role": "system", "content": "Greet the user."}]
EMPTY_USER_TURN = [{"role": "system", "content": "Greet the user."}, {"role": "user", "content": ""}]
SAME_ROLE_TWICE = [
    {"role": "user", "content": "First part."},
    {"role": "user", "content": [{"type": "text", "text": "Second part."}]},
    {"role": "assistant", "content": ""},  # empty content: dropped, never an empty text block
    {"role": "assistant", "content": "Noted."},
    {"role": "user", "content": "Go on."},
]


@pytest.fixture
def anthropic_env(anthropic_fake: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    monkeypatch.setenv("ANTHROPIC_API_BASE", anthropic_fake.base_url)
    return anthropic_fake


@pytest.mark.parametrize("messages", [ASSISTANT_FIRST, ONLY_SYSTEM, EMPTY_USER_TURN])
def test_without_modify_params_the_api_refuses_the_conversation(
    anthropic_env: Any, messages: list[dict[str, Any]]
) -> None:
    with pytest.raises(routerd.BadRequestError, match="message"):
        routerd.completion(model=MODEL, messages=messages, num_retries=0)


@pytest.mark.parametrize("messages", [ASSISTANT_FIRST, ONLY_SYSTEM, EMPTY_USER_TURN])
def test_modify_params_puts_a_placeholder_user_turn_first(
    anthropic_env: Any, monkeypatch: pytest.MonkeyPatch, messages: list[dict[str, Any]]
) -> None:
    monkeypatch.setattr(routerd, "modify_params", True)
    response = routerd.completion(model=MODEL, messages=messages, num_retries=0)
    assert response.choices[0].message.content
    sent = anthropic_env.requests[-1].json
    assert sent["messages"][0] == {"role": "user", "content": [{"type": "text", "text": PLACEHOLDER_TURN}]}
    assert "modify_params" not in sent  # a routerd setting, never an upstream parameter
    if messages is ASSISTANT_FIRST:
        assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]


def test_modify_params_per_call_and_the_call_wins(
    anthropic_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    response = routerd.completion(model=MODEL, messages=ONLY_SYSTEM, num_retries=0, modify_params=True)
    assert response.choices[0].message.content
    monkeypatch.setattr(routerd, "modify_params", True)
    with pytest.raises(routerd.BadRequestError):
        routerd.completion(model=MODEL, messages=ONLY_SYSTEM, num_retries=0, modify_params=False)


def test_consecutive_turns_are_merged_and_empty_content_dropped(
    anthropic_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(routerd, "modify_params", True)
    routerd.completion(model=MODEL, messages=SAME_ROLE_TWICE, num_retries=0)
    sent = anthropic_env.requests[-1].json["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert [b["text"] for b in sent[0]["content"]] == ["First part.", "Second part."]
    assert sent[1]["content"] == [{"type": "text", "text": "Noted."}]


def test_a_conversation_that_starts_with_the_user_is_sent_unchanged(
    anthropic_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(routerd, "modify_params", True)
    routerd.completion(model=MODEL, messages=[{"role": "user", "content": "Hi"}], num_retries=0)
    assert anthropic_env.requests[-1].json["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Hi"}]}
    ]


def test_the_daemons_litellm_settings_modify_params_reaches_every_deployment(anthropic_env: Any) -> None:
    import asyncio
    import textwrap

    from routerd.config import check_text
    from routerd.routing.executor import CallRouter

    text = textwrap.dedent(
        f"""
        model_list:
          - model_name: claude
            litellm_params: {{model: "{MODEL}", api_base: "{anthropic_env.base_url}", api_key: "{ANTHROPIC_KEY}"}}
          - model_name: claude-strict
            litellm_params: {{model: "{MODEL}", api_base: "{anthropic_env.base_url}", api_key: "{ANTHROPIC_KEY}",
                              modify_params: false}}
        litellm_settings:
          modify_params: true
        """
    )
    result = check_text(text)
    assert result.table is not None, result.errors
    assert result.table.groups["claude"].deployments[0].extra["modify_params"] is True
    assert result.table.groups["claude-strict"].deployments[0].extra["modify_params"] is False

    async def ask(group: str) -> int:
        router = CallRouter(result.table)  # type: ignore[arg-type]
        try:
            await router.call("chat", {"model": group, "messages": ONLY_SYSTEM, "num_retries": 0})
            return 200
        except routerd.errors.OpenAIError as exc:
            return exc.status_code
        finally:
            await router.aclose()

    assert asyncio.run(ask("claude")) == 200
    assert asyncio.run(ask("claude-strict")) == 400
