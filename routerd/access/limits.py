"""Per-key and per-team rate and concurrency limits: ``rpm_limit``, ``tpm_limit``, ``max_parallel_requests``.

Each key and each team has a sliding-minute :class:`~routerd.routing.usage.UsageWindow` (the same
window, with the same guarantee, as deployment limits: no 60-second span ever holds more than the
limit) and an in-flight count. A call is admitted only if its key *and* its team have room; it is then
counted against both at once, so a refused call leaves no trace. The state is bounded by the number of
declared keys and teams (:meth:`AccessLimits.retain` drops removed ones after a reload).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from routerd.access.table import KeyPolicy, TeamPolicy
from routerd.errors import RateLimitError
from routerd.routing.usage import UsageWindow

__all__ = ["AccessLimits", "Admission"]


@dataclass(slots=True)
class Admission:
    """A call counted against its key and team; give it back with :meth:`AccessLimits.release`."""

    scopes: tuple[str, ...]
    stamp: int
    tokens: int
    released: bool = False


def _scopes(policy: KeyPolicy) -> list[tuple[str, KeyPolicy | TeamPolicy]]:
    scopes: list[tuple[str, KeyPolicy | TeamPolicy]] = [(f"key:{policy.alias}", policy)]
    if policy.team is not None:
        scopes.append((f"team:{policy.team.team_id}", policy.team))
    return scopes


class AccessLimits:
    """This process's windows and in-flight counts per key and team."""

    def __init__(self, divisor: Callable[[], int] = lambda: 1) -> None:
        # With N processes and no shared store, each enforces limit / N (see the scale-out docs).
        self._divisor = divisor
        self._windows: dict[str, UsageWindow] = {}
        self._in_flight: dict[str, int] = {}

    def _window(self, name: str) -> UsageWindow:
        window = self._windows.get(name)
        if window is None:
            window = self._windows[name] = UsageWindow()
        return window

    def admit(self, policy: KeyPolicy, tokens: int, now: float) -> Admission:
        """Count one call of ``tokens`` (estimated) tokens, or raise 429 with Retry-After."""
        scopes = _scopes(policy)
        divisor = max(1, self._divisor())
        for name, limits in scopes:
            parallel = _divided(limits.max_parallel_requests, divisor)
            if parallel is not None and self._in_flight.get(name, 0) >= parallel:
                raise RateLimitError(
                    f"{_describe(name)} has {parallel} calls in flight (max_parallel_requests)",
                    retry_after=1.0,
                    code="parallel_request_limit",
                )
            rpm, tpm = _divided(limits.rpm_limit, divisor), _divided(limits.tpm_limit, divisor)
            if rpm is None and tpm is None:
                continue
            window = self._window(name)
            free = window.free_at(now, rpm, tpm, tokens)
            if free > now:
                which = "rpm_limit" if rpm is not None and window.used(now)[0] + 1 > rpm else "tpm_limit"
                wait = 60.0 if math.isinf(free) else free - now
                raise RateLimitError(
                    f"{_describe(name)} reached its {which} ({rpm if which == 'rpm_limit' else tpm} per minute)",
                    retry_after=wait,
                    code=which,
                )
        stamp = 0
        for name, limits in scopes:
            self._in_flight[name] = self._in_flight.get(name, 0) + 1
            if limits.rpm_limit is not None or limits.tpm_limit is not None:
                stamp = self._window(name).add(now, tokens)
        return Admission(tuple(name for name, _ in scopes), stamp, tokens)

    def settle(self, admission: Admission, tokens: int, now: float) -> None:
        """Correct the admitted token estimate with the real count."""
        delta = tokens - admission.tokens
        if delta:
            for name in admission.scopes:
                window = self._windows.get(name)
                if window is not None:
                    window.adjust(now, admission.stamp, delta)
            admission.tokens = tokens

    def release(self, admission: Admission) -> None:
        """The call ended: it no longer counts as in flight (its rpm/tpm stay in the window)."""
        if admission.released:
            return
        admission.released = True
        for name in admission.scopes:
            count = self._in_flight.get(name, 0) - 1
            if count > 0:
                self._in_flight[name] = count
            else:
                self._in_flight.pop(name, None)

    def in_flight(self, scope: str) -> int:
        return self._in_flight.get(scope, 0)

    def retain(self, keep: Callable[[str], bool]) -> None:
        """Forget the windows of keys and teams no longer declared (after a reload)."""
        for name in [n for n in self._windows if not keep(n)]:
            del self._windows[name]


def _divided(value: int | None, divisor: int) -> int | None:
    return None if value is None else max(1, value // divisor)


def _describe(scope: str) -> str:
    kind, _, name = scope.partition(":")
    return f"{kind} {name!r}"
