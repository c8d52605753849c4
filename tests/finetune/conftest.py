"""A gateway on a free port in front of stateful OpenAI, Azure and Vertex AI fakes.

The gateway is the real app (uvicorn in a thread, see :class:`RouterdServer`) built from a YAML config
through the config pipeline; the fakes run on the test's event loop, so tests drive them with the
official ``openai.AsyncOpenAI`` client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest

from routerd.events import ManagementRequest
from routerd.settings import Settings
from routerd.testing.finetune_fakes import FakeAzureFineTuning, FakeOpenAIFineTuning, FakeVertexFineTuning
from routerd.testing.gemini_fake import FakeGoogleToken, make_service_account
from routerd.testing.server import RouterdServer
from tests.finetune.support import (
    AZURE_KEY,
    BUCKET,
    LOCATION,
    MASTER_KEY,
    OPENAI_KEY,
    PROJECT,
    Gateway,
    Upstreams,
    build_app,
    config_text,
)

GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"


class GoogleTokenEndpoint(FakeGoogleToken):
    """The fake token endpoint, expecting the audience google-auth really signs: Google's own token URL,
    whatever ``token_uri`` the credentials send the grant to."""

    @property
    def token_uri(self) -> str:
        return GOOGLE_TOKEN_AUDIENCE


@pytest.fixture(scope="session")
def service_account() -> tuple[dict[str, Any], bytes]:
    """One throwaway key for the session: generating an RSA key per test is most of a test's time."""
    return make_service_account("http://127.0.0.1:1/token", project_id=PROJECT)


@pytest.fixture
async def upstreams(
    tmp_path: Path, service_account: tuple[dict[str, Any], bytes]
) -> AsyncIterator[Upstreams]:
    key, public_pem = service_account
    token = GoogleTokenEndpoint(public_pem)
    await token.start()
    info = {**key, "token_uri": f"{token.base_url}/token"}
    credentials_path = tmp_path / "service-account.json"
    credentials_path.write_bytes(orjson.dumps(info))
    fakes = Upstreams(
        openai=FakeOpenAIFineTuning(api_key=OPENAI_KEY),
        azure=FakeAzureFineTuning(api_key=AZURE_KEY),
        vertex=FakeVertexFineTuning(
            project=PROJECT, location=LOCATION, buckets=(BUCKET,), tokens=token.issued
        ),
        token=token,
        credentials_path=credentials_path,
    )
    for fake in (fakes.openai, fakes.azure, fakes.vertex):
        await fake.start()
    try:
        yield fakes
    finally:
        for fake in (fakes.openai, fakes.azure, fakes.vertex, fakes.token):
            await fake.close()


StartGateway = Callable[..., Gateway]


@pytest.fixture
async def start_gateway(upstreams: Upstreams, tmp_path: Path) -> AsyncIterator[StartGateway]:
    started: list[Gateway] = []

    def start(config: str | None = None, **settings: Any) -> Gateway:
        path = tmp_path / f"config-{len(started)}.yaml"
        path.write_text(config if config is not None else config_text(upstreams))
        app = build_app(path, Settings(watch=False, log_requests=False, **settings))
        server = RouterdServer(app).start()
        client = openai.AsyncOpenAI(base_url=server.base_url + "/v1", api_key=MASTER_KEY, max_retries=0)
        gateway = Gateway(server, app, client)
        app.state.routerd.events.subscribe(
            lambda event: gateway.records.append(event) if isinstance(event, ManagementRequest) else None
        )
        started.append(gateway)
        return gateway

    try:
        yield start
    finally:
        for gateway in started:
            await gateway.client.close()
            gateway.server.stop()


@pytest.fixture
def gateway(start_gateway: StartGateway) -> Gateway:
    return start_gateway()
