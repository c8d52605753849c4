"""Fixtures for provider adapter tests: deployments built directly (no config compiler), one-attempt
requests, a started fake OpenAI upstream, and an environment without provider credentials."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import pytest

from routerd.config.table import Deployment
from routerd.providers.base import UpstreamRequest, get_adapter
from routerd.providers.infer import DEFAULT_API_BASE_ENV, DEFAULT_API_KEY_ENV, DEFAULT_API_VERSION_ENV
from routerd.testing import FakeOpenAI

FAKE_KEY = "sk-test-key-123456"

MakeDeployment = Callable[..., Deployment]
MakeRequest = Callable[..., UpstreamRequest]


@pytest.fixture(autouse=True)
def _no_provider_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's OPENAI_API_KEY / OPENAI_API_BASE must not change what these tests send.
    for table in (DEFAULT_API_KEY_ENV, DEFAULT_API_BASE_ENV, DEFAULT_API_VERSION_ENV):
        for name in table.values():
            monkeypatch.delenv(name, raising=False)


def _build(
    provider: str = "openai", model: str = "gpt-4o-mini", *, prepare: bool = True, **fields: Any
) -> Deployment:
    fields.setdefault("id", f"{provider}-{model}")
    fields.setdefault("group", model)
    fields.setdefault("litellm_model", f"{provider}/{model}")
    deployment = Deployment(provider=provider, model=model, **fields)
    if prepare:
        deployment = replace(deployment, prepared=get_adapter(provider).prepare(deployment))
    return deployment


@pytest.fixture
def make_deployment() -> MakeDeployment:
    """``make_deployment(provider, model, prepare=True, **Deployment fields)``: a Deployment as the
    compiler produces it, prepared by its adapter unless ``prepare=False`` (wildcard deployments)."""
    return _build


def _request(
    deployment: Deployment, body: dict[str, Any], *, timeout: float = 10.0, **fields: Any
) -> UpstreamRequest:
    return UpstreamRequest(deployment=deployment, body=body, timeout=timeout, **fields)


@pytest.fixture
def make_request() -> MakeRequest:
    """``make_request(deployment, body, timeout=10.0, **UpstreamRequest fields)``."""
    return _request


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAI]:
    """A started fake OpenAI upstream that requires ``Authorization: Bearer sk-test-key-123456``."""
    async with FakeOpenAI(api_key=FAKE_KEY) as fake:
        yield fake
