"""Requests and tokens per deployment over a sliding minute, in one-second buckets.

The window at time ``t`` holds the seconds ``floor(t) - 60 .. floor(t)``: 61 buckets, slightly more
than a minute. Admitting a call only when the window plus the call fits the limit therefore
guarantees that *no* 60-second span ever holds more than ``rpm`` calls (or ``tpm`` tokens), not just
each calendar minute: any span ending at an admitted call lies inside the window that admitted it.
Memory is constant (two lists of 61 ints) and each operation is O(1) amortised.

Token counts are estimates when a call starts and are corrected with the upstream's reported usage
when it ends (:meth:`UsageWindow.adjust`), so the ``tpm`` bound holds for what was known at admission.

Two knobs let a state store make one process's window part of a larger budget (see
:mod:`routerd.state`): ``share`` divides the limits (``--workers N`` without a shared store, or a
shared store that is unreachable, enforce ``limit // share`` per process), and :meth:`UsageWindow.hold`
records that the shared window refused an attempt, so the pure planner skips the deployment for
attempts at least that large until then.
"""

from __future__ import annotations

import math

__all__ = ["BUCKETS", "UsageWindow"]

BUCKETS = 61  # one per second: the current second and the 60 before it


class UsageWindow:
    """Sliding per-minute counts of requests and tokens for one deployment."""

    __slots__ = (
        "_requests",
        "_second",
        "_tokens",
        "held_requests",
        "held_tokens",
        "held_until",
        "requests",
        "share",
        "tokens",
    )

    def __init__(self) -> None:
        self._requests = [0] * BUCKETS
        self._tokens = [0] * BUCKETS
        self._second = -(2**62)  # the newest second seen
        self.requests = 0  # totals over the window as of the last advance
        self.tokens = 0
        self.share = 1  # this process enforces limit // share (at least 1)
        self.held_until = -math.inf  # a shared window refused an attempt; it fits then (local clock)
        self.held_requests = 0  # ... of this many calls
        self.held_tokens = 0  # ... and this many tokens: larger attempts are held too, smaller ones asked

    def _advance(self, now: float) -> int:
        second = math.floor(now)
        last = self._second
        if second <= last:
            return last  # a clock never runs backwards; if it did, count into the newest bucket
        if second - last >= BUCKETS:
            if self.requests or self.tokens:
                self._requests = [0] * BUCKETS
                self._tokens = [0] * BUCKETS
                self.requests = self.tokens = 0
        else:
            # Seconds last+1 .. second reuse the buckets of seconds 61 earlier, which left the window.
            requests, tokens = self._requests, self._tokens
            for s in range(last + 1, second + 1):
                i = s % BUCKETS
                if requests[i] or tokens[i]:
                    self.requests -= requests[i]
                    self.tokens -= tokens[i]
                    requests[i] = tokens[i] = 0
        self._second = second
        return second

    def used(self, now: float) -> tuple[int, int]:
        """(requests, tokens) in the window ending at ``now``."""
        self._advance(now)
        return self.requests, self.tokens

    def add(self, now: float, tokens: int, requests: int = 1) -> int:
        """Count ``requests`` calls (one attempt's) of ``tokens`` (estimated) tokens in all.

        Returns a stamp for :meth:`adjust`.
        """
        second = self._advance(now)
        i = second % BUCKETS
        self._requests[i] += requests
        self._tokens[i] += tokens
        self.requests += requests
        self.tokens += tokens
        return second

    def adjust(self, now: float, stamp: int, delta: int) -> None:
        """Correct the tokens of the call counted at ``stamp`` by ``delta`` once usage is known."""
        second = self._advance(now)
        if second - stamp >= BUCKETS or delta == 0:
            return  # that second already left the window
        i = stamp % BUCKETS
        delta = max(delta, -self._tokens[i])
        self._tokens[i] += delta
        self.tokens += delta

    def hold(self, until: float, requests: int, tokens: int) -> None:
        """A shared window refused an attempt of ``requests`` calls and ``tokens`` tokens until ``until``."""
        self.held_until, self.held_requests, self.held_tokens = until, requests, tokens

    def buckets(self, now: float) -> list[tuple[int, int, int]]:
        """(second, requests, tokens) of every non-empty second in the window, oldest first."""
        second = self._advance(now)
        out = []
        for s in range(second - BUCKETS + 1, second + 1):
            i = s % BUCKETS
            if self._requests[i] or self._tokens[i]:
                out.append((s, self._requests[i], self._tokens[i]))
        return out

    def free_at(self, now: float, rpm: int | None, tpm: int | None, tokens: int, requests: int = 1) -> float:
        """When ``requests`` more calls of ``tokens`` tokens fit ``rpm`` / ``tpm``: ``now`` if they fit.

        A single attempt larger than ``tpm`` (or making more calls than ``rpm``, as a text completion
        fanned out to one chat call per prompt does) is admitted into an empty window, otherwise it
        could never be served. ``math.inf`` when it can never fit (a limit of zero).
        """
        second = self._advance(now)
        if (rpm is not None and rpm <= 0) or (tpm is not None and tpm <= 0):
            return math.inf
        if self.held_until > now and requests >= self.held_requests and tokens >= self.held_tokens:
            return self.held_until
        if self.share > 1:
            rpm = _part(rpm, self.share)
            tpm = _part(tpm, self.share)
        calls = requests
        requests, used_tokens = self.requests, self.tokens
        if _fits(requests, used_tokens, rpm, tpm, tokens, calls):
            return now
        # Walk the buckets oldest first: bucket of second s leaves the window at s + BUCKETS.
        for s in range(second - BUCKETS + 1, second + 1):
            i = s % BUCKETS
            requests -= self._requests[i]
            used_tokens -= self._tokens[i]
            if _fits(requests, used_tokens, rpm, tpm, tokens, calls):
                return float(s + BUCKETS)
        return float(second + BUCKETS)  # unreachable: an empty window always fits


def _part(limit: int | None, share: int) -> int | None:
    # A limit smaller than the number of processes still admits one call per process: a limit of
    # zero would never serve (documented: such limits can be exceeded up to ``share`` times).
    return None if limit is None else max(limit // share, 1)


def _fits(requests: int, used_tokens: int, rpm: int | None, tpm: int | None, tokens: int, calls: int) -> bool:
    if rpm is not None and requests + calls > rpm and requests > 0:
        return False
    return tpm is None or used_tokens <= 0 or used_tokens + tokens <= tpm
