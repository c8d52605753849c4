"""Per-key and per-team rate and concurrency limits: ``rpm_limit``, ``tpm_limit``, ``max_parallel_requests``.

Each key and each team has a sliding-minute :class:`~routerd.routing.usage.UsageWindow` (the same
window, with the same guarantee, as deployment limits: no 60-second span ever holds more than the
limit) and an in-flight count. A call is admitted only if its key *and* its team have room; it is then
counted against both at once, so a refused call leaves no trace. The state is bounded by the number of
declared keys and teams (:meth:`AccessLimits.retain` drops removed ones after a reload).

With a shared store (Redis) reachable, :meth:`AccessLimits.acquire` checks the limits cluster-wide
(:class:`routerd.state.access.SharedAccess`: leases, so most calls make no round trip, and one script
for key and team when one is needed); the windows here still count this process's calls, so that when
Redis is lost each process goes on with its share (``limit // processes``) and its recent counts.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from routerd.access.table import KeyPolicy
from routerd.errors import RateLimitError
from routerd.routing.usage import UsageWindow

if TYPE_CHECKING:
    from routerd.state.access import Refusal, ScopeLimits, SharedAccess

__all__ = ["AccessLimits", "Admission"]

# Times a call waits for another call's lease reservation of the same key or team before it reserves
# its own (each wait is one Redis round trip at most).
_CLAIM_TURNS = 3


@dataclass(slots=True)
class Admission:
    """A call counted against its key and team; give it back with :meth:`AccessLimits.release`."""

    scopes: tuple[str, ...]
    stamp: int
    tokens: int
    released: bool = False
    shared_tokens: tuple[str, ...] = ()  # scopes whose shared (Redis) tpm window counts the tokens
    slots: tuple[tuple[str, int | None], ...] = ()  # (scope, its parallel limit) holding shared slots


class AccessLimits:
    """This process's windows and in-flight counts per key and team."""

    def __init__(
        self,
        divisor: Callable[[], int] = lambda: 1,
        shared: Callable[[], SharedAccess | None] | None = None,
    ) -> None:
        # With N processes and no shared store, each enforces limit / N (see the scale-out docs).
        self._divisor = divisor
        self._shared = shared  # the shared store's key/team limits, when there is one
        self._windows: dict[str, UsageWindow] = {}
        self._in_flight: dict[str, int] = {}

    def admit_local(self, policy: KeyPolicy, tokens: int, now: float) -> Admission | None:
        """:meth:`admit` when this process decides alone (no shared store, or it is down); None when
        the shared store must be asked (await :meth:`acquire`). The gate's synchronous fast path:
        no coroutine is created for a call the memory store serves."""
        if self._shared is not None:
            shared = self._shared()
            if shared is not None and shared.up:
                return None
        return self.admit(policy, tokens, now)

    async def acquire(self, policy: KeyPolicy, tokens: int, now: float) -> Admission:
        """Like :meth:`admit`, cluster-wide when the shared store answers: at most one round trip
        (none when this process's leases and held slots cover the call); Redis failing -> local."""
        shared = self._shared() if self._shared is not None else None
        if shared is None or not shared.up:
            return self.admit(policy, tokens, now)
        if shared.windows is not self._windows:
            shared.windows = self._windows  # seeded into Redis when it comes back after an outage
        scopes = policy.limit_scopes
        claim = shared.claim(scopes, tokens, self._in_flight)
        for turn in range(_CLAIM_TURNS):  # bounded: the last turn reserves without waiting
            if claim.wait is None:
                break
            await asyncio.shield(claim.wait)
            claim = shared.claim(scopes, tokens, self._in_flight, wait=turn < _CLAIM_TURNS - 2)
        if claim.trip:
            # counted in flight across the await, so concurrent calls see the slot taken
            for name, _ in scopes:
                self._in_flight[name] = self._in_flight.get(name, 0) + 1
            try:
                refusal = await shared.grant(claim)
            except Exception as exc:  # Redis failed or was too slow: this process decides alone
                self._leave(scopes)
                shared.lost(exc)
                return self.admit(policy, tokens, now)
            except BaseException:
                self._leave(scopes)
                raise
            self._leave(scopes)
            if refusal is not None:
                raise _refused(refusal)
        admission = self._count(policy, tokens, now)
        admission.shared_tokens = claim.tokens_shared
        admission.slots = tuple(
            (name, limits.max_parallel_requests) for name, limits in scopes if name in claim.slots
        )
        return admission

    def _leave(self, scopes: Sequence[tuple[str, ScopeLimits]]) -> None:
        for name, _ in scopes:
            count = self._in_flight.get(name, 0) - 1
            if count > 0:
                self._in_flight[name] = count
            else:
                self._in_flight.pop(name, None)

    def _window(self, name: str) -> UsageWindow:
        window = self._windows.get(name)
        if window is None:
            window = self._windows[name] = UsageWindow()
        return window

    def admit(self, policy: KeyPolicy, tokens: int, now: float) -> Admission:
        """Count one call of ``tokens`` (estimated) tokens, or raise 429 with Retry-After.

        Each scope is checked and counted in one pass (one window update per scope); when the team
        refuses after the key's window counted the call, that count is taken back, so a refused call
        leaves no trace."""
        divisor = self._divisor()
        in_flight, windows = self._in_flight, self._windows
        counted: UsageWindow | None = None  # the key's window (scopes: key, then team) once it counted
        stamp = 0
        for name, limits in policy.limit_scopes:
            parallel, rpm, tpm = limits.max_parallel_requests, limits.rpm_limit, limits.tpm_limit
            if divisor > 1:
                parallel, rpm, tpm = (
                    _divided(parallel, divisor),
                    _divided(rpm, divisor),
                    _divided(tpm, divisor),
                )
            if parallel is not None and in_flight.get(name, 0) >= parallel:
                _take_back(counted, now, tokens)
                raise RateLimitError(
                    f"{_describe(name)} has {parallel} calls in flight (max_parallel_requests)",
                    retry_after=1.0,
                    code="parallel_request_limit",
                )
            if rpm is None and tpm is None:
                continue
            window = windows.get(name)
            if window is None:
                window = windows[name] = UsageWindow()
            free = window.free_at(now, rpm, tpm, tokens)
            if free > now:
                _take_back(counted, now, tokens)
                which = "rpm_limit" if rpm is not None and window.used(now)[0] + 1 > rpm else "tpm_limit"
                wait = 60.0 if math.isinf(free) else free - now
                raise RateLimitError(
                    f"{_describe(name)} reached its {which} ({rpm if which == 'rpm_limit' else tpm} per minute)",
                    retry_after=wait,
                    code=which,
                )
            stamp = window.add(now, tokens)
            counted = window
        names = policy.scope_names
        for name in names:
            in_flight[name] = in_flight.get(name, 0) + 1
        return Admission(names, stamp, tokens)

    def _count(self, policy: KeyPolicy, tokens: int, now: float) -> Admission:
        stamp = 0
        in_flight, windows = self._in_flight, self._windows
        for name, limits in policy.limit_scopes:
            in_flight[name] = in_flight.get(name, 0) + 1
            if limits.rpm_limit is not None or limits.tpm_limit is not None:
                window = windows.get(name)
                if window is None:
                    window = windows[name] = UsageWindow()
                stamp = window.add(now, tokens)
        return Admission(policy.scope_names, stamp, tokens)

    def settle(self, admission: Admission, tokens: int, now: float) -> None:
        """Correct the admitted token estimate with the real count."""
        delta = tokens - admission.tokens
        if delta:
            for name in admission.scopes:
                window = self._windows.get(name)
                if window is not None:
                    window.adjust(now, admission.stamp, delta)
            admission.tokens = tokens
            if admission.shared_tokens:
                shared = self._shared() if self._shared is not None else None
                if shared is not None and shared.up:
                    shared.correct(admission.shared_tokens, admission.stamp, delta)

    def release(self, admission: Admission) -> None:
        """The call ended: it no longer counts as in flight (its rpm/tpm stay in the window)."""
        if admission.released:
            return
        admission.released = True
        in_flight = self._in_flight
        for name in admission.scopes:
            count = in_flight.get(name, 0) - 1
            if count > 0:
                in_flight[name] = count
            else:
                in_flight.pop(name, None)
        if admission.slots:
            shared = self._shared() if self._shared is not None else None
            if shared is not None and shared.up:
                for name, parallel in admission.slots:
                    shared.release(name, in_flight.get(name, 0), parallel)

    def end(self, admission: Admission, tokens: int, now: float) -> None:
        """:meth:`settle` with the real count, then :meth:`release`: the call is over. A local
        admission (nothing shared) settles and releases each scope in one pass."""
        if admission.shared_tokens or admission.slots or admission.released:
            self.settle(admission, tokens, now)
            self.release(admission)
            return
        admission.released = True
        delta = tokens - admission.tokens
        admission.tokens = tokens
        in_flight, windows = self._in_flight, self._windows
        for name in admission.scopes:
            if delta:
                window = windows.get(name)
                if window is not None:
                    window.adjust(now, admission.stamp, delta)
            count = in_flight.get(name, 0) - 1
            if count > 0:
                in_flight[name] = count
            else:
                in_flight.pop(name, None)

    def in_flight(self, scope: str) -> int:
        return self._in_flight.get(scope, 0)

    def retain(self, keep: Callable[[str], bool]) -> None:
        """Forget the windows of keys and teams no longer declared (after a reload)."""
        for name in [n for n in self._windows if not keep(n)]:
            del self._windows[name]


def _refused(refusal: Refusal) -> RateLimitError:
    """The shared store's refusal, worded as the local check words it."""
    if refusal.kind == "parallel":
        return RateLimitError(
            f"{_describe(refusal.scope)} has {refusal.limit} calls in flight (max_parallel_requests)",
            retry_after=refusal.wait,
            code="parallel_request_limit",
        )
    which = f"{refusal.kind}_limit"
    return RateLimitError(
        f"{_describe(refusal.scope)} reached its {which} ({refusal.limit} per minute)",
        retry_after=refusal.wait,
        code=which,
    )


def _take_back(window: UsageWindow | None, now: float, tokens: int) -> None:
    """Undo a window's count of a call made at ``now`` (same second: the same bucket) when a later
    scope refuses it."""
    if window is not None:
        window.add(now, -tokens, -1)


def _divided(value: int | None, divisor: int) -> int | None:
    return None if value is None else max(1, value // divisor)


def _describe(scope: str) -> str:
    kind, _, name = scope.partition(":")
    return f"{kind} {name!r}"
