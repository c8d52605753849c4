"""Fixtures for the metrics tests: a private registry fed through a real event bus, on a fake clock."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from routerd.events import EventBus
from routerd.metrics import MetricsRuntime
from routerd.testing import FakeClock


@dataclass
class Rig:
    runtime: MetricsRuntime
    bus: EventBus
    clock: FakeClock

    def value(self, name: str, **labels: str) -> float | None:
        """A sample's current value (None when the series does not exist)."""
        return self.runtime.registry.get_sample_value(name, labels)

    def emit(self, *events: Any) -> None:
        for event in events:
            self.bus.emit(event)


@pytest.fixture
def rig(fake_clock: FakeClock) -> Rig:
    runtime = MetricsRuntime(clock=fake_clock.monotonic, process_metrics=False)
    bus = EventBus()
    bus.subscribe(runtime.recorder)
    return Rig(runtime, bus, fake_clock)


def require_binary(name: str) -> str:
    """The path of ``name``; skipped only when it is missing outside CI (in CI a missing tool fails)."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is required in CI (Debian package 'prometheus'; .ci/run installs it)")
        pytest.skip(f"{name} not installed (apt-get install prometheus)")
    return path


@pytest.fixture
def promtool() -> Iterator[str]:
    yield require_binary("promtool")
