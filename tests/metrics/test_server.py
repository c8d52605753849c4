"""/metrics on the real daemon (uvicorn on loopback, the mock provider): metrics move with real traffic.

These need ``create_app`` to wire ``metrics_routes(state)`` and ``metrics_lifespan`` (routerd/server/app.py).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from routerd.testing.server import RouterdServer, free_port
from routerd.testing.wait import wait_for

from .conftest import require_binary

GROUPS = """
model_list:
  - model_name: chat
    litellm_params:
      model: mock/gpt-4o-mini
      mock_response: "hello there"
    model_info:
      id: good
      input_cost_per_token: 0.000001
      output_cost_per_token: 0.000002
  - model_name: slow
    litellm_params:
      model: mock/gpt-4o-mini
      mock_response: "one two three four five six"
      mock_stream_chunk_delay_ms: 120000 # the first chunk at once, the next one far beyond the test
    model_info:
      id: slow
  - model_name: private
    litellm_params:
      model: mock/our-private-model
      mock_response: "no price known"
    model_info:
      id: unpriced
"""
BROKEN_GROUP = """
  - model_name: broken
    litellm_params:
      model: mock/broken-model
      mock_error_status: 500
    model_info:
      id: bad
"""
SETTINGS = """
router_settings:
  num_retries: 0
  allowed_fails: 0
  cooldown_time: 600
general_settings:
  master_key: sk-test-master
"""
CONFIG = GROUPS + BROKEN_GROUP + SETTINGS
KEY = {"authorization": "Bearer sk-test-master"}


def _require_wiring() -> None:
    from routerd.server import app
    from routerd.server.metrics_routes import metrics_lifespan

    if metrics_lifespan not in app.lifespan_hooks():
        pytest.fail(
            "routerd.server.app does not wire metrics: add metrics_routes(state) to create_app's routes "
            "and metrics_lifespan to lifespan_hooks() (see routerd/server/metrics_routes.py)"
        )


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG)
    return path


@pytest.fixture
def server(config: Path) -> Iterator[RouterdServer]:
    _require_wiring()
    with RouterdServer.from_file(config) as running:
        yield running


def scrape(url: str, **headers: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    # /metrics on the main port needs the master key when one is set (the separate port does not)
    response = httpx.get(url, headers={**KEY, **headers}, timeout=30)
    assert response.status_code == 200, response.text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def chat(server: RouterdServer, model: str, **extra: Any) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}
    return httpx.post(f"{server.base_url}/v1/chat/completions", json=body, headers=KEY, timeout=30)


GOOD = {"model_group": "chat", "deployment": "good", "provider": "mock"}
BAD = {"model_group": "broken", "deployment": "bad", "provider": "mock"}


def test_requests_tokens_and_cost_move_with_traffic(server: RouterdServer) -> None:
    before = scrape(f"{server.base_url}/metrics")
    # every served deployment is listed, healthy, before its first call
    assert value(before, "routerd_deployment_state", **GOOD, state="healthy") == 1
    assert value(before, "routerd_deployment_state", **BAD, state="healthy") == 1
    assert value(before, "routerd_requests_total", **GOOD, endpoint="chat", status="200") is None

    usages = [chat(server, "chat").json()["usage"] for _ in range(3)]
    after = scrape(f"{server.base_url}/metrics")
    assert value(after, "routerd_requests_total", **GOOD, endpoint="chat", status="200") == 3
    assert value(after, "routerd_upstream_requests_total", **GOOD, endpoint="chat", status="200") == 3
    prompt = sum(u["prompt_tokens"] for u in usages)
    completion = sum(u["completion_tokens"] for u in usages)
    assert value(after, "routerd_tokens_total", **GOOD, direction="input") == prompt
    assert value(after, "routerd_tokens_total", **GOOD, direction="output") == completion
    cost = value(after, "routerd_cost_usd_total", **GOOD)
    assert cost == pytest.approx(prompt * 1e-6 + completion * 2e-6)
    assert value(after, "routerd_request_duration_seconds_count", model_group="chat", endpoint="chat") == 3
    assert value(after, "routerd_overhead_duration_seconds_count", model_group="chat", endpoint="chat") == 3


def test_the_cost_header_and_unpriced_requests(server: RouterdServer) -> None:
    priced = chat(server, "chat")
    usage = priced.json()["usage"]
    expected = usage["prompt_tokens"] * 1e-6 + usage["completion_tokens"] * 2e-6
    assert float(priced.headers["x-routerd-response-cost"]) == pytest.approx(expected)

    unpriced = chat(server, "private")
    assert unpriced.status_code == 200
    assert "x-routerd-response-cost" not in unpriced.headers  # unknown, not free
    samples = scrape(f"{server.base_url}/metrics")
    private = {"model_group": "private", "deployment": "unpriced", "provider": "mock"}
    assert value(samples, "routerd_unpriced_requests_total", **private) == 1
    assert value(samples, "routerd_cost_usd_total", **private) is None


def test_an_upstream_failure_cools_the_deployment_down(server: RouterdServer) -> None:
    response = chat(server, "broken")
    assert response.status_code >= 500
    samples = scrape(f"{server.base_url}/metrics")
    assert value(samples, "routerd_upstream_requests_total", **BAD, endpoint="chat", status="500") == 1
    cooldowns = {
        dict(labels)["reason"]: v
        for (name, labels), v in samples.items()
        if name == "routerd_cooldowns_total" and dict(labels)["deployment"] == "bad"
    }
    assert list(cooldowns.values()) == [1]  # reason: the error class the upstream's 500 became
    assert value(samples, "routerd_deployment_state", **BAD, state="cooling_down") == 1
    assert value(samples, "routerd_deployment_state", **BAD, state="healthy") == 0
    remaining = value(samples, "routerd_deployment_cooldown_remaining_seconds", **BAD)
    assert remaining is not None and 0 < remaining <= 600
    status = str(response.status_code)
    assert value(samples, "routerd_requests_total", **BAD, endpoint="chat", status=status) == 1


def test_in_flight_counts_a_running_stream(server: RouterdServer) -> None:
    body = {"model": "slow", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    with (
        httpx.Client(timeout=30) as client,
        client.stream("POST", f"{server.base_url}/v1/chat/completions", json=body, headers=KEY) as stream,
    ):
        lines = stream.iter_lines()  # keep a reference: a discarded iterator closes the connection
        assert next(line for line in lines if line.startswith("data: "))
        # the second chunk is minutes away: the request is certainly still in flight
        during = scrape(f"{server.base_url}/metrics")
        assert value(during, "routerd_requests_in_flight", endpoint="chat") == 1
    # the client hung up; the server notices the disconnect and finishes the request (499)
    slow = {"model_group": "slow", "deployment": "slow", "provider": "mock", "endpoint": "chat"}

    def finished() -> dict[tuple[str, frozenset[tuple[str, str]]], float] | None:
        samples = scrape(f"{server.base_url}/metrics")
        return samples if value(samples, "routerd_requests_total", **slow, status="499") == 1 else None

    after = wait_for(finished, "the request to be counted", timeout=30)
    assert value(after, "routerd_requests_in_flight", endpoint="chat") == 0
    assert value(after, "routerd_time_to_first_token_seconds_count", **slow) == 1


def test_reloads_count_by_result_and_move_the_generation(server: RouterdServer, config: Path) -> None:
    start = scrape(f"{server.base_url}/metrics")
    assert value(start, "routerd_config_generation") == 1
    assert value(start, "routerd_config_last_reload_successful") == 1

    config.write_text(CONFIG.replace("model_list:", "model_list: [oops"))
    assert httpx.post(f"{server.base_url}/admin/reload", headers=KEY, timeout=30).status_code == 422
    failed = scrape(f"{server.base_url}/metrics")
    assert value(failed, "routerd_config_reloads_total", result="failure") == 1
    assert value(failed, "routerd_config_last_reload_successful") == 0
    assert value(failed, "routerd_config_generation") == 1

    # the broken group goes away: its deployment's series go with it
    config.write_text(GROUPS + SETTINGS)
    assert httpx.post(f"{server.base_url}/admin/reload", headers=KEY, timeout=30).status_code == 200
    reloaded = scrape(f"{server.base_url}/metrics")
    assert value(reloaded, "routerd_config_reloads_total", result="success") == 1
    assert value(reloaded, "routerd_config_generation") == 2
    assert value(reloaded, "routerd_config_last_reload_successful") == 1
    assert value(reloaded, "routerd_deployment_state", **BAD, state="healthy") is None
    assert value(reloaded, "routerd_deployment_state", **GOOD, state="healthy") == 1


def test_promtool_check_metrics_on_the_live_endpoint(server: RouterdServer) -> None:
    promtool = require_binary("promtool")
    chat(server, "chat")
    chat(server, "broken")
    body = httpx.get(f"{server.base_url}/metrics", headers=KEY, timeout=30).content
    result = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert not result.stdout.strip(), result.stdout.decode()


@pytest.mark.parametrize(("setting", "open_without_key"), [(None, False), (True, False), (False, True)])
def test_metrics_need_the_master_key_when_one_is_set_unless_opened(
    config: Path, setting: bool | None, open_without_key: bool
) -> None:
    _require_wiring()
    with RouterdServer.from_file(config, metrics_require_auth=setting) as server:
        anonymous = httpx.get(f"{server.base_url}/metrics", timeout=30).status_code
        assert anonymous == (200 if open_without_key else 401)
        assert httpx.get(f"{server.base_url}/metrics", headers=KEY, timeout=30).status_code == 200


def test_the_separate_metrics_port_is_open_by_default(config: Path) -> None:
    _require_wiring()
    port = free_port()
    with RouterdServer.from_file(config, metrics_port=port) as server:
        assert server.state.master_key is not None
        assert httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30).status_code == 200


def test_a_separate_metrics_port_serves_metrics_and_the_api_port_does_not(config: Path) -> None:
    _require_wiring()
    port = free_port()
    with RouterdServer.from_file(config, metrics_port=port) as server:
        assert httpx.get(f"{server.base_url}/metrics", timeout=30).status_code == 404
        chat(server, "chat")
        samples = scrape(f"http://127.0.0.1:{port}/metrics")
        assert value(samples, "routerd_requests_total", **GOOD, endpoint="chat", status="200") == 1
        assert server.state.metrics is not None and server.state.metrics.port == port
    with pytest.raises(httpx.ConnectError):  # stopped with the server
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)


def test_openmetrics_and_gzip_are_negotiated(server: RouterdServer) -> None:
    response = httpx.get(
        f"{server.base_url}/metrics",
        headers={**KEY, "accept": "application/openmetrics-text; version=1.0.0", "accept-encoding": "gzip"},
        timeout=30,
    )
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.headers["content-encoding"] == "gzip"
    assert response.text.rstrip().endswith("# EOF")  # httpx decompressed it


# uvicorn ends a failed startup with sys.exit() in the server's thread
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_metrics_port_in_use_fails_the_startup_clearly(
    config: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(RuntimeError, match="failed to start"):
            RouterdServer.from_file(config, metrics_port=port).start()
    assert f"cannot serve metrics on 127.0.0.1:{port}" in caplog.text


def test_a_failing_health_report_does_not_fail_the_scrape(
    server: RouterdServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> dict[str, Any]:
        raise RuntimeError("health store unavailable")

    assert server.state.metrics is not None
    monkeypatch.setattr(server.state.metrics, "_health_report", broken)
    chat(server, "chat")
    samples = scrape(f"{server.base_url}/metrics")
    assert value(samples, "routerd_requests_total", **GOOD, endpoint="chat", status="200") == 1
    assert "refreshing deployment metrics failed" in caplog.text
