"""Exponential backoff with full jitter, honouring a server-given delay.

"Full jitter" draws the delay uniformly from ``[0, min(cap, base * 2**(retry - 1))]``: concurrent
clients that failed together spread out instead of retrying in lockstep. When the upstream said how
long to wait (``Retry-After`` / ``retry-after-ms``, carried on the error as ``retry_after``) the delay
is at least that, bounded by ``max_retry_after`` so a hostile or broken header cannot park a request.
"""

from __future__ import annotations

import random

__all__ = ["full_jitter", "retry_delay"]

# 2**60 seconds is beyond any cap; stop growing the exponent there so huge retry counts cannot overflow.
_MAX_EXPONENT = 60


def full_jitter(retry: int, base: float, cap: float, rng: random.Random) -> float:
    """Jittered delay before retry number ``retry`` (1 for the first retry); never above ``cap``."""
    exponent = min(max(retry - 1, 0), _MAX_EXPONENT)
    ceiling = min(cap, base * 2.0**exponent)
    return rng.uniform(0.0, ceiling) if ceiling > 0 else 0.0


def retry_delay(
    retry: int,
    *,
    base: float,
    cap: float,
    rng: random.Random,
    retry_after: float | None = None,
    minimum: float = 0.0,
    max_retry_after: float = 300.0,
) -> float:
    """Seconds to sleep before retry number ``retry``.

    The jittered part never exceeds ``cap``; the result is at least ``retry_after`` (capped at
    ``max_retry_after``) and at least ``minimum`` (``router_settings.retry_after``).
    """
    delay = full_jitter(retry, base, cap, rng)
    floor = minimum
    if retry_after is not None and retry_after > 0:
        floor = max(floor, min(retry_after, max_retry_after))
    return max(delay, floor)
