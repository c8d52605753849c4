"""The ``vertex_ai/`` adapter: URLs, authentication (access token, service account via a fake token
endpoint, token caching and refresh), and calls against the fake Vertex AI."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest

from routerd import errors
from routerd.config.table import Deployment
from routerd.http import HttpClient
from routerd.providers.base import UpstreamRequest, get_adapter
from routerd.providers.google_auth import CLOUD_PLATFORM_SCOPE
from routerd.providers.vertex import VertexAdapter, api_host, model_resource
from routerd.testing.gemini_fake import FakeGemini, FakeGoogleToken, GeminiReply, make_service_account

MODEL = "gemini-2.5-flash"
ACCESS_TOKEN = "ya29.static-access-token"
MakeDeployment = Callable[..., Deployment]

VERTEX_ENV = (
    "VERTEXAI_PROJECT",
    "VERTEX_PROJECT",
    "GOOGLE_CLOUD_PROJECT",
    "VERTEXAI_LOCATION",
    "VERTEX_LOCATION",
    "GOOGLE_APPLICATION_CREDENTIALS",
)


@pytest.fixture(autouse=True)
def _no_vertex_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in VERTEX_ENV:
        monkeypatch.delenv(name, raising=False)


class Clock:
    """Wall time that moves only when told, starting now (token expiries are real timestamps)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def token_server() -> AsyncIterator[FakeGoogleToken]:
    async with FakeGoogleToken(expires_in=3600) as server:
        yield server


@pytest.fixture
def service_account(token_server: FakeGoogleToken) -> dict[str, Any]:
    """A service-account key generated for this test, pointing at the fake token endpoint."""
    info, public_pem = make_service_account(token_server.token_uri, project_id="sa-project")
    token_server.public_key_pem = public_pem
    return info


@pytest.fixture
async def fake(token_server: FakeGoogleToken) -> AsyncIterator[FakeGemini]:
    # accepts the configured access token and whatever the token endpoint issues
    token_server.issued.add(ACCESS_TOKEN)
    async with FakeGemini(tokens=token_server.issued) as server:
        yield server


def vertex(
    fake: FakeGemini,
    make: MakeDeployment,
    model: str = MODEL,
    *,
    adapter: VertexAdapter | None = None,
    **extra: Any,
) -> Deployment:
    """A deployment against the fake, prepared by ``adapter`` (whose clock and token cache it uses)."""
    api_key = extra.pop("api_key", None)
    deployment = make("vertex_ai", model, prepare=False, api_base=fake.base_url, api_key=api_key, extra=extra)
    return replace(deployment, prepared=(adapter or VertexAdapter()).prepare(deployment))


def call(deployment: Deployment, body: dict[str, Any] | None = None, **fields: Any) -> UpstreamRequest:
    body = body or {"messages": [{"role": "user", "content": "hello"}]}
    return UpstreamRequest(deployment=deployment, body={"model": "vx", **body}, timeout=10.0, **fields)


def test_registered_under_its_name() -> None:
    assert isinstance(get_adapter("vertex_ai"), VertexAdapter)


@pytest.mark.parametrize(
    ("model", "resource"),
    [
        ("gemini-2.5-pro", "projects/p/locations/europe-west4/publishers/google/models/gemini-2.5-pro"),
        ("1234567890", "projects/p/locations/europe-west4/endpoints/1234567890"),
        ("projects/other/locations/us-east1/endpoints/42", "projects/other/locations/us-east1/endpoints/42"),
    ],
)
def test_model_resource(model: str, resource: str) -> None:
    assert model_resource(model, "p", "europe-west4") == resource


def test_api_host() -> None:
    assert api_host("us-central1") == "https://us-central1-aiplatform.googleapis.com"
    assert api_host("global") == "https://aiplatform.googleapis.com"


def test_api_base_with_a_version_is_kept(make_deployment: MakeDeployment) -> None:
    deployment = make_deployment(
        "vertex_ai",
        MODEL,
        api_key=ACCESS_TOKEN,
        api_base="https://psc.example/v1beta1/",
        extra={"vertex_project": "p"},
    )
    assert deployment.prepared.base == "https://psc.example/v1beta1"


def test_default_url_from_environment(
    monkeypatch: pytest.MonkeyPatch, make_deployment: MakeDeployment
) -> None:
    monkeypatch.setenv("VERTEXAI_PROJECT", "env-project")
    monkeypatch.setenv("VERTEXAI_LOCATION", "europe-west1")
    deployment = make_deployment("vertex_ai", MODEL, api_key=ACCESS_TOKEN)
    target = deployment.prepared
    assert target.base == "https://europe-west1-aiplatform.googleapis.com/v1"
    assert (target.project, target.location) == ("env-project", "europe-west1")
    assert ACCESS_TOKEN not in repr(target)


# --- access token given directly -----------------------------------------------------------------


async def test_access_token_plain_and_streamed(
    http_client: HttpClient, fake: FakeGemini, make_deployment: MakeDeployment
) -> None:
    deployment = vertex(
        fake, make_deployment, api_key=ACCESS_TOKEN, vertex_project="p1", vertex_location="asia-east1"
    )
    adapter = VertexAdapter()
    response = await adapter.chat(http_client, call(deployment))
    sent = fake.requests[-1]
    assert (
        sent.path == f"/v1/projects/p1/locations/asia-east1/publishers/google/models/{MODEL}:generateContent"
    )
    assert sent.headers["authorization"] == f"Bearer {ACCESS_TOKEN}"
    assert response.body["choices"][0]["message"]["content"] == "echo: hello"

    fake.enqueue(GeminiReply.text("streamed from vertex"))
    body = {"messages": [{"role": "user", "content": "hi"}], "stream": True}
    chunks = [c async for c in adapter.chat_stream(http_client, call(deployment, body))]
    assert fake.requests[-1].path.endswith(":streamGenerateContent")
    assert fake.requests[-1].query == {"alt": "sse"}
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "streamed from vertex"


async def test_tuned_endpoint(
    http_client: HttpClient, fake: FakeGemini, make_deployment: MakeDeployment
) -> None:
    deployment = vertex(fake, make_deployment, "4455667788", api_key=ACCESS_TOKEN, vertex_project="p1")
    await VertexAdapter().chat(http_client, call(deployment))
    assert (
        fake.requests[-1].path == "/v1/projects/p1/locations/us-central1/endpoints/4455667788:generateContent"
    )


async def test_project_is_required_with_an_access_token(
    http_client: HttpClient, fake: FakeGemini, make_deployment: MakeDeployment
) -> None:
    deployment = vertex(fake, make_deployment, api_key=ACCESS_TOKEN)
    with pytest.raises(errors.AuthenticationError) as info:
        await VertexAdapter().chat(http_client, call(deployment))
    assert "VERTEXAI_PROJECT" in info.value.message
    assert fake.requests == []


async def test_safety_block_through_vertex(
    http_client: HttpClient, fake: FakeGemini, make_deployment: MakeDeployment
) -> None:
    deployment = vertex(fake, make_deployment, api_key=ACCESS_TOKEN, vertex_project="p1")
    fake.enqueue(GeminiReply(prompt_block="PROHIBITED_CONTENT"))
    with pytest.raises(errors.ContentPolicyViolationError) as info:
        await VertexAdapter().chat(http_client, call(deployment))
    assert info.value.llm_provider == "vertex_ai"


# --- service account -----------------------------------------------------------------------------


async def test_service_account_json_string(
    http_client: HttpClient,
    fake: FakeGemini,
    token_server: FakeGoogleToken,
    service_account: dict[str, Any],
    make_deployment: MakeDeployment,
) -> None:
    adapter = VertexAdapter()
    credentials = orjson.dumps(service_account).decode()
    deployment = vertex(
        fake, make_deployment, adapter=adapter, vertex_credentials=credentials, vertex_project="p1"
    )
    await adapter.chat(http_client, call(deployment))

    grant = token_server.requests[-1]
    assert grant.path == "/token"
    assert grant.headers["content-type"] == "application/x-www-form-urlencoded"
    claims = token_server.claims[-1]  # the assertion's signature checked out against the generated key
    assert claims["iss"] == service_account["client_email"]
    assert claims["scope"] == CLOUD_PLATFORM_SCOPE
    assert claims["aud"] == "https://oauth2.googleapis.com/token"
    bearer = fake.requests[-1].headers["authorization"]
    assert bearer.removeprefix("Bearer ") in token_server.issued - {ACCESS_TOKEN}


async def test_token_is_cached_and_refreshed_before_expiry(
    http_client: HttpClient,
    fake: FakeGemini,
    token_server: FakeGoogleToken,
    service_account: dict[str, Any],
    make_deployment: MakeDeployment,
) -> None:
    clock = Clock()
    adapter = VertexAdapter(clock=clock, refresh_margin=300)
    deployment = vertex(
        fake, make_deployment, adapter=adapter, vertex_credentials=service_account, vertex_project="p1"
    )

    await adapter.chat(http_client, call(deployment))
    await adapter.chat(http_client, call(deployment))
    assert len(token_server.requests) == 1
    first = fake.requests[-1].headers["authorization"]

    expires_at = adapter.token_source(service_account).expires_at
    assert expires_at is not None
    assert expires_at - clock.now == pytest.approx(3600, abs=60)  # the endpoint's expires_in
    clock.now = expires_at - 301  # still more than the margin before expiry
    await adapter.chat(http_client, call(deployment))
    assert len(token_server.requests) == 1

    clock.now = expires_at - 299  # now within the margin: renewed before it expires
    await adapter.chat(http_client, call(deployment))
    assert len(token_server.requests) == 2
    assert fake.requests[-1].headers["authorization"] != first


async def test_concurrent_requests_share_one_refresh(
    http_client: HttpClient,
    fake: FakeGemini,
    token_server: FakeGoogleToken,
    service_account: dict[str, Any],
    make_deployment: MakeDeployment,
) -> None:
    adapter = VertexAdapter()
    deployment = vertex(
        fake, make_deployment, adapter=adapter, vertex_credentials=service_account, vertex_project="p1"
    )
    await asyncio.gather(*(adapter.chat(http_client, call(deployment)) for _ in range(6)))
    assert len(token_server.requests) == 1
    assert len({r.headers["authorization"] for r in fake.requests}) == 1


async def test_credentials_file_from_the_environment_and_project_from_the_key(
    http_client: HttpClient,
    fake: FakeGemini,
    token_server: FakeGoogleToken,
    service_account: dict[str, Any],
    make_deployment: MakeDeployment,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    key_file = tmp_path / "sa.json"
    key_file.write_bytes(orjson.dumps(service_account))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
    deployment = vertex(fake, make_deployment)
    await VertexAdapter().chat(http_client, call(deployment))
    assert fake.requests[-1].path.startswith("/v1/projects/sa-project/locations/us-central1/")
    assert len(token_server.claims) == 1


async def test_token_endpoint_refusal_is_an_authentication_error(
    http_client: HttpClient,
    fake: FakeGemini,
    token_server: FakeGoogleToken,
    service_account: dict[str, Any],
    make_deployment: MakeDeployment,
) -> None:
    token_server.fail_with = (400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
    deployment = vertex(fake, make_deployment, vertex_credentials=service_account, vertex_project="p1")
    with pytest.raises(errors.AuthenticationError) as info:
        await VertexAdapter().chat(http_client, call(deployment))
    assert "invalid_grant" in info.value.message
    assert info.value.deployment_id == deployment.id
    assert service_account["private_key"] not in str(info.value)
    assert fake.requests == []


async def test_unreadable_credentials_are_an_authentication_error(
    http_client: HttpClient, fake: FakeGemini, make_deployment: MakeDeployment, tmp_path: Path
) -> None:
    deployment = vertex(
        fake, make_deployment, vertex_credentials=str(tmp_path / "missing.json"), vertex_project="p"
    )
    with pytest.raises(errors.AuthenticationError):
        await VertexAdapter().chat(http_client, call(deployment))
    secret_text = '{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----'  # truncated JSON
    deployment = vertex(fake, make_deployment, vertex_credentials=secret_text, vertex_project="p")
    with pytest.raises(errors.AuthenticationError) as info:
        await VertexAdapter().chat(http_client, call(deployment))
    assert "BEGIN PRIVATE KEY" not in str(info.value)


async def test_rejected_token_is_fetched_again(
    http_client: HttpClient,
    fake: FakeGemini,
    token_server: FakeGoogleToken,
    service_account: dict[str, Any],
    make_deployment: MakeDeployment,
) -> None:
    adapter = VertexAdapter()
    deployment = vertex(
        fake, make_deployment, adapter=adapter, vertex_credentials=service_account, vertex_project="p1"
    )
    await adapter.chat(http_client, call(deployment))
    revoked = fake.requests[-1].headers["authorization"].removeprefix("Bearer ")
    fake.tokens.discard(revoked)  # the upstream no longer accepts it

    with pytest.raises(errors.AuthenticationError) as info:
        await adapter.chat(http_client, call(deployment))
    assert info.value.upstream_status == 401
    assert revoked not in str(info.value)

    await adapter.chat(http_client, call(deployment))  # a new token, without waiting for expiry
    assert len(token_server.requests) == 2
    assert fake.requests[-1].headers["authorization"] != f"Bearer {revoked}"
