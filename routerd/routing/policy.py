"""The retry policy inside one group, as a pure step: (state, outcome, now) -> (state, command).

The executor drives a group's attempts by asking :func:`step` what to do after each outcome:

* the outcome of :func:`~routerd.routing.plan.pick` (a :class:`~routerd.routing.plan.Pick` or a
  :class:`~routerd.routing.plan.Blocked`), or :data:`EXPIRED` when the call's deadline has passed;
* :class:`Failed`: the attempt on a picked deployment raised an error.

and executes the command it gets back: :class:`Attempt` (call the picked deployment), :class:`Repick`
(pick again now), :class:`Sleep` (then pick again) or :class:`GiveUp` (raise; the caller may then
fall back to another group). Nothing here awaits, reads a clock or touches health records: the same
inputs always give the same command (the backoff jitter is drawn from the ``rng`` passed in), so the
policy is tested from tables, like :func:`~routerd.routing.plan.pick`.

The rules, in the order they apply:

1. a failure within the retry budget (:func:`~routerd.routing.recovery.retries_allowed`) excludes
   the deployment that failed and picks again; beyond the budget the group gives up with that error;
2. a picked deployment is attempted; when it follows a failure that attempt is a retry (announced
   with no delay when it re-routes to another deployment without sleeping);
3. when every deployment is too small for the prompt, the group gives up with a context-window error
   if a ``context_window_fallbacks`` group exists, else lets the upstreams judge (the estimate may be
   pessimistic);
4. when the deployments not yet tried are unavailable after a failure, the same ones are retried after
   a jittered backoff -- unless the error is not retryable, a fallback group can take the call at
   once, or the backoff would pass the deadline;
5. when everything is cooling down and no fallback group exists, the call waits for the first
   deployment to return (polling while a half-open probe is in flight) if that fits the deadline;
6. otherwise the group gives up: 429 when only rate limits block, else 503.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, replace

from routerd.config.table import RetryPolicy
from routerd.errors import (
    ContextWindowExceededError,
    OpenAIError,
    RateLimitError,
    ServiceUnavailableError,
    Timeout,
)
from routerd.events import RetryScheduled
from routerd.routing.backoff import retry_delay
from routerd.routing.plan import Blocked, GroupPlan, Pick
from routerd.routing.recovery import CONTEXT_WINDOW, ERROR, fallback_reason, retries_allowed

__all__ = [
    "EXPIRED",
    "INITIAL",
    "REPICK",
    "Attempt",
    "Command",
    "Expired",
    "Failed",
    "GiveUp",
    "GroupRules",
    "GroupState",
    "Outcome",
    "Repick",
    "Sleep",
    "step",
]

# While a half-open deployment's single probe is in flight, waiters re-check this often (seconds).
PROBE_POLL = 0.25


@dataclass(frozen=True, slots=True)
class GroupRules:
    """What stays fixed while one call runs against one group."""

    plan: GroupPlan
    deadline: float  # the call's deadline (clock seconds)
    limit: float  # the call's whole timeout, for messages
    budget: int  # the group's num_retries (deployment-level, else router_settings)
    retry_policy: RetryPolicy
    request_retries: int | None  # the request's num_retries (already capped), if given
    backoff_base: float
    backoff_cap: float
    retry_after: float  # router_settings.retry_after: the least backoff
    max_retry_after: float  # the most an upstream's Retry-After may make us wait
    tokens: int  # estimated prompt tokens


@dataclass(frozen=True, slots=True)
class GroupState:
    """What one call has done in one group so far."""

    retries: int = 0  # retry budget spent (counted at the failure that asks for the retry)
    exclude: frozenset[str] = frozenset()  # deployments that failed since the last backoff
    last: OpenAIError | None = None  # the latest failure
    last_id: str = ""  # the deployment it came from
    retry_pending: bool = False  # the next attempt is a retry
    retry_announced: bool = False  # its RetryScheduled was already emitted (it needed a backoff)
    check_size: bool = True  # filter deployments by max_input_tokens


INITIAL = GroupState()
NO_SIZE_CHECK = GroupState(check_size=False)  # enable_pre_call_checks off: no max_input_tokens filter


@dataclass(frozen=True, slots=True)
class Expired:
    """The call's deadline passed before the next pick."""


EXPIRED = Expired()


@dataclass(frozen=True, slots=True)
class Failed:
    """The attempt on ``deployment_id`` failed with ``error`` (already accounted)."""

    error: OpenAIError
    deployment_id: str


Outcome = Pick | Blocked | Expired | Failed


@dataclass(frozen=True, slots=True)
class Attempt:
    """Call the picked deployment. ``retry``: this attempt is a retry (count it); ``announce``: emit it."""

    pick: Pick
    retry: bool = False
    announce: RetryScheduled | None = None


@dataclass(frozen=True, slots=True)
class Repick:
    """Pick again at once (a deployment was excluded, or the size filter was turned off)."""


REPICK = Repick()


@dataclass(frozen=True, slots=True)
class Sleep:
    """Sleep ``seconds``, then pick again; ``announce`` is emitted before sleeping."""

    seconds: float
    announce: RetryScheduled | None = None


@dataclass(frozen=True, slots=True)
class GiveUp:
    """The group cannot serve the call: raise ``error`` (chained to ``cause`` when it is another)."""

    error: OpenAIError
    cause: OpenAIError | None = None


Command = Attempt | Repick | Sleep | GiveUp

# reason -> whether a fallback group could take the call now (a query over the call's fallback lists)
FallbackOpen = Callable[[str | None], bool]


def step(
    state: GroupState,
    outcome: Outcome,
    now: float,
    rules: GroupRules,
    *,
    fallback_open: FallbackOpen,
    rng: random.Random,
) -> tuple[GroupState, Command]:
    """The next command after ``outcome``; see the module docstring for the rules."""
    if isinstance(outcome, Pick):
        return _attempt(state, outcome, rules)
    if isinstance(outcome, Failed):
        return _failed(state, outcome, rules)
    if isinstance(outcome, Expired):
        if state.last is not None:
            return state, GiveUp(state.last)
        message = (
            f"the call's {rules.limit:g}s timeout passed before a deployment of '{rules.plan.name}' answered"
        )
        return state, GiveUp(Timeout(message, model=rules.plan.name))
    return _blocked(state, outcome, now, rules, fallback_open, rng)


def _attempt(state: GroupState, choice: Pick, rules: GroupRules) -> tuple[GroupState, Command]:
    if not state.retry_pending or state.last is None:
        return state, Attempt(choice)
    announce = None
    if not state.retry_announced:  # re-routed to another deployment: no sleep
        announce = RetryScheduled(rules.plan.name, state.last_id, type(state.last).__name__, 0.0)
    return replace(state, retry_pending=False, retry_announced=False), Attempt(choice, True, announce)


def _failed(state: GroupState, failed: Failed, rules: GroupRules) -> tuple[GroupState, Command]:
    error = failed.error
    if state.retries >= retries_allowed(error, rules.budget, rules.retry_policy, rules.request_retries):
        return state, GiveUp(error)
    return (
        replace(
            state,
            retries=state.retries + 1,
            last=error,
            last_id=failed.deployment_id,
            exclude=state.exclude | {failed.deployment_id},
            retry_pending=True,
        ),
        REPICK,
    )


def _blocked(
    state: GroupState,
    blocked: Blocked,
    now: float,
    rules: GroupRules,
    fallback_open: FallbackOpen,
    rng: random.Random,
) -> tuple[GroupState, Command]:
    last = state.last
    if blocked.too_large and not state.exclude:
        if fallback_open(CONTEXT_WINDOW):
            return state, GiveUp(_context_window_error(rules))
        # Nowhere bigger to go: the estimate may be pessimistic, so let the upstream judge.
        return replace(state, check_size=False), REPICK
    if last is not None and state.exclude:
        # Every deployment not yet tried is unavailable: retry the same set after a backoff, unless a
        # fallback group can take the call right away, or the error said that deployment is
        # misconfigured (401/403/404: retrying it cannot help).
        if not last.retryable or fallback_open(fallback_reason(last)):
            return state, GiveUp(last)
        delay = retry_delay(
            state.retries,
            base=rules.backoff_base,
            cap=rules.backoff_cap,
            rng=rng,
            retry_after=last.retry_after,
            minimum=rules.retry_after,
            max_retry_after=rules.max_retry_after,
        )
        if now + delay >= rules.deadline:
            return state, GiveUp(last)
        announce = RetryScheduled(rules.plan.name, state.last_id, type(last).__name__, delay)
        return replace(state, exclude=frozenset(), retry_announced=True), Sleep(delay, announce)
    if blocked.cooling and not fallback_open(ERROR):
        # Everything is cooling down and nowhere else to go: wait for the first to return when that
        # fits the deadline.
        wake = min(blocked.until, now + PROBE_POLL) if blocked.probing else blocked.until
        if wake < rules.deadline:
            return state, Sleep(wake - now)
    return state, GiveUp(unavailable(rules.plan.name, blocked, now), last)


def unavailable(group: str, blocked: Blocked, now: float) -> OpenAIError:
    """The error for a group none of whose deployments can take a call now."""
    if blocked.rate_limited and not blocked.cooling:
        wait = blocked.limit_until - now
        return RateLimitError(
            f"every deployment of '{group}' is at its rpm/tpm limit; capacity frees in {wait:.1f}s",
            model=group,
            retry_after=wait,
        )
    wait = blocked.until - now
    retry_after = wait if wait != float("inf") else None
    when = f"; the first returns in {wait:.1f}s" if retry_after is not None else ""
    return ServiceUnavailableError(
        f"no deployment of '{group}' can take the call: all are cooling down after errors{when}",
        model=group,
        retry_after=retry_after,
    )


def _context_window_error(rules: GroupRules) -> ContextWindowExceededError:
    plan = rules.plan
    largest = max((c.max_input_tokens or 0) for c in plan.candidates)
    return ContextWindowExceededError(
        f"the prompt (about {rules.tokens} tokens) is larger than every deployment of '{plan.name}' accepts "
        f"(largest max_input_tokens: {largest})",
        model=plan.name,
        param="messages",
    )
