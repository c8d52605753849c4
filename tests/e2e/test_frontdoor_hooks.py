"""A daemon pre-call hook that changes the request applies on the front doors too: a ``/v1/messages``
request to an Anthropic deployment (which would otherwise get the client's own body natively) reaches
the upstream with the hook's change, and a table without such a hook keeps the native pass-through."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import anthropic
import pytest
from clients import tracked

from routerd.integrations.custom_logger import CustomLogger
from routerd.integrations.loading import CallbackTable
from routerd.testing.anthropic_fake import FakeAnthropic
from routerd.testing.server import RouterdServer

from .support import ANTHROPIC_KEY, MASTER_KEY, running_fake, write_config

MODULE = textwrap.dedent(
    """
    from routerd.integrations.custom_logger import CustomLogger


    class Masker(CustomLogger):
        async def async_pre_call_hook(self, user_api_key_dict, cache, data, call_type):
            for message in data.get("messages", []):
                if isinstance(message.get("content"), str):
                    message["content"] = message["content"].replace("s3cret", "[MASKED]")
            return data


    class Listener(CustomLogger):
        pass


    masker = Masker()
    listener = Listener()
    """
)


def _config(anthropic_base: str, module: str, instance: str) -> str:
    ant = f"api_base: {anthropic_base}, api_key: {ANTHROPIC_KEY}"
    return f"""\
model_list:
  - {{model_name: claude, litellm_params: {{model: anthropic/claude-sonnet-4-5, {ant}}}}}
litellm_settings:
  callbacks: [{module}.{instance}]
general_settings: {{master_key: {MASTER_KEY}}}
"""


@pytest.fixture
def upstream() -> Iterator[FakeAnthropic]:
    with running_fake(FakeAnthropic(api_key=ANTHROPIC_KEY)) as fake:
        yield fake


@pytest.fixture
def module(tmp_path: Path) -> Iterator[str]:
    name = "routerd_test_frontdoor_hooks"
    (tmp_path / f"{name}.py").write_text(MODULE)
    try:
        yield name
    finally:
        sys.modules.pop(name, None)


def _send(server: RouterdServer, text: str) -> None:
    client = tracked(anthropic.Anthropic(base_url=server.base_url, api_key=MASTER_KEY, max_retries=0))
    answer = client.messages.create(
        model="claude",
        max_tokens=32,
        messages=[{"role": "user", "content": text}],
        metadata={"user_id": "u1"},
    )
    assert answer.content


@pytest.mark.parametrize(
    ("instance", "masked", "native"), [("masker", True, False), ("listener", False, True)]
)
def test_a_pre_call_hook_change_reaches_an_anthropic_deployment(
    upstream: FakeAnthropic, module: str, tmp_path: Path, instance: str, masked: bool, native: bool
) -> None:
    config = write_config(tmp_path, _config(upstream.base_url, module, instance))
    with RouterdServer.from_file(config) as server:
        _send(server, "the password is s3cret")
    sent = upstream.requests[-1].json
    content = sent["messages"][0]["content"]
    text = content if isinstance(content, str) else content[0]["text"]
    assert ("[MASKED]" in text) is masked and ("s3cret" in text) is not masked
    # the native pass-through keeps the client's string content; the translation sends text blocks
    assert isinstance(content, str) is native


def test_only_a_logger_with_its_own_pre_call_hook_rewrites_requests() -> None:
    class Hook(CustomLogger):
        async def async_pre_call_hook(self, user_api_key_dict, cache, data, call_type):  # type: ignore[no-untyped-def]
            return data

    assert CallbackTable.of([Hook()]).rewrites_requests
    assert not CallbackTable.of([CustomLogger()]).rewrites_requests
    assert not CallbackTable.of().rewrites_requests
