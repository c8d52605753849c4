"""A fake clock for tests of anything that waits: backoff, cooldowns, latency, timeouts.

Code under test takes its clock and sleep function as parameters; tests pass a :class:`FakeClock`'s
so time moves only when the test (or a sleep) says so, and nothing waits for real::

    clock = FakeClock()
    router = CallRouter(table, clock=clock.monotonic, sleep=clock.sleep)
    ...
    clock.advance(30)            # a cooldown of 30 s has now passed
    assert clock.sleeps == [0.5]  # the retry slept once, for 0.5 s
"""

from __future__ import annotations

import asyncio

__all__ = ["FakeClock"]


class FakeClock:
    """Monotonic and wall-clock time that advance only on :meth:`advance` or :meth:`sleep`."""

    def __init__(self, monotonic: float = 1000.0, wall: float = 1_700_000_000.0) -> None:
        self._monotonic = float(monotonic)
        self._offset = float(wall) - float(monotonic)  # wall = monotonic + offset, always
        #: every duration :meth:`sleep` was asked for, in order
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        """Like :func:`time.monotonic`."""
        return self._monotonic

    def time(self) -> float:
        """Like :func:`time.time` (seconds since the epoch)."""
        return self._monotonic + self._offset

    def __call__(self) -> float:
        """The monotonic time, so the clock itself can be passed where a ``clock()`` is expected."""
        return self._monotonic

    def advance(self, seconds: float) -> None:
        """Move both clocks forward by ``seconds`` (never backward)."""
        if seconds < 0:
            raise ValueError("a clock does not go backwards")
        self._monotonic += seconds

    async def sleep(self, seconds: float) -> None:
        """An ``asyncio.sleep`` that advances the clock instead of waiting.

        It still yields to the event loop once, so other tasks run as they would during a sleep.
        """
        seconds = max(0.0, float(seconds))
        self.sleeps.append(seconds)
        self._monotonic += seconds
        await asyncio.sleep(0)
