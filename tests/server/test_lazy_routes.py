"""Route groups imported on their first request (routerd.server.lazy) route exactly as their own routes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.routing import Route

from routerd.config import check_text
from routerd.server.app import (
    FRONT_DOOR_FAST_PATHS,
    FRONT_DOOR_FAST_ROUTES,
    LAZY_ROUTE_GROUPS,
    RouterdApp,
    create_app,
)
from routerd.server.lazy import LazyEndpoint, LazyRoutes, import_target
from routerd.settings import Settings

CONFIG = "model_list:\n  - model_name: m\n    litellm_params: {model: mock/m}\n"


@pytest.mark.parametrize(("prefixes", "factory"), LAZY_ROUTE_GROUPS, ids=[f for _, f in LAZY_ROUTE_GROUPS])
def test_every_route_of_a_group_lies_under_its_prefixes(prefixes: tuple[str, ...], factory: str) -> None:
    # a route added to a module outside the prefixes its group is mounted under would never be reached
    routes = import_target(factory)()
    assert routes
    for route in routes:
        assert isinstance(route, Route)
        assert any(route.path == p or route.path.startswith(p.rstrip("/") + "/") for p in prefixes), (
            route.path
        )


def test_the_fast_front_door_paths_are_the_modules_own() -> None:
    assert set(FRONT_DOOR_FAST_PATHS) == set(import_target(FRONT_DOOR_FAST_ROUTES))


@pytest.fixture
def app() -> RouterdApp:
    table = check_text(CONFIG, env={}).table
    assert table is not None
    made = create_app(table, settings=Settings(watch=False))
    assert isinstance(made, RouterdApp)
    return made


@pytest.fixture
async def client(app: RouterdApp) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://routerd") as client:
        yield client


def _group(app: RouterdApp, factory: str) -> LazyRoutes:
    return next(r for r in app.router.routes if isinstance(r, LazyRoutes) and r.routes_factory == factory)


async def test_a_group_loads_on_the_first_request_under_its_prefixes(
    app: RouterdApp, client: httpx.AsyncClient
) -> None:
    files = _group(app, "routerd.server.files:files_routes")
    files._routes = None  # as in a fresh process, whatever other tests imported
    assert (await client.get("/health/readiness")).status_code in (200, 503)
    assert (await client.get("/v1/filesystem")).status_code == 404  # a prefix is a whole path segment
    assert not files.loaded
    response = await client.post("/v1/files")  # no form: refused before any upstream is chosen
    assert files.loaded
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


async def test_a_wrong_method_under_a_group_is_a_405_with_allow(client: httpx.AsyncClient) -> None:
    response = await client.put("/v1/batches")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    # every route of the path counts, not only the first that matches (tests/server/test_allow_header.py)
    assert response.headers["allow"] == "GET, HEAD, POST"


async def test_an_unknown_path_under_a_group_is_a_404_in_openai_shape(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/responses/resp_1/nothing/here")
    assert response.status_code == 404
    assert response.json()["error"] == {
        "message": "no route GET /v1/responses/resp_1/nothing/here",
        "type": "invalid_request_error",
        "param": None,
        "code": "not_found",
    }


async def test_the_fast_front_doors_are_lazy_endpoints_that_answer(
    app: RouterdApp, client: httpx.AsyncClient
) -> None:
    endpoint = app.fast_routes["/v1/messages"]
    assert isinstance(endpoint, LazyEndpoint)
    response = await client.post("/v1/messages", content=b"not json")
    assert response.status_code == 400
    assert response.json()["type"] == "error"  # Anthropic's error shape: the front door answered


def test_url_path_for_reaches_into_a_group() -> None:
    group = LazyRoutes(("/v1/files",), "routerd.server.files:files_routes")
    name = next(r.name for r in group.routes if isinstance(r, Route) and r.path == "/v1/files/{file_id}")
    assert str(group.url_path_for(name, file_id="file-1")) == "/v1/files/file-1"
