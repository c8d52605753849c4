"""Fixtures shared by the whole suite. Keep this small and generic; area-specific fixtures live in
the area's own conftest.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from clients import close_tracked
from hypothesis import HealthCheck, settings

from routerd.http import FastHttpClient, HttpClient, HttpxClient
from routerd.testing import FakeClock

# Property tests check properties, not speed: on a loaded CI machine (two cores shared with the other
# xdist worker and the servers the suite starts) hypothesis's 200 ms per-example deadline and its
# too-slow health check failed correct code. Examples stay random; a failure still prints its seed.
settings.register_profile("routerd", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("routerd")


@pytest.fixture(autouse=True)
def _close_tracked_clients() -> Iterator[None]:
    """Close the clients helpers opened for this test (see tests/clients.py)."""
    yield
    close_tracked()


@pytest.fixture
def fake_clock() -> FakeClock:
    """A clock that moves only when told (pass ``fake_clock.monotonic`` / ``fake_clock.sleep``)."""
    return FakeClock()


@pytest.fixture(params=["httpx", "fast"])
async def http_client(request: pytest.FixtureRequest) -> AsyncIterator[HttpClient]:
    """Each of routerd's HTTP clients in turn: a test using it runs once per transport."""
    clients: dict[str, type[HttpClient]] = {
        "httpx": HttpxClient,
        "fast": FastHttpClient,
    }
    client = clients[request.param]()
    try:
        yield client
    finally:
        await client.aclose()
