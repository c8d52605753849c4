from __future__ import annotations

from collections.abc import Callable

from hypothesis import given
from hypothesis import strategies as st

from routerd.config.table import AllowedFailsPolicy, RouterPolicy
from routerd.errors import (
    APIConnectionError,
    AuthenticationError,
    BadGatewayError,
    BadRequestError,
    ContentPolicyViolationError,
    ContextWindowExceededError,
    InternalServerError,
    NotFoundError,
    OpenAIError,
    PermissionDeniedError,
    RateLimitError,
    RequestTooLargeError,
    ServiceUnavailableError,
    Timeout,
    UnprocessableEntityError,
)
from routerd.routing.health import (
    HEALTHY,
    Breaker,
    BreakerState,
    CooldownRules,
    DeploymentHealth,
    ErrorKind,
    available_at,
    begin_probe,
    classify,
    effective_state,
    error_kind,
    is_probe,
    on_failure,
    on_success,
    release_probe,
)

RULES = CooldownRules(allowed_fails=2, cooldown_time=30.0, max_cooldown_time=120.0)


def fail(breaker: Breaker, now: float, error: OpenAIError, rules: CooldownRules = RULES) -> Breaker:
    return on_failure(breaker, now, classify(error), rules, rules.cooldown_time)


def test_error_kinds_follow_classes() -> None:
    assert error_kind(RateLimitError("x")) is ErrorKind.RATE_LIMIT
    assert error_kind(Timeout("x")) is ErrorKind.TIMEOUT
    assert error_kind(APIConnectionError("x")) is ErrorKind.INTERNAL_SERVER
    assert error_kind(ServiceUnavailableError("x")) is ErrorKind.INTERNAL_SERVER
    assert error_kind(BadGatewayError("x")) is ErrorKind.INTERNAL_SERVER
    assert error_kind(AuthenticationError("x")) is ErrorKind.AUTHENTICATION
    assert error_kind(PermissionDeniedError("x")) is ErrorKind.AUTHENTICATION
    assert error_kind(NotFoundError("x")) is ErrorKind.AUTHENTICATION
    assert error_kind(ContentPolicyViolationError("x")) is ErrorKind.CONTENT_POLICY
    assert error_kind(ContextWindowExceededError("x")) is ErrorKind.BAD_REQUEST
    assert error_kind(UnprocessableEntityError("x")) is ErrorKind.BAD_REQUEST


def test_cools_down_after_more_than_allowed_fails_in_a_window() -> None:
    b = HEALTHY
    b = fail(b, 0.0, InternalServerError("boom"))
    b = fail(b, 1.0, InternalServerError("boom"))
    assert b.state is BreakerState.HEALTHY and b.failures_in_window == 2
    b = fail(b, 2.0, InternalServerError("boom"))
    assert b.state is BreakerState.COOLING_DOWN
    assert b.until == 32.0 and b.reason == "InternalServerError"


def test_failures_older_than_the_window_are_forgotten() -> None:
    b = fail(fail(HEALTHY, 0.0, Timeout("t")), 1.0, Timeout("t"))
    b = fail(b, 61.0, Timeout("t"))  # new window
    assert b.state is BreakerState.HEALTHY and b.failures_in_window == 1


def test_allowed_fails_policy_is_per_error_class() -> None:
    policy = RouterPolicy(allowed_fails=5, allowed_fails_policy=AllowedFailsPolicy(rate_limit=0, timeout=1))
    rules = CooldownRules.from_policy(policy)
    assert fail(HEALTHY, 0.0, RateLimitError("429"), rules).state is BreakerState.COOLING_DOWN
    b = fail(HEALTHY, 0.0, Timeout("t"), rules)
    assert b.state is BreakerState.HEALTHY
    # a different class does not add to the timeout count
    b = fail(b, 1.0, InternalServerError("500"), rules)
    assert b.state is BreakerState.HEALTHY
    assert fail(b, 2.0, Timeout("t"), rules).state is BreakerState.COOLING_DOWN


def test_client_errors_never_cool_down() -> None:
    for error in (
        BadRequestError("bad"),
        RequestTooLargeError("big"),
        UnprocessableEntityError("422"),
        ContextWindowExceededError("ctx"),
        ContentPolicyViolationError("policy"),
    ):
        b = HEALTHY
        for t in range(20):
            b = fail(b, float(t), error)
        assert b is HEALTHY, error


def test_upstream_auth_errors_cool_down_at_once() -> None:
    for error in (AuthenticationError("401"), PermissionDeniedError("403"), NotFoundError("404")):
        b = fail(HEALTHY, 5.0, error)
        assert b.state is BreakerState.COOLING_DOWN and b.until == 35.0


def test_retry_after_cools_down_for_that_long_capped() -> None:
    b = fail(HEALTHY, 0.0, RateLimitError("429", retry_after=2.0))
    assert b.state is BreakerState.COOLING_DOWN and b.until == 2.0
    b = fail(HEALTHY, 0.0, ServiceUnavailableError("503", retry_after=10_000.0))
    assert b.until == 120.0  # max_cooldown_time


def test_disabled_cooldowns_never_cool() -> None:
    rules = CooldownRules(allowed_fails=0, disabled=True)
    assert fail(HEALTHY, 0.0, RateLimitError("429", retry_after=5), rules) is HEALTHY


def test_half_open_admits_one_probe_and_closes_on_success() -> None:
    b = fail(HEALTHY, 0.0, RateLimitError("429", retry_after=10.0))
    assert available_at(b, 5.0) == 10.0
    assert effective_state(b, 10.0) is BreakerState.HALF_OPEN
    assert available_at(b, 10.0) == 10.0 and is_probe(b, 10.0)
    probing = begin_probe(b, 10.0, lease=30.0)
    assert probing.state is BreakerState.HALF_OPEN
    assert available_at(probing, 11.0) == 40.0  # the second caller waits for the probe
    assert on_success(probing, 12.0) is HEALTHY


def test_failed_probe_cools_down_again_at_once() -> None:
    b = begin_probe(fail(HEALTHY, 0.0, AuthenticationError("401")), 30.0, lease=5.0)
    again = fail(b, 31.0, InternalServerError("still broken"))
    assert again.state is BreakerState.COOLING_DOWN and again.until == 61.0


def test_a_client_error_on_the_probe_proves_reachability() -> None:
    b = begin_probe(fail(HEALTHY, 0.0, AuthenticationError("401")), 30.0, lease=5.0)
    assert fail(b, 31.0, BadRequestError("bad")) is HEALTHY


def test_abandoned_probe_frees_the_slot_and_lease_expires() -> None:
    probing = begin_probe(Breaker(BreakerState.COOLING_DOWN, until=10.0), 10.0, lease=5.0)
    assert available_at(release_probe(probing), 11.0) == 11.0
    assert available_at(probing, 15.0) == 15.0  # lease over: someone else may probe
    assert release_probe(HEALTHY) is HEALTHY


def test_success_during_a_cooldown_keeps_the_deadline() -> None:
    b = fail(HEALTHY, 0.0, RateLimitError("429", retry_after=10.0))
    assert on_success(b, 3.0) is b
    assert on_success(HEALTHY, 3.0) is HEALTHY


_errors = st.sampled_from(
    [
        lambda: InternalServerError("500"),
        lambda: Timeout("t"),
        lambda: AuthenticationError("401"),
        lambda: BadRequestError("400"),
        lambda: RateLimitError("429"),
        lambda: RateLimitError("429", retry_after=3.0),
        lambda: ServiceUnavailableError("503", retry_after=90.0),
        lambda: RateLimitError("429", retry_after=1000.0),
    ]
)


@given(st.lists(st.tuples(st.floats(min_value=0.0, max_value=5.0), _errors, st.booleans()), max_size=60))
def test_cooldown_deadlines_only_move_later(
    events: list[tuple[float, Callable[[], OpenAIError], bool]],
) -> None:
    b, now = HEALTHY, 0.0
    for step, make_error, succeed in events:
        now += step
        before = b
        b = on_success(b, now) if succeed else fail(b, now, make_error())
        if before.state is BreakerState.COOLING_DOWN and now < before.until:
            # while a cooldown runs, nothing ends it early or moves its deadline earlier
            assert b.state is BreakerState.COOLING_DOWN
            assert b.until >= before.until


def test_record_latency_average_and_failure_penalty() -> None:
    record = DeploymentHealth()
    record.observe_success(1.0, latency=2.0, completion_tokens=100, ttft=None, alpha=0.5)
    assert record.latency == 0.02 and record.ttft is None
    record.observe_success(2.0, latency=4.0, completion_tokens=100, ttft=0.3, alpha=0.5)
    assert record.latency == 0.03 and record.ttft == 0.3
    record.observe_failure(3.0, elapsed=0.1, reason="Timeout", penalise=True, alpha=0.5)
    assert record.latency > 0.5 and record.ttft > 0.5  # penalised by at least a second per token
    assert record.failures == 1 and record.last_error == "Timeout"
    before = record.latency
    record.observe_failure(4.0, elapsed=0.1, reason="BadRequestError", penalise=False, alpha=0.5)
    assert record.latency == before
