"""Router settings that had no test of their own effect: each test compares the setting with its absence.

Listed in tests/documented_settings.py.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from routerd.config.table import RouterPolicy
from routerd.errors import InternalServerError
from routerd.routing.executor import CallRouter
from routerd.testing.clock import FakeClock

from .fakes import FakeAdapter, chat, dep, fail, make_table, ok

RouterFactory = Callable[..., CallRouter]


def server_error() -> InternalServerError:
    return InternalServerError("upstream 500", upstream_status=500)


# No jitter (base and cap 0), so every sleep is the floor the settings put under it.
NO_BACKOFF = {"num_retries": 1, "allowed_fails": 10, "backoff_base": 0.0, "backoff_cap": 0.0}


@pytest.mark.parametrize(("retry_after", "slept"), [(2.5, [2.5]), (0.0, [0.0])])
async def test_retry_after_is_the_minimum_sleep_before_a_retry(
    make_router: RouterFactory, adapter: FakeAdapter, clock: FakeClock, retry_after: float, slept: list[float]
) -> None:
    # router_settings.retry_after: the least a retry of the same deployments waits
    adapter.script("solo", fail(server_error), ok())
    policy = RouterPolicy(retry_after=retry_after, **NO_BACKOFF)
    router = make_router(make_table({"g": [dep("solo")]}, policy=policy))
    result = await router.call("chat", chat())
    assert result.info.retries == 1
    assert clock.sleeps == slept


@pytest.mark.parametrize(("deployment_timeout", "attempt_timeout"), [(3.0, 3.0), (None, 600.0)])
async def test_deployment_timeout_bounds_each_attempt(
    make_router: RouterFactory, adapter: FakeAdapter, deployment_timeout: float | None, attempt_timeout: float
) -> None:
    # litellm_params.timeout: an attempt on this deployment gets at most that long
    adapter.script("solo", ok())
    router = make_router(make_table({"g": [dep("solo", timeout=deployment_timeout)]}))
    await router.call("chat", chat())
    assert adapter.requests[-1].timeout == pytest.approx(attempt_timeout)


@pytest.mark.parametrize(("timeout", "attempts"), [(10.0, 3), (20.0, 5)])
async def test_router_timeout_bounds_the_whole_call(
    make_router: RouterFactory, adapter: FakeAdapter, timeout: float, attempts: int
) -> None:
    # router_settings.timeout (litellm_settings.request_timeout): every attempt and retry within it
    adapter.script("solo", fail(server_error, latency=4.0))
    policy = RouterPolicy(timeout=timeout, num_retries=10, allowed_fails=100, backoff_base=0.0)
    router = make_router(make_table({"g": [dep("solo")]}, policy=policy))
    with pytest.raises(InternalServerError):
        await router.call("chat", chat())
    assert len(adapter.calls) == attempts  # one every 4 s until the deadline
