"""Each metric moves when its event happens: events in through the bus, samples read from the registry."""

from __future__ import annotations

import math
import time

import pytest

from routerd.config.table import Deployment, ModelInfo
from routerd.events import (
    AttemptFinished,
    ConfigReloaded,
    CooldownStarted,
    DeploymentStateChanged,
    FallbackTaken,
    RequestFinished,
    RequestStarted,
    RetryScheduled,
)
from routerd.metrics import OVERFLOW, MetricsRuntime
from routerd.testing import FakeClock

from .conftest import Rig

DEP = {"model_group": "gpt-4o", "deployment": "dep-a", "provider": "openai"}


def finished(**overrides: object) -> RequestFinished:
    fields: dict[str, object] = {
        "request_id": "r1",
        "endpoint": "chat",
        "model": "gpt-4o",
        "group": "gpt-4o",
        "deployment_id": "dep-a",
        "provider": "openai",
        "status": 200,
        "stream": False,
        "attempts": 1,
        "retries": 0,
        "fallbacks": 0,
        "latency": 0.5,
        "upstream_latency": 0.45,
    }
    fields.update(overrides)
    return RequestFinished(**fields)  # type: ignore[arg-type]


def attempt(**overrides: object) -> AttemptFinished:
    fields: dict[str, object] = {
        "request_id": "r1",
        "group": "gpt-4o",
        "deployment_id": "dep-a",
        "provider": "openai",
        "endpoint": "chat",
        "stream": False,
        "ok": True,
        "status": 200,
        "error": None,
        "latency": 0.3,
    }
    fields.update(overrides)
    return AttemptFinished(**fields)  # type: ignore[arg-type]


def report(*entries: tuple[str, str, float]) -> dict[str, object]:
    """A health_report(router)-shaped dict: (id, state, cooldown_remaining) per deployment."""
    return {
        "deployments": [
            {
                "id": i,
                "group": "gpt-4o",
                "provider": "openai",
                "state": s,
                "cooldown_remaining": r,
                "in_flight": 0,
            }
            for i, s, r in entries
        ]
    }


# --- requests -------------------------------------------------------------------------------------


def test_a_request_counts_by_group_deployment_provider_endpoint_and_status(rig: Rig) -> None:
    rig.emit(finished(), finished(request_id="r2"), finished(request_id="r3", status=503))
    assert rig.value("routerd_requests_total", **DEP, endpoint="chat", status="200") == 2
    assert rig.value("routerd_requests_total", **DEP, endpoint="chat", status="503") == 1
    assert rig.value("routerd_request_duration_seconds_count", model_group="gpt-4o", endpoint="chat") == 3
    assert rig.value("routerd_request_duration_seconds_sum", model_group="gpt-4o", endpoint="chat") == 1.5


def test_overhead_is_request_latency_minus_upstream_latency(rig: Rig) -> None:
    rig.emit(finished(latency=0.5, upstream_latency=0.4995))
    total = rig.value("routerd_overhead_duration_seconds_sum", model_group="gpt-4o", endpoint="chat")
    assert total is not None and math.isclose(total, 0.0005, abs_tol=1e-12)
    # it falls in the 1 ms bucket, not the 250 us one
    le = {"model_group": "gpt-4o", "endpoint": "chat"}
    assert rig.value("routerd_overhead_duration_seconds_bucket", **le, le="0.00025") == 0
    assert rig.value("routerd_overhead_duration_seconds_bucket", **le, le="0.001") == 1


def test_overhead_never_goes_negative(rig: Rig) -> None:
    rig.emit(finished(latency=0.1, upstream_latency=0.2))  # clocks of different resolution
    assert rig.value("routerd_overhead_duration_seconds_sum", model_group="gpt-4o", endpoint="chat") == 0.0


def test_time_to_first_token_only_for_streams(rig: Rig) -> None:
    rig.emit(finished())
    assert rig.value("routerd_time_to_first_token_seconds_count", **DEP, endpoint="chat") is None
    rig.emit(finished(stream=True, ttft=0.2))
    assert rig.value("routerd_time_to_first_token_seconds_count", **DEP, endpoint="chat") == 1
    assert rig.value("routerd_time_to_first_token_seconds_sum", **DEP, endpoint="chat") == 0.2


def test_tokens_in_and_out(rig: Rig) -> None:
    rig.emit(finished(prompt_tokens=12, completion_tokens=30), finished(prompt_tokens=8, completion_tokens=0))
    assert rig.value("routerd_tokens_total", **DEP, direction="input") == 20
    assert rig.value("routerd_tokens_total", **DEP, direction="output") == 30


def test_cost_from_the_event(rig: Rig) -> None:
    rig.emit(finished(prompt_tokens=10, completion_tokens=10, cost=0.25), finished(prompt_tokens=1, cost=0.5))
    assert rig.value("routerd_cost_usd_total", **DEP) == 0.75


def test_cost_computed_when_the_event_has_none(fake_clock: FakeClock) -> None:
    dep = Deployment(
        id="dep-a",
        group="gpt-4o",
        provider="openai",
        model="gpt-4o",
        litellm_model="openai/gpt-4o",
        info=ModelInfo(input_cost_per_token=1e-6, output_cost_per_token=2e-6),
    )
    runtime = MetricsRuntime(clock=fake_clock, deployment={"dep-a": dep}.get, process_metrics=False)
    runtime.recorder(finished(prompt_tokens=1000, completion_tokens=500))
    cost = runtime.registry.get_sample_value("routerd_cost_usd_total", DEP)
    assert cost is not None and math.isclose(cost, 1000 * 1e-6 + 500 * 2e-6)


def test_unknown_price_counts_as_unpriced_not_free(rig: Rig) -> None:
    rig.emit(finished(prompt_tokens=10, completion_tokens=10, cost=None))
    assert rig.value("routerd_unpriced_requests_total", **DEP) == 1
    assert rig.value("routerd_cost_usd_total", **DEP) is None
    rig.emit(finished(status=401, prompt_tokens=0, completion_tokens=0))  # no usage: nothing to price
    assert rig.value("routerd_unpriced_requests_total", **DEP) == 1


def test_in_flight_follows_started_and_finished(rig: Rig) -> None:
    rig.emit(RequestStarted("a", "chat"), RequestStarted("b", "chat"), RequestStarted("c", "embeddings"))
    assert rig.value("routerd_requests_in_flight", endpoint="chat") == 2
    assert rig.value("routerd_requests_in_flight", endpoint="embeddings") == 1
    rig.emit(finished(request_id="a"))
    assert rig.value("routerd_requests_in_flight", endpoint="chat") == 1


def test_in_flight_ignores_finishes_without_a_start_and_duplicate_ids(rig: Rig) -> None:
    rig.emit(finished(request_id="sdk-call"))  # the SDK reports finishes only
    assert rig.value("routerd_requests_in_flight", endpoint="chat") is None
    # a client reusing its x-request-id for two concurrent requests
    rig.emit(RequestStarted("same", "chat"), RequestStarted("same", "chat"))
    rig.emit(finished(request_id="same"), finished(request_id="same"), finished(request_id="same"))
    assert rig.value("routerd_requests_in_flight", endpoint="chat") == 0


# --- upstream calls -------------------------------------------------------------------------------


def test_every_attempt_counts_with_the_upstream_status(rig: Rig) -> None:
    rig.emit(attempt(ok=False, status=500, error="InternalServerError", latency=1.0), attempt())
    assert rig.value("routerd_upstream_requests_total", **DEP, endpoint="chat", status="500") == 1
    assert rig.value("routerd_upstream_requests_total", **DEP, endpoint="chat", status="200") == 1
    assert rig.value("routerd_upstream_duration_seconds_count", **DEP, endpoint="chat") == 2
    assert rig.value("routerd_upstream_duration_seconds_sum", **DEP, endpoint="chat") == 1.3


def test_rate_limit_headroom_from_upstream_headers(rig: Rig) -> None:
    rig.emit(
        attempt(
            upstream_headers={
                "x-ratelimit-remaining-requests": "499",
                "x-ratelimit-remaining-tokens": "29000",
            }
        )
    )
    assert rig.value("routerd_upstream_ratelimit_remaining_requests", **DEP) == 499
    assert rig.value("routerd_upstream_ratelimit_remaining_tokens", **DEP) == 29000
    rig.emit(attempt(upstream_headers={"x-ratelimit-remaining-requests": "498"}))
    assert rig.value("routerd_upstream_ratelimit_remaining_requests", **DEP) == 498
    assert rig.value("routerd_upstream_ratelimit_remaining_tokens", **DEP) == 29000  # last known


def test_anthropic_rate_limit_headers_and_garbage(rig: Rig) -> None:
    rig.emit(attempt(upstream_headers={"anthropic-ratelimit-tokens-remaining": "80000"}))
    assert rig.value("routerd_upstream_ratelimit_remaining_tokens", **DEP) == 80000
    rig.emit(attempt(upstream_headers={"x-ratelimit-remaining-requests": "lots"}))
    assert rig.value("routerd_upstream_ratelimit_remaining_requests", **DEP) is None


# --- recovery -------------------------------------------------------------------------------------


def test_a_retry_increments_retries(rig: Rig) -> None:
    assert (
        rig.value("routerd_retries_total", model_group="gpt-4o", deployment="dep-a", error="RateLimitError")
        is None
    )
    rig.emit(RetryScheduled("gpt-4o", "dep-a", "RateLimitError", 0.5))
    rig.emit(RetryScheduled("gpt-4o", "dep-a", "RateLimitError", 0.0))
    assert (
        rig.value("routerd_retries_total", model_group="gpt-4o", deployment="dep-a", error="RateLimitError")
        == 2
    )


def test_a_fallback_counts_from_to_and_result(rig: Rig) -> None:
    rig.emit(FallbackTaken("gpt-4o", "claude-3-5-haiku", "error", "success"))
    rig.emit(FallbackTaken("gpt-4o", "claude-3-5-haiku", "error", "failure"))
    labels = {"from_group": "gpt-4o", "to_group": "claude-3-5-haiku", "reason": "error"}
    assert rig.value("routerd_fallbacks_total", **labels, result="success") == 1
    assert rig.value("routerd_fallbacks_total", **labels, result="failure") == 1


def test_a_cooldown_flips_the_state_gauge_and_counts_its_reason(rig: Rig) -> None:
    rig.runtime.recorder.apply_health_report(report(("dep-a", "healthy", 0.0)))
    assert rig.value("routerd_deployment_state", **DEP, state="healthy") == 1
    assert rig.value("routerd_deployment_state", **DEP, state="cooling_down") == 0

    rig.emit(CooldownStarted("dep-a", "gpt-4o", "openai", "RateLimitError", 30.0, 1030.0))
    assert rig.value("routerd_cooldowns_total", **DEP, reason="RateLimitError") == 1
    assert rig.value("routerd_deployment_state", **DEP, state="healthy") == 0
    assert rig.value("routerd_deployment_state", **DEP, state="cooling_down") == 1
    assert rig.value("routerd_deployment_cooldown_remaining_seconds", **DEP) == 30.0

    rig.clock.advance(12)
    rig.runtime.recorder.refresh()
    assert rig.value("routerd_deployment_cooldown_remaining_seconds", **DEP) == 18.0


def test_an_expired_cooldown_reads_half_open_then_healthy(rig: Rig) -> None:
    rig.emit(CooldownStarted("dep-a", "gpt-4o", "openai", "Timeout", 10.0, 1010.0))
    rig.clock.advance(10)
    rig.runtime.recorder.refresh()  # the router makes this transition by time alone, without an event
    assert rig.value("routerd_deployment_state", **DEP, state="half_open") == 1
    assert rig.value("routerd_deployment_state", **DEP, state="cooling_down") == 0
    assert rig.value("routerd_deployment_cooldown_remaining_seconds", **DEP) == 0
    rig.emit(DeploymentStateChanged("dep-a", "gpt-4o", "openai", "healthy"))
    assert rig.value("routerd_deployment_state", **DEP, state="healthy") == 1
    assert rig.value("routerd_deployment_state", **DEP, state="half_open") == 0


def test_a_cooldown_deadline_only_moves_later(rig: Rig) -> None:
    rig.emit(CooldownStarted("dep-a", "gpt-4o", "openai", "RateLimitError", 60.0, 1060.0))
    rig.emit(CooldownStarted("dep-a", "gpt-4o", "openai", "RateLimitError", 5.0, 1005.0))
    assert rig.value("routerd_deployment_cooldown_remaining_seconds", **DEP) == 60.0
    assert rig.value("routerd_cooldowns_total", **DEP, reason="RateLimitError") == 2


def test_the_health_report_is_authoritative_and_retires_removed_deployments(rig: Rig) -> None:
    recorder = rig.runtime.recorder
    recorder.apply_health_report(report(("dep-a", "cooling_down", 20.0), ("dep-b", "healthy", 0.0)))
    assert rig.value("routerd_deployment_state", **DEP, state="cooling_down") == 1
    assert rig.value("routerd_deployment_cooldown_remaining_seconds", **DEP) == 20.0
    dep_b = {**DEP, "deployment": "dep-b"}
    assert rig.value("routerd_deployment_state", **dep_b, state="healthy") == 1
    # a reload removed dep-a while it was cooling down: its series go, so no alert keeps firing
    recorder.apply_health_report(report(("dep-b", "half_open", 0.0)))
    assert rig.value("routerd_deployment_state", **DEP, state="cooling_down") is None
    assert rig.value("routerd_deployment_cooldown_remaining_seconds", **DEP) is None
    assert rig.value("routerd_deployment_state", **dep_b, state="half_open") == 1
    assert recorder.deployment_states() == {"dep-b": "half_open"}


def test_the_health_report_exports_in_flight_per_deployment(rig: Rig) -> None:
    entry = {"id": "dep-a", "group": "gpt-4o", "provider": "openai", "state": "healthy", "in_flight": 3}
    rig.runtime.recorder.apply_health_report({"deployments": [entry]})
    assert rig.value("routerd_deployment_in_flight", **DEP) == 3


def test_a_malformed_health_report_is_tolerated(rig: Rig) -> None:
    recorder = rig.runtime.recorder
    recorder.apply_health_report(report(("dep-a", "healthy", 0.0)))
    recorder.apply_health_report({"deployments": "nope"})  # not a report: ignored whole
    assert recorder.deployment_states() == {"dep-a": "healthy"}
    recorder.apply_health_report(
        {
            "deployments": [
                {"id": 3},
                "x",
                {"id": "dep-a", "state": "exploded"},
                {"id": "dep-b", "state": "healthy"},
            ]
        }
    )
    # entries that are not deployments are skipped; the valid one is adopted
    assert recorder.deployment_states() == {"dep-b": "healthy"}


# --- configuration --------------------------------------------------------------------------------


def test_a_failed_reload_increments_the_failure_counter(rig: Rig) -> None:
    rig.runtime.recorder.set_config(1, 1_700_000_000.0, True)
    rig.emit(ConfigReloaded("failure", 1, "abc", time.time(), "config.yaml:3:5: bad"))
    assert rig.value("routerd_config_reloads_total", result="failure") == 1
    assert rig.value("routerd_config_last_reload_successful") == 0
    assert rig.value("routerd_config_generation") == 1  # the old table keeps serving
    assert rig.value("routerd_config_last_reload_success_timestamp_seconds") == 1_700_000_000.0


def test_a_successful_reload_moves_generation_and_timestamp_and_resyncs(rig: Rig) -> None:
    calls: list[int] = []
    rig.runtime.recorder.on_reloaded(lambda: calls.append(1))
    rig.emit(ConfigReloaded("success", 2, "def", 1_700_000_100.0))
    assert rig.value("routerd_config_reloads_total", result="success") == 1
    assert rig.value("routerd_config_generation") == 2
    assert rig.value("routerd_config_last_reload_success_timestamp_seconds") == 1_700_000_100.0
    assert rig.value("routerd_config_last_reload_successful") == 1
    assert calls == [1]


def test_build_info(rig: Rig) -> None:
    import platform

    from routerd import __version__

    assert rig.value("routerd_build_info", version=__version__, python=platform.python_version()) == 1


# --- cardinality and robustness -------------------------------------------------------------------


def test_label_values_are_bounded(fake_clock: FakeClock) -> None:
    runtime = MetricsRuntime(clock=fake_clock, process_metrics=False, max_label_values=3)
    recorder = runtime.recorder
    for i in range(10):  # a wildcard group turns client-chosen model names into groups and ids
        recorder(finished(request_id=str(i), group=f"anthropic/m{i}", deployment_id=f"w:m{i}"))
    groups = {
        s.labels["model_group"]
        for metric in runtime.registry.collect()
        if metric.name == "routerd_requests"
        for s in metric.samples
    }
    assert groups == {"anthropic/m0", "anthropic/m1", "anthropic/m2", OVERFLOW}
    assert (
        runtime.registry.get_sample_value(
            "routerd_requests_total",
            {
                "model_group": OVERFLOW,
                "deployment": OVERFLOW,
                "provider": "openai",
                "endpoint": "chat",
                "status": "200",
            },
        )
        == 7
    )
    assert len(recorder._requests) == 4  # the cache is bounded too


def test_other_events_are_ignored(rig: Rig) -> None:
    rig.emit(object(), "text", None)
    assert rig.value("routerd_requests_total", **DEP, endpoint="chat", status="200") is None


@pytest.mark.parametrize("status", [200, 499, 999])
def test_status_labels_are_codes(rig: Rig, status: int) -> None:
    rig.emit(finished(status=status))
    assert rig.value("routerd_requests_total", **DEP, endpoint="chat", status=str(status)) == 1


def test_every_declared_key_has_its_own_spend_series(rig: Rig) -> None:
    # more keys than the small budget of error names (500): none is folded into __other__
    for i in range(600):
        rig.emit(finished(request_id=f"r{i}", key_alias=f"key-{i:04d}", team=f"team-{i % 50}", cost=0.5))
    rig.emit(finished(request_id="again", key_alias="key-0599", team="team-49", cost=0.25, prompt_tokens=7))
    assert rig.value("routerd_key_spend_usd_total", key_alias="key-0000", team="team-0") == 0.5
    assert rig.value("routerd_key_spend_usd_total", key_alias="key-0599", team="team-49") == 0.75
    assert rig.value("routerd_key_tokens_total", key_alias="key-0599", team="team-49", direction="input") == 7
    assert rig.value("routerd_key_spend_usd_total", key_alias=OVERFLOW, team="team-49") is None


def test_key_labels_past_their_budget_fold_into_other(fake_clock: FakeClock) -> None:
    runtime = MetricsRuntime(clock=fake_clock.monotonic, process_metrics=False, max_label_values=3)
    for i in range(3):
        runtime.recorder(finished(request_id=f"r{i}", key_alias=f"k{i}", team="t", cost=1.0))
    value = runtime.registry.get_sample_value
    assert value("routerd_key_spend_usd_total", {"key_alias": "k1", "team": "t"}) == 1.0
    assert value("routerd_key_spend_usd_total", {"key_alias": OVERFLOW, "team": "t"}) == 1.0  # k2: 4th value


def test_guardrail_series_per_action_and_mode_and_folded_names(rig: Rig) -> None:
    """Each (guardrail, action, mode) counts on its own series however often it recurs (the children are
    looked up once and kept); names past the small label budget fold into __other__ and keep no entry."""
    from routerd.guardrails.engine import GuardrailRun

    runs = (
        GuardrailRun("pii", "pre_call", "mask", 0.001),
        GuardrailRun("pii", "post_call", "allow", 0.002),
        GuardrailRun("tox", "pre_call", "allow", 0.004),
    )
    for i in range(3):
        rig.emit(finished(request_id=f"r{i}", guardrails=runs))
    rig.emit(finished(request_id="b", guardrails=(GuardrailRun("pii", "pre_call", "block", 0.001),)))
    actions = "routerd_guardrail_actions_total"
    assert rig.value(actions, guardrail="pii", action="mask", mode="pre_call") == 3
    assert rig.value(actions, guardrail="pii", action="block", mode="pre_call") == 1
    assert rig.value(actions, guardrail="pii", action="allow", mode="post_call") == 3
    assert rig.value(actions, guardrail="tox", action="allow", mode="pre_call") == 3
    assert rig.value(actions, guardrail="pii", action="allow", mode="pre_call") is None
    duration = "routerd_guardrail_duration_seconds_count"
    assert rig.value(duration, guardrail="pii", mode="pre_call") == 4
    assert rig.value(
        "routerd_guardrail_duration_seconds_sum", guardrail="tox", mode="pre_call"
    ) == pytest.approx(0.012)
    for i in range(600):  # more names than the small budget (500, shared with error names)
        rig.emit(finished(request_id=f"n{i}", guardrails=(GuardrailRun(f"g{i}", "pre_call", "allow", 0.0),)))
    assert rig.value(actions, guardrail=OVERFLOW, action="allow", mode="pre_call") >= 100
    series = rig.runtime.recorder._guardrail_series
    assert ("g599", "allow", "pre_call") not in series and len(series) < 510  # folded names keep no entry
