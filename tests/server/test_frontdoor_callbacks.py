"""The daemon's callbacks on the front doors: a ``/v1/messages`` request reaches the pre-call hook
with the client's request headers (never its key), as a chat completion does; a real server on loopback."""

from __future__ import annotations

import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from routerd.testing.server import RouterdServer

MODULE = textwrap.dedent(
    """
    from routerd.integrations.custom_logger import CustomLogger


    class Handler(CustomLogger):
        def __init__(self):
            super().__init__()
            self.headers = []

        def log_pre_api_call(self, model, messages, kwargs):
            self.headers.append(dict(kwargs["litellm_params"]["proxy_server_request"]["headers"]))


    proxy_handler_instance = Handler()
    """
)

CONFIG = textwrap.dedent(
    """
    model_list:
      - model_name: claude
        litellm_params:
          model: mock/claude
          mock_response: "hello"
    litellm_settings:
      callbacks: [{module}.proxy_handler_instance]
    general_settings:
      master_key: sk-master-test
    """
)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[RouterdServer, Any]]:
    module = "routerd_test_frontdoor_callbacks"
    (tmp_path / f"{module}.py").write_text(MODULE)
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.format(module=module))
    routerd = RouterdServer.from_file(config)
    try:
        with routerd:
            yield routerd, sys.modules[module].proxy_handler_instance
    finally:
        sys.modules.pop(module, None)


def test_messages_callbacks_see_the_request_headers(server: tuple[RouterdServer, Any]) -> None:
    routerd, handler = server
    headers = {"x-api-key": "sk-master-test", "anthropic-version": "2023-06-01", "traceparent": "00-ab-cd-01"}
    body = {"model": "claude", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
    answer = httpx.post(f"{routerd.base_url}/v1/messages", json=body, headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
    for _ in range(500):  # bounded: the hook may run just after the answer
        if handler.headers:
            break
        time.sleep(0.01)
    seen = handler.headers[0]
    assert seen["traceparent"] == "00-ab-cd-01"
    assert seen["anthropic-version"] == "2023-06-01"
    assert "sk-master-test" not in str(seen)
