"""Porting suite, part 4: the daemon loads ``litellm_settings.callbacks: module.instance`` (a module
next to the config file, as LiteLLM's proxy does) and calls its hooks; a real server on loopback."""

from __future__ import annotations

import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from routerd.config import check_text
from routerd.integrations.loading import CallbackTable
from routerd.testing.server import RouterdServer

MODULE = textwrap.dedent(
    """
    from routerd.integrations.custom_logger import CustomLogger


    class Handler(CustomLogger):
        def __init__(self):
            super().__init__()
            self.events = []

        async def async_pre_call_hook(self, user_api_key_dict, cache, data, call_type):
            if data["messages"][-1]["content"] == "forbidden":
                raise ValueError("this prompt is not allowed")
            data["metadata"] = {"tagged_by": "pre_call"}
            self.events.append(("pre_call", call_type))
            return data

        async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
            self.events.append(("success", kwargs["model"], kwargs["litellm_call_id"],
                                response_obj["usage"]["total_tokens"], kwargs["messages"][-1]["content"],
                                start_time <= end_time))

        async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):
            self.events.append(("failure", kwargs["exception"]))

        def log_success_event(self, kwargs, response_obj, start_time, end_time):
            raise RuntimeError("a broken sync hook must not break anything")


    proxy_handler_instance = Handler()
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
      {key}: [{module}.proxy_handler_instance]
    general_settings:
      master_key: sk-master-test
    """
)


@pytest.fixture
def handler_server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[RouterdServer, Any]]:
    module = f"routerd_test_callbacks_{request.node.name.replace('[', '_').replace(']', '_')}"
    (tmp_path / f"{module}.py").write_text(MODULE)
    config = tmp_path / "config.yaml"
    key = getattr(request, "param", "callbacks")  # each of LiteLLM's three lists loads the same way
    config.write_text(CONFIG.format(module=module, key=key))
    server = RouterdServer.from_file(config)
    try:
        with server:
            yield server, sys.modules[module].proxy_handler_instance
    finally:
        sys.modules.pop(module, None)


def _wait_for(events: list[Any], count: int) -> None:
    for _ in range(500):  # bounded: the hooks run in a background task after the answer
        if len(events) >= count:
            return
        time.sleep(0.01)


def test_module_instance_callbacks_see_requests(handler_server: tuple[RouterdServer, Any]) -> None:
    server, handler = handler_server
    headers = {"authorization": "Bearer sk-master-test", "x-request-id": "req-123"}
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    answer = httpx.post(f"{server.base_url}/v1/chat/completions", json=body, headers=headers, timeout=30)
    assert answer.status_code == 200
    _wait_for(handler.events, 2)
    assert handler.events[0] == ("pre_call", "completion")
    kind, model, call_id, tokens, last_message, ordered = handler.events[1]
    assert (kind, model, call_id, last_message, ordered) == ("success", "gpt-4o-mini", "req-123", "hi", True)
    assert tokens > 0


def _ask(server: RouterdServer, content: str = "hi", model: str = "gpt-4o-mini") -> int:
    headers = {"authorization": "Bearer sk-master-test"}
    body = {"model": model, "messages": [{"role": "user", "content": content}]}
    answer = httpx.post(f"{server.base_url}/v1/chat/completions", json=body, headers=headers, timeout=30)
    return answer.status_code


@pytest.mark.parametrize("handler_server", ["success_callback"], indirect=True)
def test_success_callback_hears_only_of_successes(handler_server: tuple[RouterdServer, Any]) -> None:
    server, handler = handler_server
    assert _ask(server) == 200
    assert _ask(server, model="no-such-model") == 404
    _wait_for(handler.events, 1)
    assert _ask(server) == 200  # a second success: the failure in between was not reported
    _wait_for(handler.events, 2)
    assert [event[0] for event in handler.events] == ["success", "success"]  # no pre-call hook either


@pytest.mark.parametrize("handler_server", ["failure_callback"], indirect=True)
def test_failure_callback_hears_only_of_failures(handler_server: tuple[RouterdServer, Any]) -> None:
    server, handler = handler_server
    assert _ask(server) == 200
    assert _ask(server, model="no-such-model") == 404
    _wait_for(handler.events, 1)
    assert _ask(server, model="no-such-model") == 404
    _wait_for(handler.events, 2)
    assert handler.events == [("failure", "NotFoundError"), ("failure", "NotFoundError")]


def test_a_pre_call_hook_can_reject_a_request(handler_server: tuple[RouterdServer, Any]) -> None:
    server, handler = handler_server
    headers = {"authorization": "Bearer sk-master-test"}
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "forbidden"}]}
    answer = httpx.post(f"{server.base_url}/v1/chat/completions", json=body, headers=headers, timeout=30)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert "this prompt is not allowed" in error["message"]
    assert set(error) == {"message", "type", "param", "code"}
    _wait_for(handler.events, 1)
    assert handler.events == [("failure", "BadRequestError")]


def test_a_path_that_does_not_import_is_a_config_error_at_its_place(tmp_path: Path) -> None:
    text = CONFIG.format(module="no_such_module_xyz", key="callbacks").replace(
        "[no_such_module_xyz.proxy_handler_instance]",
        "[prometheus, no_such_module_xyz.proxy_handler_instance]",
    )
    result = check_text(text, str(tmp_path / "config.yaml"))
    assert result.table is None
    (error,) = result.errors
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "no_such_module_xyz" in row)
    col = text.splitlines()[line - 1].index("no_such_module_xyz") + 1
    assert str(error).startswith(f"{tmp_path / 'config.yaml'}:{line}:{col}: litellm_settings.callbacks[1]")
    assert "no_such_module_xyz.proxy_handler_instance" in str(error)
    ok = check_text(
        CONFIG.format(module="x", key="callbacks").replace("[x.proxy_handler_instance]", "[prometheus]")
    )
    assert ok.table is not None and not ok.table.callbacks  # built-ins are not callbacks to load


def test_pending_request_bodies_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    import routerd.integrations.proxy as proxy_module
    from routerd.integrations.custom_logger import CustomLogger
    from routerd.integrations.proxy import ProxyCallbacks

    monkeypatch.setattr(proxy_module, "MAX_PENDING_CALLBACKS", 2)
    proxy = ProxyCallbacks(lambda: CallbackTable.of([CustomLogger()]))
    for index in range(5):
        asyncio.run(proxy.pre_call("chat", {"model": "m", "messages": []}, f"req-{index}"))
    assert list(proxy._bodies) == ["req-3", "req-4"]  # the oldest are forgotten


def test_pre_call_kwargs_carry_request_headers_without_the_key() -> None:
    import asyncio

    from routerd.integrations.context import REQUEST_HEADERS
    from routerd.integrations.custom_logger import CustomLogger
    from routerd.integrations.proxy import ProxyCallbacks

    seen: list[dict[str, Any]] = []

    class Capture(CustomLogger):
        def log_pre_api_call(self, model: str, messages: Any, kwargs: dict[str, Any]) -> None:
            seen.append(kwargs["litellm_params"]["proxy_server_request"]["headers"])

    async def serve() -> None:
        REQUEST_HEADERS.set({"authorization": "Bearer sk-master-test", "traceparent": "00-ab-cd-01"})
        proxy = ProxyCallbacks(lambda: CallbackTable.of([Capture()]))
        await proxy.pre_call("chat", {"model": "m", "messages": []}, "req-1")

    asyncio.run(serve())
    assert seen == [{"traceparent": "00-ab-cd-01"}]


RELOAD_CONFIG = textwrap.dedent(
    """
    model_list:
      - model_name: gpt-4o-mini
        litellm_params:
          model: mock/gpt-4o-mini
          mock_response: "hello"
    litellm_settings:
      callbacks: {callbacks}
    general_settings:
      master_key: sk-master-test
    """
)


def _reload(server: RouterdServer) -> dict[str, Any]:
    answer = httpx.post(
        f"{server.base_url}/admin/reload", headers={"authorization": "Bearer sk-master-test"}, timeout=30
    )
    result: dict[str, Any] = answer.json()
    return result


def test_a_reload_adds_and_removes_callbacks_and_a_bad_path_keeps_the_old_table(tmp_path: Path) -> None:
    module = "routerd_test_callbacks_reloaded"
    config = tmp_path / "config.yaml"
    config.write_text(RELOAD_CONFIG.format(callbacks="[]"))
    try:
        with RouterdServer.from_file(config) as server:
            assert _ask(server) == 200
            (tmp_path / f"{module}.py").write_text(MODULE)  # a module written after the start
            config.write_text(RELOAD_CONFIG.format(callbacks=f"[{module}.proxy_handler_instance]"))
            assert _reload(server)["result"] == "success"
            handler = sys.modules[module].proxy_handler_instance
            assert _ask(server) == 200
            _wait_for(handler.events, 2)
            assert [event[0] for event in handler.events] == ["pre_call", "success"]

            bad = RELOAD_CONFIG.format(callbacks=f"[{module}.proxy_handler_instance, nope_xyz.h]")
            config.write_text(bad)
            failed = _reload(server)
            assert failed["result"] == "failure"
            line = next(i for i, row in enumerate(bad.splitlines(), 1) if "nope_xyz" in row)
            col = bad.splitlines()[line - 1].index("nope_xyz") + 1
            assert failed["error"].startswith(f"{config}:{line}:{col}: litellm_settings.callbacks[1]: ")
            assert "nope_xyz.h" in failed["error"]
            assert _ask(server) == 200  # the old table, callbacks included, keeps serving
            _wait_for(handler.events, 4)
            assert [event[0] for event in handler.events][2:] == ["pre_call", "success"]

            config.write_text(RELOAD_CONFIG.format(callbacks="[]"))
            assert _reload(server)["result"] == "success"
            assert _ask(server) == 200
            assert _ask(server, "forbidden") == 200  # the pre-call hook that refused it is gone
            time.sleep(0.05)  # give a (wrongly) scheduled callback task the chance to run
            assert len(handler.events) == 4
    finally:
        sys.modules.pop(module, None)
