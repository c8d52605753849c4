"""The /metrics body: valid for promtool, OpenMetrics on request, gzip when accepted, every family present."""

from __future__ import annotations

import gzip
import subprocess

from prometheus_client.parser import text_string_to_metric_families

from routerd.events import (
    AttemptFinished,
    ConfigReloaded,
    CooldownStarted,
    FallbackTaken,
    RequestFinished,
    RequestStarted,
    RetryScheduled,
)
from routerd.guardrails.engine import GuardrailRun
from routerd.metrics import MetricsRuntime
from routerd.state import StateStatus

from .conftest import Rig

# Every family routerd defines (the docs and the dashboard are checked against this list too).
FAMILIES = {
    "routerd_requests",
    "routerd_state_backend_up",
    "routerd_state_mode",
    "routerd_request_duration_seconds",
    "routerd_overhead_duration_seconds",
    "routerd_time_to_first_token_seconds",
    "routerd_tokens",
    "routerd_cost_usd",
    "routerd_unpriced_requests",
    "routerd_requests_in_flight",
    "routerd_upstream_requests",
    "routerd_upstream_duration_seconds",
    "routerd_upstream_ratelimit_remaining_requests",
    "routerd_upstream_ratelimit_remaining_tokens",
    "routerd_retries",
    "routerd_fallbacks",
    "routerd_cooldowns",
    "routerd_deployment_state",
    "routerd_deployment_cooldown_remaining_seconds",
    "routerd_deployment_in_flight",
    "routerd_config_reloads",
    "routerd_config_generation",
    "routerd_config_last_reload_success_timestamp_seconds",
    "routerd_config_last_reload_successful",
    "routerd_build_info",
    "routerd_key_spend_usd",
    "routerd_key_tokens",
    "routerd_guardrail_actions",
    "routerd_guardrail_duration_seconds",
    "routerd_cache_requests",
    "routerd_cache_saved_usd",
    "routerd_cache_evictions",
}


def exercise(rig: Rig) -> None:
    """One event of every kind, so every family has samples."""
    headers = {"x-ratelimit-remaining-requests": "99", "x-ratelimit-remaining-tokens": "9000"}
    rig.emit(
        RequestStarted("r1", "chat"),
        AttemptFinished("r1", "g", "d1", "openai", "chat", False, False, 429, "RateLimitError", 0.1),
        RetryScheduled("g", "d1", "RateLimitError", 0.0),
        CooldownStarted("d1", "g", "openai", "RateLimitError", 30.0, 1030.0),
        AttemptFinished("r1", "g", "d2", "openai", "chat", True, True, 200, None, 0.4, 0.05, 10, 20, headers),
        FallbackTaken("g", "h", "error", "success"),
        RequestFinished(
            "r1", "chat", "g", "g", "d2", "openai", 200, True, 2, 1, 0, 0.6, 0.5, 0.05, 10, 20, 0.0001
        ),
        RequestFinished("r2", "chat", "g", "g", "d2", "openai", 200, False, 1, 0, 0, 0.2, 0.1, None, 5, 5),
        RequestFinished(
            "r3",
            "chat",
            "g",
            "g",
            "d2",
            "openai",
            200,
            False,
            1,
            0,
            0,
            0.2,
            0.1,
            None,
            5,
            5,
            0.0,
            key_alias="alpha",
            team="search",
            cache="hit",
            saved_cost=0.002,
            guardrails=(GuardrailRun("pii", "pre_call", "mask", 0.0001),),
        ),
        ConfigReloaded("failure", 1, "abc", 1_700_000_000.0, "bad"),
    )
    rig.runtime.set_state(StateStatus("redis 127.0.0.1:6379/0", "local", False, 2))
    rig.runtime.recorder.apply_health_report(
        {
            "deployments": [
                {"id": "d1", "group": "g", "provider": "openai", "state": "healthy", "in_flight": 1}
            ]
        }
    )


def family_names(body: bytes) -> set[str]:
    return {family.name for family in text_string_to_metric_families(body.decode())}


def test_every_family_is_exported(rig: Rig) -> None:
    exercise(rig)
    body, headers = rig.runtime.render()
    assert headers["content-type"].startswith("text/plain")
    assert family_names(body) >= FAMILIES
    assert {name for name in family_names(body) if name.startswith("routerd_")} == FAMILIES


def test_promtool_check_metrics_accepts_the_output(rig: Rig, promtool: str) -> None:
    exercise(rig)
    body, _ = rig.runtime.render()
    result = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert not result.stdout.strip(), result.stdout.decode()  # no lint complaints either


def test_openmetrics_when_asked(rig: Rig) -> None:
    exercise(rig)
    body, headers = rig.runtime.render("application/openmetrics-text; version=1.0.0,text/plain;q=0.5")
    assert headers["content-type"].startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")


def test_gzip_when_accepted(rig: Rig) -> None:
    exercise(rig)
    plain, _ = rig.runtime.render()
    zipped, headers = rig.runtime.render(None, "gzip, deflate")
    assert headers["content-encoding"] == "gzip"
    assert family_names(gzip.decompress(zipped)) == family_names(plain)


def test_process_metrics_on_a_private_registry() -> None:
    runtime = MetricsRuntime()
    body, _ = runtime.render()
    names = family_names(body)
    assert "routerd_build_info" in names
    assert "python_info" in names  # platform collector, on this runtime's own registry
    assert "routerd_build_info" not in family_names(__import__("prometheus_client").generate_latest())


def test_state_gauges_show_the_backend_and_the_active_mode(rig: Rig) -> None:
    rig.runtime.set_state(StateStatus("redis 127.0.0.1:6379/0", "local", False, 2))
    body, _ = rig.runtime.render()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
        if s.name.startswith("routerd_state_")
    }
    assert samples[("routerd_state_backend_up", (("backend", "redis"),))] == 0
    assert samples[("routerd_state_mode", (("mode", "local"),))] == 1
    assert samples[("routerd_state_mode", (("mode", "shared"),))] == 0
    rig.runtime.set_state(StateStatus("redis 127.0.0.1:6379/0", "shared", True, 1))
    body, _ = rig.runtime.render()
    assert 'routerd_state_backend_up{backend="redis"} 1.0' in body.decode()
    assert 'routerd_state_mode{mode="shared"} 1.0' in body.decode()
