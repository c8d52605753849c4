"""The retry policy of one group as a pure step, tested from tables (like ``pick``)."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from routerd.config.table import RetryPolicy
from routerd.errors import (
    AuthenticationError,
    BadRequestError,
    ContextWindowExceededError,
    InternalServerError,
    OpenAIError,
    RateLimitError,
    ServiceUnavailableError,
    Timeout,
)
from routerd.routing.health import DeploymentHealth
from routerd.routing.plan import Blocked, Pick, build_group_plan
from routerd.routing.policy import (
    EXPIRED,
    INITIAL,
    REPICK,
    Attempt,
    Failed,
    GiveUp,
    GroupRules,
    GroupState,
    Outcome,
    Repick,
    Sleep,
    step,
)

from .fakes import dep

PLAN = build_group_plan("g", [dep("a"), dep("b")])
PICK_A = Pick(PLAN.candidates[0], DeploymentHealth(), probe=False)
NOW = 100.0
RULES = GroupRules(
    plan=PLAN,
    deadline=NOW + 60.0,
    limit=60.0,
    budget=2,
    retry_policy=RetryPolicy(),
    request_retries=None,
    backoff_base=0.5,
    backoff_cap=1.0,  # below every retry_after used here: the delay is exactly the retry_after
    retry_after=0.0,
    max_retry_after=30.0,
    tokens=10,
)
E500 = InternalServerError("upstream 500")
E429 = RateLimitError("slow down", retry_after=2.0)
E401 = AuthenticationError("bad key")
E400 = BadRequestError("bad request")
AFTER_500 = GroupState(retries=1, exclude=frozenset({"a"}), last=E500, last_id="a", retry_pending=True)
AFTER_429 = replace(AFTER_500, last=E429)
AFTER_401 = replace(AFTER_500, last=E401)


@dataclass
class Row:
    name: str
    state: GroupState
    outcome: Outcome
    command: type  # the command's class
    fields: dict[str, Any] = field(default_factory=dict)  # expected attributes of the command
    after: dict[str, Any] = field(default_factory=dict)  # expected attributes of the new state
    rules: GroupRules = RULES
    open_for: frozenset[str | None] = frozenset()  # fallback reasons a fallback group could take


ROWS = [
    Row("first pick is attempted", INITIAL, PICK_A, Attempt, {"retry": False, "announce": None}),
    Row(
        "a re-route after a failure is a retry announced with no delay",
        AFTER_500,
        PICK_A,
        Attempt,
        {"retry": True},
        {"retry_pending": False, "retry_announced": False},
    ),
    Row(
        "a retry after a backoff is not announced twice",
        replace(AFTER_500, retry_announced=True),
        PICK_A,
        Attempt,
        {"retry": True, "announce": None},
    ),
    Row(
        "a retryable failure within the budget excludes the deployment",
        INITIAL,
        Failed(E500, "a"),
        Repick,
        after={"retries": 1, "exclude": frozenset({"a"}), "last": E500, "retry_pending": True},
    ),
    Row(
        "a failure beyond the budget gives up",
        replace(AFTER_500, retries=2),
        Failed(E500, "b"),
        GiveUp,
        {"error": E500},
    ),
    Row("a client error is never retried", INITIAL, Failed(E400, "a"), GiveUp, {"error": E400}),
    Row(
        "the request's num_retries wins",
        INITIAL,
        Failed(E500, "a"),
        GiveUp,
        rules=replace(RULES, request_retries=0),
    ),
    Row("a passed deadline gives up with the last error", AFTER_500, EXPIRED, GiveUp, {"error": E500}),
    Row("a passed deadline with no failure is a timeout", INITIAL, EXPIRED, GiveUp),
    Row(
        "too large for all, a context-window fallback exists: give up",
        INITIAL,
        Blocked(too_large=True),
        GiveUp,
        open_for=frozenset({"context_window"}),
    ),
    Row(
        "too large for all, nowhere bigger: let the upstream judge",
        INITIAL,
        Blocked(too_large=True),
        Repick,
        after={"check_size": False},
    ),
    Row(
        "all tried deployments unavailable: back off by the upstream's retry_after",
        AFTER_429,
        Blocked(cool_until=NOW + 5),
        Sleep,
        {"seconds": 2.0},
        {"exclude": frozenset(), "retry_announced": True},
    ),
    Row(
        "a fallback group that can take the call now beats a backoff",
        AFTER_429,
        Blocked(cool_until=NOW + 5),
        GiveUp,
        {"error": E429},
        open_for=frozenset({"error"}),
    ),
    Row(
        "a misconfigured deployment is not retried after a sleep",
        AFTER_401,
        Blocked(cool_until=NOW + 5),
        GiveUp,
        {"error": E401},
    ),
    Row(
        "a backoff past the deadline gives up",
        AFTER_429,
        Blocked(cool_until=NOW + 5),
        GiveUp,
        {"error": E429},
        rules=replace(RULES, deadline=NOW + 1.0),
    ),
    Row(
        "everything cooling, nowhere to go: wait for the first",
        INITIAL,
        Blocked(cool_until=NOW + 3),
        Sleep,
        {"seconds": 3.0},
    ),
    Row(
        "a probe in flight: poll",
        INITIAL,
        Blocked(cool_until=NOW + 3, probe_until=NOW + 20),
        Sleep,
        {"seconds": 0.25},
    ),
    Row(
        "everything cooling, a fallback exists: 503 now",
        INITIAL,
        Blocked(cool_until=NOW + 3),
        GiveUp,
        open_for=frozenset({"error"}),
    ),
    Row("only rate limits block: 429", INITIAL, Blocked(limit_until=NOW + 4), GiveUp),
    Row(
        "cooling past the deadline: 503 caused by the last error",
        replace(AFTER_500, exclude=frozenset()),
        Blocked(cool_until=NOW + 600),
        GiveUp,
        {"cause": E500},
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
def test_step(row: Row) -> None:
    asked: list[str | None] = []

    def fallback_open(reason: str | None) -> bool:
        asked.append(reason)
        return reason in row.open_for

    state, command = step(
        row.state, row.outcome, NOW, row.rules, fallback_open=fallback_open, rng=random.Random(0)
    )
    assert type(command) is row.command, (row.name, command)
    for name, value in row.fields.items():
        assert getattr(command, name) == value, (row.name, name)
    for name, value in row.after.items():
        assert getattr(state, name) == value, (row.name, name)


def test_the_errors_given_up_with_say_why() -> None:
    def never(reason: str | None) -> bool:
        return False

    rng = random.Random(0)
    _, timeout = step(INITIAL, EXPIRED, NOW, RULES, fallback_open=never, rng=rng)
    assert isinstance(timeout, GiveUp) and isinstance(timeout.error, Timeout)
    assert "60s timeout passed" in timeout.error.message
    _, limited = step(INITIAL, Blocked(limit_until=NOW + 4), NOW, RULES, fallback_open=never, rng=rng)
    assert isinstance(limited, GiveUp) and isinstance(limited.error, RateLimitError)
    assert limited.error.retry_after == 4.0
    _, cooling = step(INITIAL, Blocked(cool_until=math.inf), NOW, RULES, fallback_open=never, rng=rng)
    assert isinstance(cooling, GiveUp) and isinstance(cooling.error, ServiceUnavailableError)
    _, large = step(INITIAL, Blocked(too_large=True), NOW, RULES, fallback_open=lambda reason: True, rng=rng)
    assert isinstance(large, GiveUp) and isinstance(large.error, ContextWindowExceededError)


def test_a_re_route_announces_the_failed_deployment() -> None:
    _, command = step(AFTER_500, PICK_A, NOW, RULES, fallback_open=lambda reason: False, rng=random.Random(0))
    assert isinstance(command, Attempt) and command.announce is not None
    assert (command.announce.group, command.announce.deployment_id, command.announce.delay) == ("g", "a", 0.0)
    assert command.announce.error == "InternalServerError"


def test_the_step_is_pure() -> None:
    """The same inputs give the same command, and the input state is never changed."""
    before = replace(AFTER_429)
    results = {
        repr(
            step(
                AFTER_429,
                Blocked(cool_until=NOW + 5),
                NOW,
                RULES,
                fallback_open=lambda r: False,
                rng=random.Random(3),
            )
        )
        for _ in range(5)
    }
    assert len(results) == 1
    assert before == AFTER_429
    assert Repick() == REPICK


def test_errors_of_every_retryable_class_get_the_budget() -> None:
    errors: list[OpenAIError] = [E500, E429, Timeout("slow"), ServiceUnavailableError("down")]
    for error in errors:
        state, command = step(
            INITIAL, Failed(error, "a"), NOW, RULES, fallback_open=lambda r: False, rng=random.Random(0)
        )
        assert isinstance(command, Repick) and state.retries == 1, error
