"""The executor against a scripted adapter on a fake clock: no sockets, no sleeps."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest

from routerd.config.table import RouterPolicy
from routerd.errors import (
    AuthenticationError,
    BadRequestError,
    ContextWindowExceededError,
    InternalServerError,
    NotFoundError,
    OpenAIError,
    RateLimitError,
    ServiceUnavailableError,
    Timeout,
)
from routerd.events import (
    AttemptFinished,
    CooldownStarted,
    DeploymentStateChanged,
    FallbackTaken,
    RetryScheduled,
)
from routerd.providers.base import register
from routerd.routing.executor import CallRouter
from routerd.routing.explain import health_report
from routerd.routing.health import BreakerState, effective_state
from routerd.testing.clock import FakeClock

from .fakes import FAKE2, FakeAdapter, Recorder, SecondFakeAdapter, chat, dep, fail, make_table, ok

RouterFactory = Callable[..., CallRouter]


def server_error() -> InternalServerError:
    return InternalServerError("upstream 500", upstream_status=500)


def state_of(router: CallRouter, dep_id: str, now: float) -> BreakerState:
    record = router.state.get(dep_id)
    assert record is not None
    return effective_state(record.breaker, now)


async def test_one_failing_deployment_of_two_every_call_succeeds_and_it_cools_down(
    make_router: RouterFactory, adapter: FakeAdapter, clock: FakeClock, recorder: Recorder
) -> None:
    adapter.script("bad", fail(server_error))
    router = make_router(make_table({"g": [dep("good"), dep("bad")]}))
    for _ in range(60):
        result = await router.call("chat", chat())
        assert result.response is not None and result.deployment.id == "good"
        clock.advance(0.1)
    assert clock.sleeps == []  # every retry re-routed to the healthy deployment without sleeping
    # allowed_fails=3: the fourth failure in the window starts the cooldown, then no more traffic
    assert adapter.calls.count("bad") == 4
    cooldowns = recorder.of(CooldownStarted)
    assert [(c.deployment_id, c.reason) for c in cooldowns] == [("bad", "InternalServerError")]
    assert cooldowns[0].duration == pytest.approx(60.0)
    assert state_of(router, "bad", clock()) is BreakerState.COOLING_DOWN
    retries = recorder.of(RetryScheduled)
    assert len(retries) == 4 and all(r.delay == 0.0 and r.deployment_id == "bad" for r in retries)
    assert len(recorder.of(AttemptFinished)) == len(adapter.calls)


async def test_429_with_retry_after_means_no_traffic_for_that_long(
    make_router: RouterFactory, adapter: FakeAdapter, clock: FakeClock
) -> None:
    adapter.script("a", fail(lambda: RateLimitError("slow down", retry_after=2.0, upstream_status=429)), ok())
    router = make_router(make_table({"g": [dep("a"), dep("b")]}))
    served: list[tuple[float, str]] = []
    while clock() < 1005.0:
        before = len(adapter.calls)
        result = await router.call("chat", chat())
        served.extend((clock(), dep_id) for dep_id in adapter.calls[before:])
        assert result.deployment.id in {"a", "b"}
        clock.advance(0.05)
    failed_at = next(t for t, d in served if d == "a")
    a_times = [t for t, d in served if d == "a"]
    assert not [t for t in a_times if failed_at < t < failed_at + 2.0]
    assert [t for t in a_times if t >= failed_at + 2.0]  # back in rotation after its Retry-After
    assert state_of(router, "a", clock()) is BreakerState.HEALTHY


async def test_group_all_down_falls_back_to_the_next_group_across_providers(
    make_router: RouterFactory, adapter: FakeAdapter, clock: FakeClock, recorder: Recorder
) -> None:
    other = SecondFakeAdapter(clock)
    register(other)  # type: ignore[arg-type]
    adapter.script("p1", fail(server_error))
    adapter.script("p2", fail(lambda: ServiceUnavailableError("overloaded", upstream_status=503)))
    table = make_table(
        {
            "primary": [dep("p1", "primary"), dep("p2", "primary")],
            "secondary": [dep("s1", "secondary", provider=FAKE2)],
        },
        policy=RouterPolicy(fallbacks={"primary": ("secondary",)}),
    )
    router = make_router(table)
    result = await router.call("chat", chat("primary"))
    assert result.deployment.id == "s1" and result.deployment.provider == FAKE2
    assert result.info.fallbacks == 1 and result.info.retries == 1 and result.info.attempts == 3
    assert result.info.tried_groups == ["primary", "secondary"]
    assert sorted(adapter.calls) == ["p1", "p2"] and other.calls == ["s1"]
    assert clock.sleeps == []  # a fallback beats sleeping for a retry
    assert recorder.of(FallbackTaken) == [FallbackTaken("primary", "secondary", "error", "success")]


async def test_non_retryable_errors_are_never_retried_nor_fall_back(
    make_router: RouterFactory, adapter: FakeAdapter
) -> None:
    adapter.script("a", fail(lambda: BadRequestError("bad 'temperature'", upstream_status=400)))
    adapter.script("b", fail(lambda: BadRequestError("bad 'temperature'", upstream_status=400)))
    table = make_table(
        {"g": [dep("a"), dep("b")], "other": [dep("o", "other")]},
        policy=RouterPolicy(fallbacks={"g": ("other",)}),
    )
    router = make_router(table)
    for _ in range(10):
        with pytest.raises(BadRequestError) as info:
            await router.call("chat", chat())
        assert info.value.routing.attempts == 1 and info.value.routing.retries == 0
    assert len(adapter.calls) == 10 and "o" not in adapter.calls
    assert all(state_of(router, d, 0.0) is BreakerState.HEALTHY for d in ("a", "b"))


async def test_retry_on_the_only_deployment_sleeps_a_jittered_backoff(
    make_router: RouterFactory, adapter: FakeAdapter, clock: FakeClock, recorder: Recorder
) -> None:
    adapter.script("solo", fail(server_error), fail(server_error), ok())
    policy = RouterPolicy(num_retries=2, allowed_fails=10, backoff_base=0.5, backoff_cap=8.0)
    router = make_router(make_table({"g": [dep("solo")]}, policy=policy))
    result = await router.call("chat", chat())
    assert result.info.attempts == 3 and result.info.retries == 2
    assert len(clock.sleeps) == 2
    assert 0.0 <= clock.sleeps[0] <= 0.5 and 0.0 <= clock.sleeps[1] <= 1.0
    assert [r.delay for r in recorder.of(RetryScheduled)] == clock.sleeps


async def test_retry_after_is_honoured_before_retrying_the_same_deployment(
    make_router: RouterFactory, adapter: FakeAdapter, clock: FakeClock
) -> None:
    adapter.script("solo", fail(lambda: RateLimitError("429", retry_after=3.0, upstream_status=429)), ok())
    router = make_router(make_table({"g": [dep("solo")]}, policy=RouterPolicy(backoff_cap=1.0)))
    start = clock()
    result = await router.call("chat", chat())
    assert result.deployment.id == "solo" and result.info.retries == 1
    assert clock.sleeps and clock.sleeps[0] >= 3.0
    assert clock() - start >= 3.0


async def test_retries_exhausted_raise_the_last_error_with_routing_info(
    make_router: RouterFactory, adapter: FakeAdapter
) -> None:
    adapter.script("solo", fail(server_error))
    router = make_router(
        make_table({"g": [dep("solo")]}, policy=RouterPolicy(num_retries=3, allowed_fails=100))
    )
    with pytest.raises(InternalServerError) as info:
        await router.call("chat", chat())
    routing = info.value.routing
    assert routing.attempts == 4 and routing.retries == 3 and routing.deployment_id == "solo"
    assert info.value.deployment_id == "solo"


async def test_request_num_retries_and_disable_fallbacks(
    make_router: RouterFactory, adapter: FakeAdapter
) -> None:
    adapter.script("a", fail(server_error))
    table = make_table(
        {"g": [dep("a")], "other": [dep("o", "other")]},
        policy=RouterPolicy(num_retries=5, allowed_fails=100, fallbacks={"g": ("other",)}),
    )
    router = make_router(table)
    with pytest.raises(InternalServerError) as info:
        await router.call("chat", chat(num_retries=0, disable_fallbacks=True))
    assert info.value.routing.attempts == 1 and adapter.calls == ["a"]
    result = await router.call("chat", chat(num_retries=0, fallbacks=["other"]))
    assert result.deployment.id == "o"


async def test_the_timeout_bounds_the_whole_call(make_router: RouterFactory, adapter: FakeAdapter) -> None:
    adapter.script("solo", fail(server_error, latency=4.0))
    policy = RouterPolicy(num_retries=10, allowed_fails=100, backoff_base=0.0)
    router = make_router(make_table({"g": [dep("solo")]}, policy=policy))
    with pytest.raises(InternalServerError):
        await router.call("chat", chat(), timeout=10.0)
    assert len(adapter.calls) == 3  # started at 0, 4 and 8 s; none after the deadline
    assert adapter.requests[-1].timeout == pytest.approx(2.0)  # the attempt got what was left


async def test_all_cooling_fails_fast_with_retry_after_unless_the_wait_fits(
    make_router: RouterFactory, adapter: FakeAdapter, clock: FakeClock
) -> None:
    adapter.script(
        "a", fail(lambda: ServiceUnavailableError("503", retry_after=30.0, upstream_status=503)), ok()
    )
    policy = RouterPolicy(num_retries=0)
    router = make_router(make_table({"g": [dep("a")]}, policy=policy))
    with pytest.raises(ServiceUnavailableError):
        await router.call("chat", chat())
    clock.advance(5.0)
    with pytest.raises(ServiceUnavailableError) as info:
        await router.call("chat", chat(), timeout=10.0)
    assert info.value.retry_after == pytest.approx(25.0)
    assert info.value.routing.attempts == 0 and len(adapter.calls) == 1
    assert info.value.response_headers()["retry-after"] == "25"
    result = await router.call("chat", chat(), timeout=60.0)  # the wait fits: it waits, then probes
    assert result.deployment.id == "a" and clock.sleeps == [pytest.approx(25.0)]


async def test_usage_limits_exhausted_everywhere_give_429_with_retry_after(
    make_router: RouterFactory, adapter: FakeAdapter, clock: FakeClock
) -> None:
    router = make_router(make_table({"g": [dep("a", rpm=1), dep("b", rpm=2)]}))
    for _ in range(3):
        await router.call("chat", chat())
    clock.advance(10.0)
    with pytest.raises(RateLimitError) as info:
        await router.call("chat", chat())
    assert info.value.retry_after == pytest.approx(51.0)
    assert len(adapter.calls) == 3


async def test_no_deployment_ever_exceeds_its_rpm(
    make_router: RouterFactory, adapter: FakeAdapter, clock: FakeClock
) -> None:
    limits = {"a": 5, "b": 3, "c": 8}
    router = make_router(
        make_table(
            {"g": [dep(name, rpm=rpm) for name, rpm in limits.items()]}, policy=RouterPolicy(num_retries=0)
        )
    )
    calls: dict[str, list[float]] = {name: [] for name in limits}
    rejected = 0
    for _ in range(1500):
        try:
            result = await router.call("chat", chat())
            calls[result.deployment.id].append(clock())
        except RateLimitError:
            rejected += 1
        clock.advance(0.2)
    assert rejected > 0
    for name, times in calls.items():
        assert times
        for i, end in enumerate(times):
            assert sum(1 for t in times[: i + 1] if t >= end - 60.0) <= limits[name]


async def test_context_window_precheck_falls_back_without_calling_the_small_model(
    make_router: RouterFactory, adapter: FakeAdapter, recorder: Recorder
) -> None:
    table = make_table(
        {
            "small": [dep("s", "small", max_input_tokens=50)],
            "big": [dep("b", "big", max_input_tokens=100_000)],
        },
        policy=RouterPolicy(context_window_fallbacks={"small": ("big",)}, enable_pre_call_checks=True),
    )
    router = make_router(table)
    long_prompt = chat("small", messages=[{"role": "user", "content": "word " * 400}])
    result = await router.call("chat", long_prompt)
    assert result.deployment.id == "b" and adapter.calls == ["b"]
    assert recorder.of(FallbackTaken) == [FallbackTaken("small", "big", "context_window", "success")]
    # short prompts stay on the small model
    assert (await router.call("chat", chat("small"))).deployment.id == "s"


async def test_without_enable_pre_call_checks_the_small_model_is_called_as_in_litellm(
    make_router: RouterFactory, adapter: FakeAdapter, recorder: Recorder
) -> None:
    # LiteLLM filters by max_input_tokens before the call only when enable_pre_call_checks is set;
    # without it the small deployment gets the call and its context-window error takes the fallback
    adapter.script("s", fail(lambda: ContextWindowExceededError("too long", upstream_status=400)))
    table = make_table(
        {
            "small": [dep("s", "small", max_input_tokens=50)],
            "big": [dep("b", "big", max_input_tokens=100_000)],
        },
        policy=RouterPolicy(context_window_fallbacks={"small": ("big",)}, enable_pre_call_checks=False),
    )
    long_prompt = chat("small", messages=[{"role": "user", "content": "word " * 400}])
    result = await make_router(table).call("chat", long_prompt)
    assert result.deployment.id == "b" and adapter.calls == ["s", "b"]


async def test_context_window_precheck_without_a_fallback_lets_the_upstream_decide(
    make_router: RouterFactory, adapter: FakeAdapter
) -> None:
    adapter.script("s", fail(lambda: ContextWindowExceededError("too long", upstream_status=400)))
    router = make_router(make_table({"small": [dep("s", "small", max_input_tokens=50)]}))
    with pytest.raises(ContextWindowExceededError):
        await router.call("chat", chat("small", messages=[{"role": "user", "content": "word " * 400}]))
    assert adapter.calls == ["s"]


async def test_context_window_error_from_upstream_uses_context_window_fallbacks(
    make_router: RouterFactory, adapter: FakeAdapter
) -> None:
    adapter.script("s", fail(lambda: ContextWindowExceededError("too long", upstream_status=400)))
    table = make_table(
        {"small": [dep("s", "small")], "big": [dep("b", "big")], "generic": [dep("x", "generic")]},
        policy=RouterPolicy(context_window_fallbacks={"small": ("big",)}, fallbacks={"small": ("generic",)}),
    )
    result = await make_router(table).call("chat", chat("small"))
    assert result.deployment.id == "b" and adapter.calls == ["s", "b"]


async def test_fallback_chain_stops_at_max_fallbacks_and_skips_unknown_and_tried_groups(
    make_router: RouterFactory, adapter: FakeAdapter, recorder: Recorder
) -> None:
    for name in ("a", "b", "c", "d"):
        adapter.script(name, fail(server_error))
    table = make_table(
        {name: [dep(name, name)] for name in ("a", "b", "c", "d")},
        policy=RouterPolicy(
            num_retries=0, fallbacks={"a": ("ghost", "b", "a", "c", "d")}, max_fallbacks=2, allowed_fails=100
        ),
        aliases={"alias-of-b": "b"},
    )
    with pytest.raises(InternalServerError) as info:
        await make_router(table).call("chat", chat("a"))
    assert adapter.calls == ["a", "b", "c"]
    assert info.value.routing.fallbacks == 2 and info.value.routing.tried_groups == ["a", "b", "c"]
    assert [(f.from_group, f.to_group, f.result) for f in recorder.of(FallbackTaken)] == [
        ("a", "b", "failure"),
        ("b", "c", "failure"),
    ]


async def test_unknown_model_points_to_the_model_list(make_router: RouterFactory) -> None:
    router = make_router(make_table({"g": [dep("a")]}))
    with pytest.raises(NotFoundError) as info:
        await router.call("chat", chat("nope"))
    assert info.value.code == "model_not_found" and info.value.param == "model"
    assert "GET /v1/models" in info.value.message
    assert info.value.routing is not None
    with pytest.raises(BadRequestError):
        await router.call("chat", {"messages": []})


async def test_router_keys_are_removed_before_the_adapter(
    make_router: RouterFactory, adapter: FakeAdapter
) -> None:
    router = make_router(make_table({"g": [dep("a")]}))
    body = chat(num_retries=1, fallbacks=[], metadata={"k": "v"}, tags=["x"], timeout=30, mock_response="hi")
    await router.call("chat", body)
    sent = adapter.requests[-1].body
    assert sent == {"model": "g", "messages": [{"role": "user", "content": "hello"}], "mock_response": "hi"}
    assert adapter.requests[-1].timeout == pytest.approx(30.0)
    plain = chat()
    await router.call("chat", plain)
    assert adapter.requests[-1].body is plain  # nothing to remove: no copy


async def test_mock_testing_fallbacks_rehearses_the_chain(
    make_router: RouterFactory, adapter: FakeAdapter
) -> None:
    table = make_table(
        {"g": [dep("a")], "other": [dep("o", "other")]}, policy=RouterPolicy(fallbacks={"g": ("other",)})
    )
    result = await make_router(table).call("chat", chat(mock_testing_fallbacks=True))
    assert result.deployment.id == "o" and adapter.calls == ["o"]


async def test_upstream_401_cools_down_at_once_and_logs_loudly_without_the_key(
    make_router: RouterFactory, adapter: FakeAdapter, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    adapter.script(
        "misconfigured", fail(lambda: AuthenticationError("Incorrect API key", upstream_status=401))
    )
    table = make_table({"g": [dep("misconfigured", api_key="sk-secret-123", order=1), dep("fine", order=2)]})
    router = make_router(table)
    with caplog.at_level(logging.ERROR, logger="routerd.router"):
        result = await router.call("chat", chat())
    # the client never sees the upstream's 401: another deployment answered at once
    assert result.deployment.id == "fine" and result.info.retries == 1 and clock.sleeps == []
    assert "misconfigured" in caplog.text and "401" in caplog.text
    assert "sk-secret-123" not in caplog.text
    assert state_of(router, "misconfigured", clock()) is BreakerState.COOLING_DOWN
    assert (await router.call("chat", chat())).deployment.id == "fine"
    assert adapter.calls.count("misconfigured") == 1


async def test_auth_errors_are_not_retried_on_the_same_deployment(
    make_router: RouterFactory, adapter: FakeAdapter, clock: FakeClock
) -> None:
    adapter.script("only", fail(lambda: AuthenticationError("Incorrect API key", upstream_status=401)))
    router = make_router(make_table({"g": [dep("only")]}))
    with pytest.raises(AuthenticationError) as info:
        await router.call("chat", chat())
    assert adapter.calls == ["only"] and clock.sleeps == [] and info.value.routing.attempts == 1


async def test_half_open_lets_one_probe_through(
    make_router: RouterFactory, adapter: FakeAdapter, clock: FakeClock, recorder: Recorder
) -> None:
    gate = asyncio.Event()
    adapter.script("a", fail(lambda: RateLimitError("429", retry_after=5.0)), ok(gate=gate), ok())
    router = make_router(make_table({"g": [dep("a", order=1), dep("b", order=2)]}))
    assert (await router.call("chat", chat())).deployment.id == "b"  # a failed, re-routed to b
    clock.advance(5.0)
    probe = asyncio.create_task(router.call("chat", chat()))
    await asyncio.sleep(0)
    assert adapter.calls[-1] == "a"  # the probe is in flight on a
    others = [await router.call("chat", chat()) for _ in range(3)]
    assert [r.deployment.id for r in others] == ["b", "b", "b"]
    gate.set()
    assert (await probe).deployment.id == "a"
    assert (await router.call("chat", chat())).deployment.id == "a"  # closed again: full traffic
    states = [e.state for e in recorder.of(DeploymentStateChanged) if e.deployment_id == "a"]
    assert states == ["cooling_down", "half_open", "healthy"]


async def test_a_cancelled_probe_frees_its_slot_and_in_flight(
    make_router: RouterFactory, adapter: FakeAdapter, clock: FakeClock
) -> None:
    gate = asyncio.Event()
    adapter.script("a", fail(lambda: RateLimitError("429", retry_after=5.0)), ok(gate=gate), ok())
    router = make_router(make_table({"g": [dep("a")]}, policy=RouterPolicy(num_retries=0)))
    with pytest.raises(RateLimitError):
        await router.call("chat", chat())
    clock.advance(5.0)
    probe = asyncio.create_task(router.call("chat", chat()))
    await asyncio.sleep(0)
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    record = router.state.get("a")
    assert record is not None and record.in_flight == 0
    assert (await router.call("chat", chat())).deployment.id == "a"


async def test_publish_keeps_health_of_remaining_ids_and_drops_removed(
    make_router: RouterFactory, adapter: FakeAdapter, clock: FakeClock
) -> None:
    adapter.script("a", fail(lambda: RateLimitError("429", retry_after=100.0)))
    router = make_router(make_table({"g": [dep("a"), dep("b")]}, policy=RouterPolicy(num_retries=0)))
    for _ in range(5):
        try:
            await router.call("chat", chat())
        except RateLimitError:
            pass
    assert router.state.get("b") is not None
    new_table = make_table({"g": [dep("a"), dep("c")]}, content_hash="v2")
    router.publish(new_table)
    assert router.table is new_table
    assert state_of(router, "a", clock()) is BreakerState.COOLING_DOWN
    assert router.state.get("b") is None
    assert (await router.call("chat", chat())).deployment.id == "c"


async def test_publish_rejects_an_unknown_strategy_and_keeps_the_old_table(
    make_router: RouterFactory,
) -> None:
    table = make_table({"g": [dep("a")]})
    router = make_router(table)
    with pytest.raises(ValueError, match="routing_strategy"):
        router.publish(make_table({"g": [dep("a")]}, policy=RouterPolicy(routing_strategy="nope")))
    assert router.table is table


async def test_wildcard_models_are_prepared_once_with_their_own_health(
    make_router: RouterFactory, adapter: FakeAdapter
) -> None:
    table = make_table({}, wildcards=[("fake/*", [dep("w", "fake/*", model="*")])])
    router = make_router(table)
    first = await router.call("chat", chat("fake/alpha"))
    await router.call("chat", chat("fake/alpha"))
    other = await router.call("chat", chat("fake/beta"))
    assert first.deployment.id == "w:alpha" and first.deployment.model == "alpha"
    assert first.deployment.prepared == {"url": "fake://alpha"}
    assert other.deployment.id == "w:beta"
    assert adapter.prepared.count("alpha") == 1
    assert router.state.get("w:alpha") is not None
    router.publish(make_table({}, wildcards=[("fake/*", [dep("w", "fake/*", model="*")])], content_hash="v2"))
    assert router.state.get("w:alpha") is not None  # the wildcard deployment is still there


async def test_aliases_resolve_to_their_group(make_router: RouterFactory) -> None:
    router = make_router(make_table({"g": [dep("a")]}, aliases={"friendly": "g"}))
    result = await router.call("chat", chat("friendly"))
    assert result.deployment.id == "a" and result.info.group == "g"


@pytest.mark.parametrize(("endpoint", "kind"), [("completions", "text_completion"), ("embeddings", "list")])
async def test_other_endpoints_use_their_adapter_method(
    make_router: RouterFactory, endpoint: str, kind: str
) -> None:
    router = make_router(make_table({"g": [dep("a")]}))
    body: dict[str, Any] = {"model": "g", "prompt": "hi", "input": "hi", "stream": endpoint == "embeddings"}
    result = await router.call(endpoint, body)
    assert result.response is not None and result.response.body["object"] == kind
    with pytest.raises(ValueError):
        await router.call("no-such-endpoint", body)  # ("images" is an endpoint now)


async def test_latency_routing_moves_traffic_away_from_a_slow_deployment(
    make_router: RouterFactory, adapter: FakeAdapter
) -> None:
    adapter.script("slow", ok(latency=2.0))
    adapter.script("fast", ok(latency=0.1))
    policy = RouterPolicy(routing_strategy="latency-based-routing")
    router = make_router(make_table({"g": [dep("slow"), dep("fast")]}, policy=policy))
    served = [(await router.call("chat", chat())).deployment.id for _ in range(20)]
    assert served[2:] == ["fast"] * 18  # each explored once, then the fast one


async def test_least_busy_counts_calls_in_flight(make_router: RouterFactory, adapter: FakeAdapter) -> None:
    gate = asyncio.Event()
    adapter.script("a", ok(gate=gate), ok())
    adapter.script("b", ok(gate=gate), ok())
    policy = RouterPolicy(routing_strategy="least-busy")
    router = make_router(make_table({"g": [dep("a"), dep("b")]}, policy=policy))
    pending = [asyncio.create_task(router.call("chat", chat())) for _ in range(2)]
    await asyncio.sleep(0)
    assert sorted(adapter.calls) == ["a", "b"]  # the second call avoided the busy one
    gate.set()
    await asyncio.gather(*pending)
    record = router.state.get("a")
    assert record is not None and record.in_flight == 0


async def test_cost_based_routing_prefers_the_cheapest_healthy(
    make_router: RouterFactory, adapter: FakeAdapter
) -> None:
    adapter.script("cheap", fail(lambda: AuthenticationError("401")))
    policy = RouterPolicy(routing_strategy="cost-based-routing")
    deployments = [dep("cheap", input_cost=1e-7), dep("mid", input_cost=1e-6), dep("pricey", input_cost=1e-5)]
    router = make_router(make_table({"g": deployments}, policy=policy))
    served = [(await router.call("chat", chat())).deployment.id for _ in range(5)]
    assert served == ["mid"] * 5 and adapter.calls == ["cheap"] + ["mid"] * 5


async def test_health_report_has_states_and_no_secrets(
    make_router: RouterFactory, adapter: FakeAdapter
) -> None:
    adapter.script("a", fail(lambda: AuthenticationError("401")))
    table = make_table({"g": [dep("a", api_key="sk-secret-xyz", rpm=10), dep("b")]})
    router = make_router(table)
    await router.call("chat", chat())
    report = health_report(router)
    assert report["counts"] == {"healthy": 1, "cooling_down": 1, "half_open": 0}
    by_id = {d["id"]: d for d in report["deployments"]}
    assert by_id["a"]["state"] == "cooling_down" and by_id["a"]["cooldown_remaining"] == 60.0
    assert by_id["a"]["rpm"] == {"used": 1, "limit": 10}
    assert "sk-secret-xyz" not in repr(report)


async def test_events_have_one_attempt_record_per_upstream_call(
    make_router: RouterFactory, adapter: FakeAdapter, recorder: Recorder
) -> None:
    adapter.script("a", fail(server_error), ok())
    router = make_router(make_table({"g": [dep("a", order=1), dep("b", order=2)]}))
    await router.call("chat", chat(), request_id="req-1")
    attempts = recorder.of(AttemptFinished)
    assert [(a.deployment_id, a.ok, a.status, a.error) for a in attempts] == [
        ("a", False, 500, "InternalServerError"),
        ("b", True, 200, None),
    ]
    assert all(a.request_id == "req-1" and a.endpoint == "chat" for a in attempts)
    assert attempts[1].prompt_tokens == 5 and attempts[1].completion_tokens == 10


async def test_aclose_closes_an_owned_client_only(clock: FakeClock) -> None:
    from .conftest import NoHttp

    http = NoHttp()
    router = CallRouter(make_table({"g": [dep("a")]}), http=http, clock=clock, sleep=clock.sleep)  # type: ignore[arg-type]
    await router.aclose()
    assert not http.closed


async def test_publish_tells_the_http_client_which_upstreams_no_deployment_uses_any_more() -> None:
    class RetiringHttp:
        def __init__(self) -> None:
            self.calls: list[tuple[set[str], set[str]]] = []

        def retire_origins(self, removed: set[str], kept: set[str]) -> None:
            self.calls.append((set(removed), set(kept)))

        async def aclose(self) -> None:
            pass

    http = RetiringHttp()
    east, west = "https://east.example/v1", "https://west.example/v1"
    router = CallRouter(
        make_table({"g": [dep("a", api_base=east), dep("b", api_base=west), dep("c")]}),
        http=http,  # type: ignore[arg-type]
    )
    router.publish(make_table({"g": [dep("a", api_base=east), dep("c")]}, content_hash="v2"))
    router.publish(make_table({"g": [dep("a", api_base=east), dep("c")]}, content_hash="v3"))  # nothing gone
    router.publish(make_table({"g": [dep("b", api_base=west)]}, content_hash="v4"))
    assert http.calls == [({west}, {east}), ({east}, {west})]
    await router.aclose()


@pytest.mark.parametrize(("max_retries", "calls"), [(None, ["s"]), (0, ["s"]), (2, ["s", "s", "s"])])
async def test_max_retries_repeats_the_http_call_on_the_same_deployment(
    make_router: RouterFactory, adapter: FakeAdapter, max_retries: int | None, calls: list[str]
) -> None:
    # litellm_params.max_retries: LiteLLM's client-level retries of one call, inside one attempt
    adapter.script(
        "s", fail(lambda: InternalServerError("500")), fail(lambda: InternalServerError("500")), ok()
    )
    table = make_table({"g": [dep("s", "g", max_retries=max_retries)]}, policy=RouterPolicy(num_retries=0))
    router = make_router(table)
    if max_retries == 2:
        result = await router.call("chat", chat("g"))
        assert result.deployment.id == "s" and result.info.attempts == 1
    else:
        with pytest.raises(InternalServerError):
            await router.call("chat", chat("g"))
    assert adapter.calls == calls


async def test_max_retries_does_not_repeat_errors_that_are_not_retryable(
    make_router: RouterFactory, adapter: FakeAdapter
) -> None:
    adapter.script("s", fail(lambda: BadRequestError("bad")), ok())
    table = make_table({"g": [dep("s", "g", max_retries=3)]}, policy=RouterPolicy(num_retries=0))
    with pytest.raises(BadRequestError):
        await make_router(table).call("chat", chat("g"))
    assert adapter.calls == ["s"]


@pytest.mark.parametrize(
    ("field", "error"), [("mock_testing_rate_limit_error", RateLimitError), ("mock_timeout", Timeout)]
)
async def test_mock_failure_fields_fail_each_attempt_and_are_retried_then_fall_back(
    make_router: RouterFactory, adapter: FakeAdapter, field: str, error: type[OpenAIError]
) -> None:
    table = make_table(
        {"g": [dep("a", "g"), dep("b", "g")], "spare": [dep("s", "spare")]},
        policy=RouterPolicy(num_retries=1, fallbacks={"g": ("spare",)}),
    )
    router = make_router(table)
    result = await router.call("chat", chat("g", **{field: True}))
    # two attempts in g (the first and its retry) failed without reaching the upstream; the fallback served
    assert result.deployment.id == "s" and adapter.calls == ["s"]
    assert (result.info.attempts, result.info.retries, result.info.fallbacks) == (3, 1, 1)
    alone = make_router(make_table({"g": [dep("a", "g")]}, policy=RouterPolicy(num_retries=0)))
    with pytest.raises(error):
        await alone.call("chat", chat("g", **{field: True}))


async def test_a_fallback_entry_with_messages_replaces_the_prompt_as_litellm_does(
    make_router: RouterFactory, adapter: FakeAdapter
) -> None:
    adapter.script("a", fail(lambda: InternalServerError("500")))
    table = make_table(
        {"g": [dep("a", "g")], "spare": [dep("s", "spare")], "other": [dep("o", "other")]},
        policy=RouterPolicy(num_retries=0),
    )
    shorter = [{"role": "user", "content": "short version"}]
    body = chat("g", fallbacks=[{"model": "spare", "messages": shorter, "temperature": 0.1}, "other"])
    result = await make_router(table).call("chat", body)
    assert result.deployment.id == "s" and adapter.calls == ["a", "s"]
    first, second = adapter.requests
    assert (
        first.body["messages"] == [{"role": "user", "content": "hello"}] and "temperature" not in first.body
    )
    assert second.body["messages"] == shorter and second.body["temperature"] == 0.1
    assert "fallbacks" not in second.body


async def test_a_fallback_entry_with_bad_messages_is_a_400(make_router: RouterFactory) -> None:
    table = make_table({"g": [dep("a", "g")], "spare": [dep("s", "spare")]})
    with pytest.raises(BadRequestError, match="fallbacks"):
        await make_router(table).call("chat", chat("g", fallbacks=[{"model": "spare", "messages": "hi"}]))
