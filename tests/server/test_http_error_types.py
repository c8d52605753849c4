"""Errors from the HTTP layer (no route, wrong method) carry the OpenAI type of their status."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from routerd.config import check_text
from routerd.errors import (
    BadRequestError,
    InternalServerError,
    MethodNotAllowedError,
    NotFoundError,
    RequestTooLargeError,
    error_for_request_status,
)
from routerd.server.app import create_app
from routerd.settings import Settings

CONFIG = "model_list:\n  - model_name: m\n    litellm_params: {model: mock/m}\n"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    table = check_text(CONFIG, env={}).table
    assert table is not None
    # no lifespan: these answers come from routing alone, before any handler runs
    transport = httpx.ASGITransport(app=create_app(table, settings=Settings(watch=False)))
    async with httpx.AsyncClient(transport=transport, base_url="http://routerd") as client:
        yield client


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/chat/completions", "/v1/embeddings"])
async def test_get_on_a_post_endpoint_is_a_405_invalid_request(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 405
    assert response.json() == {
        "error": {
            "message": f"GET is not allowed on {path}",
            "type": "invalid_request_error",
            "param": None,
            "code": "method_not_allowed",
        }
    }
    assert response.headers["allow"] == "POST"


async def test_an_unknown_route_is_a_404_invalid_request(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/nope")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("status", "cls", "type_"),
    [
        (400, BadRequestError, "invalid_request_error"),
        (404, NotFoundError, "invalid_request_error"),
        (405, MethodNotAllowedError, "invalid_request_error"),
        (408, BadRequestError, "invalid_request_error"),
        (413, RequestTooLargeError, "invalid_request_error"),
        (418, BadRequestError, "invalid_request_error"),
        (500, InternalServerError, "api_error"),
    ],
)
def test_each_request_status_has_its_class_and_type(status: int, cls: type, type_: str) -> None:
    assert error_for_request_status(status) is cls
    assert cls("x").to_dict()["error"]["type"] == type_
