"""deploy/prometheus: the scrape config and alert rules are valid, tested, and name real metrics."""

from __future__ import annotations

import subprocess

from .conftest import DEPLOY, exported_sample_names, load_yaml, metric_names, require_binary

PROMETHEUS = DEPLOY / "prometheus"


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = require_binary("promtool")
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=120, check=False)


def test_promtool_check_rules() -> None:
    result = _promtool("check", "rules", str(PROMETHEUS / "alerts.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_config() -> None:
    result = _promtool("check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_unit_tests_pass() -> None:
    # alerts.test.yml feeds series through every rule and checks the labels and rendered annotations
    result = _promtool("test", "rules", str(PROMETHEUS / "alerts.test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_unit_test() -> None:
    alerts = {
        rule["alert"] for group in load_yaml(PROMETHEUS / "alerts.yml")["groups"] for rule in group["rules"]
    }
    tested = {
        case["alertname"]
        for test in load_yaml(PROMETHEUS / "alerts.test.yml")["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert alerts == tested
    assert {"RouterdDeploymentCoolingDown", "RouterdHighErrorRate", "RouterdConfigReloadFailing"} <= alerts


def test_alert_rules_reference_metrics_routerd_exports() -> None:
    known = exported_sample_names()
    for group in load_yaml(PROMETHEUS / "alerts.yml")["groups"]:
        for rule in group["rules"]:
            text = rule["expr"] + " ".join(rule.get("annotations", {}).values())
            assert metric_names(text) <= known, (rule["alert"], metric_names(text) - known)


def test_scrape_target_is_the_compose_service() -> None:
    compose = load_yaml(DEPLOY / "compose.yaml")
    config = load_yaml(PROMETHEUS / "prometheus.yml")
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "routerd"]
    targets = job["static_configs"][0]["targets"]
    assert targets
    for target in targets:  # every routerd replica of the stack
        host, port = target.split(":")
        assert host in compose["services"]
        assert compose["services"][host]["environment"]["ROUTERD_PORT"] == port
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert (PROMETHEUS / config["rule_files"][0].split()[0]).is_file()
