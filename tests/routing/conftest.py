"""Fixtures for router tests: a fake clock, the scripted adapter, an event recorder, a router factory."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from routerd.config.table import RoutingTable
from routerd.events import EventBus
from routerd.providers.base import register
from routerd.routing.executor import CallRouter
from routerd.testing.clock import FakeClock

from .fakes import FakeAdapter, Recorder


class NoHttp:
    """The fake adapter never touches HTTP; this stands in for the client."""

    closed = False

    async def request(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("no HTTP in router unit tests")

    def stream(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("no HTTP in router unit tests")

    async def aclose(self) -> None:
        self.closed = True


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def adapter(clock: FakeClock) -> FakeAdapter:
    fake = FakeAdapter(clock)
    register(fake)  # type: ignore[arg-type]
    return fake


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def make_router(
    clock: FakeClock, adapter: FakeAdapter, recorder: Recorder
) -> AsyncIterator[Callable[..., CallRouter]]:
    routers: list[CallRouter] = []

    def build(table: RoutingTable, seed: int = 7, **kwargs: Any) -> CallRouter:
        bus = EventBus()
        bus.subscribe(recorder)
        router = CallRouter(
            table,
            http=NoHttp(),  # type: ignore[arg-type]
            clock=clock,
            sleep=clock.sleep,
            rng=random.Random(seed),
            events=bus,
            **kwargs,
        )
        routers.append(router)
        return router

    yield build
    for router in routers:
        await router.aclose()
