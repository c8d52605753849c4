"""Waiting in tests for an effect that happens in another thread, process or task.

One helper, used by every test that polls: it returns the condition's (truthy) result, and its failure
names what was awaited. The timeout is a bound on a hang, not an assertion about speed: tests never
assert how long something took (benchmarks do, in ``bench/``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["wait_for", "wait_for_async"]

T = TypeVar("T")


def wait_for(
    condition: Callable[[], T], what: str = "condition", *, timeout: float = 10.0, interval: float = 0.02
) -> T:
    """Call ``condition`` until it returns something truthy, and return that. AssertionError after
    ``timeout`` seconds, naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


async def wait_for_async(
    condition: Callable[[], Awaitable[T]],
    what: str = "condition",
    *,
    timeout: float = 10.0,
    interval: float = 0.01,
) -> T:
    """:func:`wait_for` for a coroutine condition, without blocking the event loop."""
    deadline = time.monotonic() + timeout
    while True:
        result = await condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(interval)
