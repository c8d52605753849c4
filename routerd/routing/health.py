"""Deployment health: the circuit breaker as an explicit state machine, and the live per-deployment record.

The breaker has three states::

              failures > allowed_fails (per error class, per window)
              401/403/404 from the upstream, or a Retry-After
    HEALTHY ---------------------------------------------------> COOLING_DOWN
       ^                                                          |      ^
       |  the probe (or any call) succeeds                        |      | the probe fails
       |                                                  deadline passes
       |                                                          v      |
       +--------------------------------------------------- HALF_OPEN --+
                                                       (one probe at a time)

Every transition is a pure function of ``(breaker, now, ...)`` returning a new frozen :class:`Breaker`;
the executor stores the result and compares old and new to emit events. ``COOLING_DOWN`` turns into
``HALF_OPEN`` by the passage of time alone, so the stored state is read through :func:`effective_state`.

Rules that keep this safe under concurrency: a cooldown deadline only ever moves later (a second
failure, or a shorter Retry-After, never shortens it); a success while the deadline is still ahead
does not end the cooldown (the upstream asked for quiet, e.g. with Retry-After); and client errors
(400, 413, 422, content policy) say nothing about the deployment's health.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, replace

from routerd.config.table import AllowedFailsPolicy, RouterPolicy
from routerd.errors import (
    APIConnectionError,
    AuthenticationError,
    ContentPolicyViolationError,
    InternalServerError,
    NotFoundError,
    OpenAIError,
    PermissionDeniedError,
    RateLimitError,
    Timeout,
)
from routerd.routing.usage import UsageWindow

__all__ = [
    "HEALTHY",
    "Breaker",
    "BreakerState",
    "CooldownRules",
    "DeploymentHealth",
    "ErrorKind",
    "Failure",
    "available_at",
    "begin_probe",
    "classify",
    "effective_state",
    "error_kind",
    "is_probe",
    "on_failure",
    "on_success",
    "release_probe",
]

FAILURE_WINDOW = 60.0  # seconds over which allowed_fails is counted (LiteLLM's "per minute")


class BreakerState(enum.StrEnum):
    HEALTHY = "healthy"
    COOLING_DOWN = "cooling_down"
    HALF_OPEN = "half_open"


class ErrorKind(enum.StrEnum):
    """Error classes as ``retry_policy`` / ``allowed_fails_policy`` name them (field names)."""

    BAD_REQUEST = "bad_request"
    AUTHENTICATION = "authentication"
    TIMEOUT = "timeout"
    RATE_LIMIT = "rate_limit"
    CONTENT_POLICY = "content_policy"
    INTERNAL_SERVER = "internal_server"


_KINDS = tuple(ErrorKind)
_KIND_INDEX = {kind: i for i, kind in enumerate(_KINDS)}
_NO_FAILS = (0,) * len(_KINDS)


def error_kind(exc: OpenAIError) -> ErrorKind:
    """The policy class of an error. Decided by type, never by message."""
    if isinstance(exc, RateLimitError):
        return ErrorKind.RATE_LIMIT
    if isinstance(exc, Timeout):
        return ErrorKind.TIMEOUT
    if isinstance(exc, (InternalServerError, APIConnectionError)):
        return ErrorKind.INTERNAL_SERVER
    if isinstance(exc, (AuthenticationError, PermissionDeniedError, NotFoundError)):
        return ErrorKind.AUTHENTICATION
    if isinstance(exc, ContentPolicyViolationError):
        return ErrorKind.CONTENT_POLICY
    if exc.status_code >= 500:  # the generic APIError: something unexpected on our side or theirs
        return ErrorKind.INTERNAL_SERVER
    return ErrorKind.BAD_REQUEST


@dataclass(frozen=True, slots=True)
class Failure:
    """What the breaker needs to know about one failed call."""

    kind: ErrorKind
    cools_down: bool  # the deployment is at fault (the class's ``cools_down``)
    retry_after: float | None  # seconds the upstream asked us to stay away, when it said
    reason: str  # error class name, for events and logs


def classify(exc: OpenAIError) -> Failure:
    retry_after = exc.retry_after if exc.retry_after is not None and exc.retry_after > 0 else None
    return Failure(error_kind(exc), type(exc).cools_down, retry_after, type(exc).__name__)


@dataclass(frozen=True, slots=True)
class CooldownRules:
    """The cooldown part of :class:`RouterPolicy`, resolved once per routing table."""

    allowed_fails: int = 3
    # per ErrorKind (in declaration order); None means "use allowed_fails" (0 for authentication)
    allowed_fails_by_kind: tuple[int | None, ...] = (None,) * len(_KINDS)
    cooldown_time: float = 60.0
    max_cooldown_time: float = 300.0
    disabled: bool = False
    window: float = FAILURE_WINDOW

    @classmethod
    def from_policy(cls, policy: RouterPolicy) -> CooldownRules:
        by_kind = _allowed_by_kind(policy.allowed_fails_policy)
        return cls(
            allowed_fails=policy.allowed_fails,
            allowed_fails_by_kind=by_kind,
            cooldown_time=policy.cooldown_time,
            max_cooldown_time=policy.max_cooldown_time,
            disabled=policy.disable_cooldowns,
        )

    def threshold(self, kind: ErrorKind) -> int:
        """Failures of ``kind`` tolerated in one window; one more starts a cooldown."""
        explicit = self.allowed_fails_by_kind[_KIND_INDEX[kind]]
        if explicit is not None:
            return explicit
        # 401/403/404 from an upstream mean the deployment is misconfigured: the next call will fail
        # the same way, so the first one cools it down.
        return 0 if kind is ErrorKind.AUTHENTICATION else self.allowed_fails


def _allowed_by_kind(policy: AllowedFailsPolicy) -> tuple[int | None, ...]:
    return tuple(getattr(policy, kind.value) for kind in _KINDS)


@dataclass(frozen=True, slots=True)
class Breaker:
    """One deployment's breaker. Immutable: transitions return a new one."""

    state: BreakerState = BreakerState.HEALTHY
    until: float = 0.0  # COOLING_DOWN: when the deployment may be probed again
    reason: str = ""  # what started the current cooldown
    window_start: float = -math.inf  # start of the failure-counting window
    fails: tuple[int, ...] = _NO_FAILS  # failures per ErrorKind in the current window
    probe_until: float = 0.0  # HALF_OPEN: a probe is in flight until this lease ends

    @property
    def failures_in_window(self) -> int:
        return sum(self.fails)


HEALTHY = Breaker()


def effective_state(breaker: Breaker, now: float) -> BreakerState:
    """The state at ``now``: a cooldown whose deadline passed is half-open."""
    if breaker.state is BreakerState.COOLING_DOWN and now >= breaker.until:
        return BreakerState.HALF_OPEN
    return breaker.state


def available_at(breaker: Breaker, now: float) -> float:
    """When the breaker admits its next call; a value <= ``now`` means now."""
    state = breaker.state
    if state is BreakerState.HEALTHY:
        return now
    if state is BreakerState.COOLING_DOWN:
        if now < breaker.until:
            return breaker.until
        return now  # half-open by time; no probe can be in flight yet (begin_probe changes the state)
    # HALF_OPEN: one probe at a time. The lease ends a probe that never reported back.
    return breaker.probe_until if now < breaker.probe_until else now


def is_probe(breaker: Breaker, now: float) -> bool:
    """Whether a call admitted at ``now`` is the half-open probe."""
    return (
        breaker.state is not BreakerState.HEALTHY and effective_state(breaker, now) is BreakerState.HALF_OPEN
    )


def begin_probe(breaker: Breaker, now: float, lease: float) -> Breaker:
    """Admit the one probe; others wait until it reports back or ``lease`` seconds pass."""
    return replace(breaker, state=BreakerState.HALF_OPEN, probe_until=now + lease)


def release_probe(breaker: Breaker) -> Breaker:
    """The probe was abandoned (the client went away): let the next call probe instead."""
    if breaker.state is BreakerState.HALF_OPEN and breaker.probe_until:
        return replace(breaker, probe_until=0.0)
    return breaker


def on_success(breaker: Breaker, now: float) -> Breaker:
    """A call to the deployment succeeded (or was answered with a client error)."""
    if breaker.state is BreakerState.HEALTHY:
        return breaker
    if breaker.state is BreakerState.COOLING_DOWN and now < breaker.until:
        # A call that started before the cooldown finished late: the deadline stands.
        return breaker
    return HEALTHY


def on_failure(
    breaker: Breaker, now: float, failure: Failure, rules: CooldownRules, cooldown_time: float
) -> Breaker:
    """A call failed with ``failure``. ``cooldown_time`` is the deployment's (or the policy's)."""
    if rules.disabled:
        return HEALTHY
    if not failure.cools_down:
        # The upstream answered; the request was at fault. A half-open probe proved reachability.
        return on_success(breaker, now)
    if failure.retry_after is not None:
        return _cool(breaker, now, min(failure.retry_after, rules.max_cooldown_time), failure.reason)
    if effective_state(breaker, now) is BreakerState.HALF_OPEN:
        return _cool(breaker, now, cooldown_time, failure.reason)
    fails, window_start = breaker.fails, breaker.window_start
    if now - window_start >= rules.window:
        fails, window_start = _NO_FAILS, now
    index = _KIND_INDEX[failure.kind]
    count = fails[index] + 1
    if count > rules.threshold(failure.kind):
        return _cool(breaker, now, cooldown_time, failure.reason)
    fails = (*fails[:index], count, *fails[index + 1 :])
    return replace(breaker, fails=fails, window_start=window_start)


def _cool(breaker: Breaker, now: float, duration: float, reason: str) -> Breaker:
    until = now + max(duration, 0.0)
    if breaker.state is BreakerState.COOLING_DOWN and breaker.until >= until:
        return breaker  # deadlines only move later
    return Breaker(BreakerState.COOLING_DOWN, until=until, reason=reason, window_start=now, probe_until=0.0)


# --- the live record -------------------------------------------------------------------------------


def ewma(previous: float | None, sample: float, alpha: float) -> float:
    return sample if previous is None else previous + alpha * (sample - previous)


class DeploymentHealth:
    """Everything the router tracks about one deployment in this process.

    Mutable and unsynchronised: the router only touches it from the event loop, between awaits, so
    "check capacity, then count the call" is atomic. ``breaker`` is replaced, never mutated, and is
    written through :meth:`routerd.state.HealthStore.set_breaker` so that a shared store can mirror it.
    """

    __slots__ = (
        "breaker",
        "evicted",
        "failures",
        "in_flight",
        "last_error",
        "latency",
        "peer_in_flight",
        "peer_latency",
        "peer_sampled_at",
        "peer_ttft",
        "sampled_at",
        "successes",
        "ttft",
        "usage",
    )

    def __init__(self) -> None:
        self.breaker: Breaker = HEALTHY
        self.in_flight = 0
        self.latency: float | None = None  # EWMA of seconds per output token
        self.ttft: float | None = None  # EWMA of seconds to first chunk (streams)
        self.sampled_at = -math.inf  # when latency/ttft last changed
        # What other processes report through a shared store (approximate: as of its last sync).
        self.peer_in_flight = 0  # their calls in flight to this deployment
        self.peer_latency: float | None = None  # mean of their latency EWMAs
        self.peer_ttft: float | None = None
        self.peer_sampled_at = -math.inf  # when the peer values were pulled
        self.usage = UsageWindow()
        self.successes = 0
        self.failures = 0
        self.last_error = ""
        # its wildcard model was evicted while calls were in flight: forgotten when the last one ends
        self.evicted = False

    def observe_success(
        self, now: float, latency: float, completion_tokens: int, ttft: float | None, alpha: float
    ) -> None:
        self.successes += 1
        if ttft is not None:
            self.ttft = ewma(self.ttft, ttft, alpha)
        self.latency = ewma(self.latency, latency / max(completion_tokens, 1), alpha)
        self.sampled_at = now

    def observe_failure(self, now: float, elapsed: float, reason: str, penalise: bool, alpha: float) -> None:
        """Count a failure; when the deployment was at fault, push its latency up so routing avoids it."""
        self.failures += 1
        self.last_error = reason
        if penalise:
            # A failed call is scored as if its whole duration (at least a second) had been spent per
            # token: far worse than any real answer, and it decays as successes come back.
            sample = max(elapsed, 1.0)
            self.latency = ewma(self.latency, sample, alpha)
            self.ttft = ewma(self.ttft, sample, alpha)
            self.sampled_at = now
