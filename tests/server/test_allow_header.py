"""A 405 lists in ``Allow`` every method its path accepts, over all the routes serving that path
(the Files, fine-tuning and Batch paths are served by one route per method), in OpenAI's error shape."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from routerd.config import check_text
from routerd.server.app import create_app
from routerd.settings import Settings

CONFIG = "model_list:\n  - model_name: m\n    litellm_params: {model: mock/m}\n"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    table = check_text(CONFIG, env={}).table
    assert table is not None
    # no lifespan: a 405 comes from routing alone, before any handler runs
    transport = httpx.ASGITransport(app=create_app(table, settings=Settings(watch=False)))
    async with httpx.AsyncClient(transport=transport, base_url="http://routerd") as client:
        yield client


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/v1/batches", "GET, HEAD, POST"),
        ("DELETE", "/batches", "GET, HEAD, POST"),
        ("PUT", "/v1/batches/batch_1", "GET, HEAD"),
        ("PUT", "/v1/files", "GET, HEAD, POST"),
        ("POST", "/v1/files/file-1", "DELETE, GET, HEAD"),
        ("PATCH", "/files/file-1", "DELETE, GET, HEAD"),
        ("PUT", "/v1/fine_tuning/jobs", "GET, HEAD, POST"),
        ("GET", "/v1/fine_tuning/jobs/ftjob-1/cancel", "POST"),
        ("GET", "/v1/chat/completions", "POST"),  # one route: as before
    ],
)
async def test_a_405_allows_every_method_of_the_path(
    client: httpx.AsyncClient, method: str, path: str, allow: str
) -> None:
    response = await client.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allow
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "error": {
            "message": f"{method} is not allowed on {path}",
            "type": "invalid_request_error",
            "param": None,
            "code": "method_not_allowed",
        }
    }


async def test_every_listed_method_is_served(client: httpx.AsyncClient) -> None:
    # the header is honest: each method it lists reaches a handler (no 405 for any of them)
    allow = (await client.put("/v1/files")).headers["allow"]
    for method in allow.split(", "):
        assert (await client.request(method, "/v1/files")).status_code != 405, method
