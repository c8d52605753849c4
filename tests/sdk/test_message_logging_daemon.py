"""``litellm_settings.turn_off_message_logging`` in the daemon (a real server on loopback): the logging
hooks get no prompt, the pre-call hook still gets the request, a reload turns it on and off;
``log_raw_request_response`` is accepted with a warning at its place (LiteLLM files still load)."""

from __future__ import annotations

import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx

from routerd.config import check_text
from routerd.integrations.redact import REDACTED
from routerd.testing.server import RouterdServer

SECRET = "secret prompt text"

MODULE = textwrap.dedent(
    """
    from routerd.integrations.custom_logger import CustomLogger


    class Handler(CustomLogger):
        def __init__(self):
            super().__init__()
            self.events = []

        def log_pre_api_call(self, model, messages, kwargs):
            self.events.append(("pre", messages, kwargs["messages"]))

        async def async_pre_call_hook(self, user_api_key_dict, cache, data, call_type):
            self.events.append(("hook", data["messages"]))
            return data

        async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
            self.events.append(("success", kwargs["messages"], response_obj["usage"]["total_tokens"]))


    handler = Handler()
    """
)

CONFIG = textwrap.dedent(
    """
    model_list:
      - model_name: gpt-4o-mini
        litellm_params:
          model: mock/gpt-4o-mini
          mock_response: "hello"
    litellm_settings:
      callbacks: [{module}.handler]
      turn_off_message_logging: {off}
    general_settings:
      master_key: sk-master-test
    """
)
HEADERS = {"authorization": "Bearer sk-master-test"}


def _ask(server: RouterdServer) -> int:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": SECRET}]}
    answer = httpx.post(f"{server.base_url}/v1/chat/completions", json=body, headers=HEADERS, timeout=30)
    assert answer.json()["choices"][0]["message"]["content"] == "hello"  # the client's answer is intact
    return answer.status_code


def _wait_for(events: list[Any], count: int) -> None:
    for _ in range(500):  # bounded: the success hooks run in a background task after the answer
        if len(events) >= count:
            return
        time.sleep(0.01)


def test_the_daemon_setting_redacts_logging_hooks_and_reloads(tmp_path: Path) -> None:
    module = "routerd_test_message_logging"
    (tmp_path / f"{module}.py").write_text(MODULE)
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.format(module=module, off="true"))
    try:
        with RouterdServer.from_file(config) as server:
            handler = sys.modules[module].handler
            assert _ask(server) == 200
            _wait_for(handler.events, 3)
            pre, hook, success = handler.events
            assert pre == ("pre", REDACTED, REDACTED)
            assert hook == ("hook", [{"role": "user", "content": SECRET}])  # it acts on the request
            assert success[:2] == ("success", REDACTED) and success[2] > 0  # tokens are still reported

            config.write_text(CONFIG.format(module=module, off="false"))
            reload = httpx.post(f"{server.base_url}/admin/reload", headers=HEADERS, timeout=30).json()
            assert reload["result"] == "success"
            assert _ask(server) == 200
            _wait_for(handler.events, 6)
            assert [event[1] for event in handler.events[3:]] == [[{"role": "user", "content": SECRET}]] * 3
    finally:
        sys.modules.pop(module, None)


def test_log_raw_request_response_is_a_warning_at_its_place() -> None:
    text = textwrap.dedent(
        """
        model_list:
          - model_name: m
            litellm_params: {model: mock/m}
        litellm_settings:
          log_raw_request_response: true
        """
    )
    result = check_text(text, "config.yaml")
    assert result.table is not None and not result.errors  # a LiteLLM file that has it still loads
    (warning,) = result.warnings
    assert str(warning).startswith("config.yaml:6:")
    assert "litellm_settings.log_raw_request_response: accepted but not acted on" in str(warning)
    assert "raw upstream request" in str(warning)
