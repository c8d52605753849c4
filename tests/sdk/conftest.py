"""Fixtures for the SDK tests: fake upstreams on loopback threads, and an environment without real keys."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import routerd.sdk.engine as engine
from routerd.providers.infer import DEFAULT_API_BASE_ENV, DEFAULT_API_KEY_ENV, DEFAULT_API_VERSION_ENV
from routerd.routing.executor import CallRouter as CoreRouter
from routerd.sdk.engine import router_cache
from routerd.sdk.loop import shared_http
from routerd.testing.anthropic_fake import FakeAnthropic
from routerd.testing.openai_fake import FakeAzureOpenAI, FakeOpenAI

OPENAI_KEY = "sk-test-openai-0123456789"
AZURE_KEY = "azure-test-key-0123456789"
ANTHROPIC_KEY = "sk-ant-test-0123456789"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No provider variable of the machine running the tests may leak into a call."""
    for table in (DEFAULT_API_KEY_ENV, DEFAULT_API_BASE_ENV, DEFAULT_API_VERSION_ENV):
        for name in table.values():
            monkeypatch.delenv(name, raising=False)
    for name in ("OPENAI_ORGANIZATION", "GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(name, raising=False)


@contextlib.contextmanager
def serve_in_thread(fake: Any) -> Iterator[Any]:
    """Run a fake upstream (anything with async ``start``/``close``) on its own loop and thread."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    failure: list[BaseException] = []

    def serve() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(fake.start())
        except BaseException as exc:
            failure.append(exc)
            ready.set()
            return
        ready.set()
        loop.run_forever()
        loop.run_until_complete(fake.close())
        loop.close()

    fake.test_loop = loop  # so tests can run the fake's own coroutines (wait_disconnect) on it
    thread = threading.Thread(target=serve, name="sdk-test-fake", daemon=True)
    thread.start()
    assert ready.wait(10), "fake upstream did not start"
    if failure:
        raise failure[0]
    try:
        yield fake
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


@pytest.fixture
def openai_fake() -> Iterator[FakeOpenAI]:
    with serve_in_thread(FakeOpenAI(api_key=OPENAI_KEY)) as fake:
        yield fake


@pytest.fixture
def azure_fake() -> Iterator[FakeAzureOpenAI]:
    with serve_in_thread(FakeAzureOpenAI(api_key=AZURE_KEY)) as fake:
        yield fake


@pytest.fixture
def anthropic_fake() -> Iterator[FakeAnthropic]:
    with serve_in_thread(FakeAnthropic(api_key=ANTHROPIC_KEY)) as fake:
        yield fake


@pytest.fixture
def openai_env(monkeypatch: pytest.MonkeyPatch, openai_fake: FakeOpenAI) -> FakeOpenAI:
    """OPENAI_API_KEY / OPENAI_API_BASE point at the fake, as a user's environment would."""
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("OPENAI_API_BASE", openai_fake.base_url)
    return openai_fake


@pytest.fixture
def provider_env(
    monkeypatch: pytest.MonkeyPatch,
    openai_env: FakeOpenAI,
    azure_fake: FakeAzureOpenAI,
    anthropic_fake: FakeAnthropic,
) -> dict[str, Any]:
    """Every provider's environment variables pointing at its fake."""
    monkeypatch.setenv("AZURE_API_KEY", AZURE_KEY)
    monkeypatch.setenv("AZURE_API_BASE", azure_fake.base_url or azure_fake.origin)
    monkeypatch.setenv("AZURE_API_VERSION", "2024-10-21")
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    monkeypatch.setenv("ANTHROPIC_API_BASE", anthropic_fake.base_url)
    return {"openai": openai_env, "azure": azure_fake, "anthropic": anthropic_fake}


@pytest.fixture
def instant_backoff(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Routers built by the SDK from here on sleep no real time between retries; delays are recorded."""
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    monkeypatch.setattr(
        engine, "new_core_router", lambda table: CoreRouter(table, http=shared_http(), sleep=sleep)
    )
    router_cache.clear()
    return delays


@pytest.fixture(autouse=True)
def module_settings_restored() -> Iterator[None]:
    """Module settings an example or test assigns (routerd.num_retries = 0, routerd.callbacks = [...])
    are put back afterwards, so no test sees another's."""
    import routerd
    from routerd.module_settings import DEFAULTS, LIST_SETTINGS

    names = [*DEFAULTS, *LIST_SETTINGS]
    saved = {name: getattr(routerd, name) for name in names}
    saved_lists = {name: list(getattr(routerd, name)) for name in LIST_SETTINGS}
    yield
    for name, value in saved.items():
        setattr(routerd, name, value)
    for name, items in saved_lists.items():
        getattr(routerd, name)[:] = items
