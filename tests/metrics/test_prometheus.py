"""A real Prometheus server on loopback scrapes a real routerd, answers queries, and evaluates the alerts.

Prometheus comes from Debian's ``prometheus`` package; the fixture starts a private instance (free
port, temporary storage, 1 s scrape and evaluation intervals) and kills it afterwards.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from routerd.testing.server import RouterdServer, free_port
from routerd.testing.wait import wait_for

from .conftest import require_binary
from .test_server import CONFIG, KEY, _require_wiring

ALERTS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yml"


class Prometheus:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def query(self, expr: str) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.base_url}/api/v1/query", params={"query": expr}, timeout=10)
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()["data"]["result"]
        return result

    def scalar(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def alerts(self) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.base_url}/api/v1/alerts", timeout=10)
        response.raise_for_status()
        alerts: list[dict[str, Any]] = response.json()["data"]["alerts"]
        return alerts

    def rules(self) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.base_url}/api/v1/rules", timeout=10)
        response.raise_for_status()
        return [rule for group in response.json()["data"]["groups"] for rule in group["rules"]]


@pytest.fixture
def routerd(tmp_path: Path) -> Iterator[RouterdServer]:
    _require_wiring()
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    with RouterdServer.from_file(config) as server:
        yield server


@pytest.fixture
def prometheus(routerd: RouterdServer, tmp_path: Path) -> Iterator[Prometheus]:
    binary = require_binary("prometheus")
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n"
        "  scrape_interval: 1s\n"
        "  scrape_timeout: 1s\n"
        "  evaluation_interval: 1s\n"
        f"rule_files: ['{ALERTS}']\n"
        "scrape_configs:\n"
        "  - job_name: routerd\n"
        f"    authorization: {{credentials: {KEY['authorization'].split()[1]}}}\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{routerd.port}']}}]\n"
    )
    log_path = tmp_path / "prometheus.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"prometheus exited ({process.returncode}):\n{log_path.read_text()}")
        try:
            return httpx.get(f"{base_url}/-/ready", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(ready, "prometheus to start", timeout=60, interval=0.2)
        yield Prometheus(base_url)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)


def chat(server: RouterdServer, model: str) -> int:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    return httpx.post(
        f"{server.base_url}/v1/chat/completions", json=body, headers=KEY, timeout=30
    ).status_code


def test_prometheus_scrapes_routerd_and_answers_a_query_for_the_request_counter(
    routerd: RouterdServer, prometheus: Prometheus
) -> None:
    assert [chat(routerd, "chat") for _ in range(5)] == [200] * 5
    query = 'sum(routerd_requests_total{job="routerd", model_group="chat", status="200"})'
    wait_for(
        lambda: prometheus.scalar(query) == 5, "the request counter to reach 5", timeout=60, interval=0.2
    )
    assert prometheus.scalar('up{job="routerd"}') == 1


def test_prometheus_evaluates_the_alert_rules_on_routerds_metrics(
    routerd: RouterdServer, prometheus: Prometheus
) -> None:
    assert chat(routerd, "broken") >= 500  # the deployment cools down (allowed_fails: 0)

    def cooling_down_alert() -> list[dict[str, Any]]:
        return [
            alert
            for alert in prometheus.alerts()
            if alert["labels"]["alertname"] == "RouterdDeploymentCoolingDown"
            and alert["labels"].get("deployment") == "bad"
        ]

    (alert,) = wait_for(cooling_down_alert, "the cooling-down alert", timeout=60, interval=0.2)
    assert alert["state"] in {"pending", "firing"}  # it fires after its 'for' period
    assert alert["labels"]["model_group"] == "broken"

    rules = wait_for(
        lambda: [r for r in prometheus.rules() if r.get("lastEvaluation", "").startswith("2")],
        "rules",
        timeout=60,
        interval=0.2,
    )
    assert all(rule["health"] == "ok" for rule in rules), [(r["name"], r.get("lastError")) for r in rules]
