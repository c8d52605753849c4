"""Fixtures of the end-to-end tests (helpers live in support.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from routerd.testing import FakeOpenAI
from routerd.testing.server import RouterdServer

from .support import OPENAI_KEY, OPENAI_KEY_ENV, gateway_config, reset, running_fake, write_config


@pytest.fixture(scope="module")
def fake_openai() -> Iterator[FakeOpenAI]:
    """A FakeOpenAI that requires ``OPENAI_KEY``, shared by a module (reset before every test)."""
    with running_fake(FakeOpenAI(api_key=OPENAI_KEY)) as fake:
        yield fake


@pytest.fixture(scope="module")
def gateway_server(
    fake_openai: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RouterdServer]:
    """The daemon on ``gateway_config``: upstream key from the environment, as operators set it."""
    config = write_config(tmp_path_factory.mktemp("gateway"), gateway_config(fake_openai.base_url))
    with pytest.MonkeyPatch.context() as env:
        env.setenv(OPENAI_KEY_ENV, OPENAI_KEY)
        server = RouterdServer.from_file(config)
    with server:
        yield server


@pytest.fixture
def gateway(gateway_server: RouterdServer, fake_openai: FakeOpenAI) -> RouterdServer:
    """The shared daemon, its fake upstream's history and script cleared."""
    reset(fake_openai)
    return gateway_server
