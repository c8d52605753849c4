"""``routerd serve`` as a real process: SIGTERM drains in-flight requests (bounded) and exits 0;
``--workers 2`` starts worker processes that serve requests, and SIGHUP reloads them all in place."""

from __future__ import annotations

import re
import signal
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from .support import DaemonProcess, user, wait_for, write_config

DRAIN_TIMEOUT = 6.0
CONFIG = """
model_list:
  - model_name: slow
    litellm_params:
      model: mock/gpt-4o-mini
      mock_response: "drained"
      mock_latency_ms: 2500
    model_info: {id: slow}
  - model_name: stuck
    litellm_params:
      model: mock/gpt-4o-mini
      mock_hang: true
    model_info: {id: stuck}
  - model_name: fast
    litellm_params:
      model: mock/gpt-4o-mini
      mock_response: "fast answer"
    model_info: {id: fast}
router_settings:
  num_retries: 0
"""


def post_chat(base_url: str, model: str) -> httpx.Response:
    return httpx.post(
        f"{base_url}/v1/chat/completions", json={"model": model, "messages": user("hi")}, timeout=60
    )


def in_background(call: Any, *args: Any) -> tuple[threading.Thread, dict[str, Any]]:
    """Run ``call(*args)`` in a thread; its result or exception lands in the returned dict."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = call(*args)
        except Exception as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def in_flight(base_url: str) -> float:
    """Chat requests the daemon is serving right now, from its own metrics."""
    text = httpx.get(f"{base_url}/metrics", timeout=5).text
    found = re.search(r'^routerd_requests_in_flight\{endpoint="chat"\} (\S+)$', text, flags=re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def refuses_connections(base_url: str) -> bool:
    """No new request is served: the connection is refused, or (when it was already waiting in the
    listen backlog as the listener closed) closed without an answer."""
    try:
        httpx.get(f"{base_url}/health/liveliness", timeout=1)
    except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError):
        return True
    return False


@pytest.mark.slow  # over ~10 s (pytest --durations); deselect with -m "not slow"
def test_sigterm_drains_in_flight_requests_then_exits_0(tmp_path: Path) -> None:
    config = write_config(tmp_path, CONFIG)
    daemon = DaemonProcess(
        config, tmp_path / "routerd.log", env={"ROUTERD_DRAIN_TIMEOUT": str(DRAIN_TIMEOUT)}
    )
    try:
        daemon.wait_ready()
        slow, slow_outcome = in_background(post_chat, daemon.base_url, "slow")
        stuck, stuck_outcome = in_background(post_chat, daemon.base_url, "stuck")
        wait_for(lambda: in_flight(daemon.base_url) == 2, timeout=10, what="both requests in flight")

        # the 2.5 s request is in flight when the signal arrives (checked here rather than after the
        # listener closed: on a loaded machine seeing the refusal can take longer than the request)
        assert slow.is_alive(), "the 2.5 s request ended before SIGTERM was sent"
        daemon.process.send_signal(signal.SIGTERM)

        # it stops accepting at once, while the in-flight requests are still being served
        wait_for(lambda: refuses_connections(daemon.base_url), timeout=5, what="new connections refused")
        slow.join(timeout=30)
        stuck.join(timeout=30)
        # the stuck request never ends by itself: the process exits only if the drain timeout cuts it
        # (the wait bounds a hang; it measures no speed)
        exit_code = daemon.process.wait(timeout=DRAIN_TIMEOUT + 10)
    finally:
        daemon.stop()

    response = slow_outcome["result"]
    assert response.status_code == 200, daemon.output
    assert response.json()["choices"][0]["message"]["content"] == "drained"
    # the request that would never finish is cut when the drain timeout runs out: bounded
    assert "result" not in stuck_outcome or stuck_outcome["result"].status_code >= 500
    assert exit_code == 0, daemon.output


@pytest.mark.slow  # over ~10 s (pytest --durations); deselect with -m "not slow"
def test_two_workers_serve_requests(tmp_path: Path) -> None:
    config = write_config(tmp_path, CONFIG)
    daemon = DaemonProcess(config, tmp_path / "routerd.log", "--workers", "2")
    try:
        daemon.wait_ready()
        responses = [post_chat(daemon.base_url, "fast") for _ in range(6)]  # a new connection each
        wait_for(
            lambda: len(set(re.findall(r"Started server process \[(\d+)\]", daemon.output))) == 2,
            timeout=60,
            what="two worker processes",
        )
        daemon.process.send_signal(signal.SIGTERM)
        exit_code = daemon.process.wait(timeout=60)
    finally:
        daemon.stop()

    assert [r.status_code for r in responses] == [200] * 6, daemon.output
    assert {r.json()["choices"][0]["message"]["content"] for r in responses} == {"fast answer"}
    assert exit_code == 0, daemon.output


@pytest.mark.slow  # over ~10 s (pytest --durations); deselect with -m "not slow"
def test_sighup_reloads_every_worker_in_place(tmp_path: Path) -> None:
    config = write_config(tmp_path, CONFIG)
    daemon = DaemonProcess(config, tmp_path / "routerd.log", "--workers", "2")  # --no-watch: only SIGHUP
    try:
        daemon.wait_ready()
        wait_for(
            lambda: len(set(re.findall(r"Started server process \[(\d+)\]", daemon.output))) == 2,
            timeout=60,
            what="two worker processes",
        )
        # a worker handles SIGHUP once its lifespan has started (the reload handler is installed there):
        # a signal sent before that ends the worker instead, which a loaded machine made happen
        wait_for(
            lambda: daemon.output.count("Application startup complete") == 2,
            timeout=60,
            what="both workers started",
        )
        config.write_text(
            CONFIG.replace(
                "router_settings:",
                "  - model_name: added\n    litellm_params: {model: mock/x, mock_response: added by SIGHUP}\n"
                "router_settings:",
            )
        )
        assert post_chat(daemon.base_url, "added").status_code == 404  # not watched: nothing yet
        daemon.process.send_signal(signal.SIGHUP)
        wait_for(
            lambda: daemon.output.count("reload (SIGHUP): generation 2") == 2,
            timeout=30,
            what="both workers reloading",
        )
        # every new connection may land on either worker: all of them answer the new group
        responses = [post_chat(daemon.base_url, "added") for _ in range(8)]
        workers = set(re.findall(r"Started server process \[(\d+)\]", daemon.output))
        daemon.process.send_signal(signal.SIGTERM)
        exit_code = daemon.process.wait(timeout=60)
    finally:
        daemon.stop()

    assert [r.status_code for r in responses] == [200] * 8, daemon.output
    assert {r.json()["choices"][0]["message"]["content"] for r in responses} == {"added by SIGHUP"}
    assert len(workers) == 2, "SIGHUP must reload the workers, not replace them"
    assert exit_code == 0, daemon.output
