"""Azure OpenAI routes: the paths the official ``AzureOpenAI`` client builds, mapped to model groups."""

from __future__ import annotations

from typing import Any

import httpx2
import openai
import pytest

from routerd.errors import BadRequestError, NotFoundError
from routerd.frontdoors.azure_routes import AzureRoute, azure_route, parse_path, routed_body
from routerd.frontdoors.limits import MAX_DEPLOYMENT_NAME
from routerd.providers.base import CHAT, COMPLETIONS, EMBEDDINGS

GROUPS = {"gpt-4o", "text-embedding-3-small", "openai/gpt-4o-mini"}
ALIASES = {"prod-chat": "gpt-4o", "stale": "no-such-group"}


def serves(name: str) -> bool:
    return name in GROUPS


def route(path: str, query: str = "api-version=2024-10-21") -> AzureRoute:
    return azure_route(path, query, serves, ALIASES)


def captured_requests(call: Any) -> list[httpx2.Request]:
    """The requests the official AzureOpenAI client sends for ``call(client)``, answered by a fake."""
    seen: list[httpx2.Request] = []

    def answer(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        if request.url.path.endswith("/embeddings"):
            body: dict[str, Any] = {
                "object": "list",
                "model": "m",
                "data": [{"object": "embedding", "index": 0, "embedding": [0.1]}],
                "usage": {"prompt_tokens": 1, "total_tokens": 1},
            }
        else:
            body = {
                "id": "c",
                "object": "chat.completion",
                "created": 1,
                "model": "m",
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
                ],
            }
        return httpx2.Response(200, json=body)

    client = openai.AzureOpenAI(
        azure_endpoint="http://routerd.test",
        api_key="test-key",
        api_version="2024-10-21",
        http_client=httpx2.Client(transport=httpx2.MockTransport(answer)),
    )
    call(client)
    return seen


def test_the_official_client_paths_route_to_groups() -> None:
    requests = captured_requests(
        lambda c: (
            c.chat.completions.create(model="prod-chat", messages=[{"role": "user", "content": "hi"}]),
            c.embeddings.create(model="text-embedding-3-small", input="hi"),
        )
    )
    routes = [route(r.url.raw_path.decode().split("?")[0], r.url.query.decode()) for r in requests]
    assert routes == [
        AzureRoute(CHAT, "gpt-4o", "prod-chat", "2024-10-21"),
        AzureRoute(EMBEDDINGS, "text-embedding-3-small", "text-embedding-3-small", "2024-10-21"),
    ]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/openai/deployments/gpt-4o/chat/completions", ("gpt-4o", CHAT)),
        ("/openai/deployments/gpt-4o/completions", ("gpt-4o", COMPLETIONS)),
        ("/openai/deployments/chat/completions", ("chat", COMPLETIONS)),  # a deployment named "chat"
        ("/openai/deployments/e/embeddings", ("e", EMBEDDINGS)),
        ("/openai/deployments/openai%2Fgpt-4o-mini/chat/completions", ("openai/gpt-4o-mini", CHAT)),
    ],
)
def test_parse_path(path: str, expected: tuple[str, str]) -> None:
    assert parse_path(path) == expected


@pytest.mark.parametrize(
    "path",
    [
        "/openai/deployments/gpt-4o/images/generations",
        "/openai/deployments//chat/completions",
        "/openai/deployments/a/b/chat/completions",
        "/v1/chat/completions",
        "/openai/deployments/" + "x" * (MAX_DEPLOYMENT_NAME + 1) + "/embeddings",
    ],
)
def test_unknown_paths_are_404(path: str) -> None:
    with pytest.raises(NotFoundError) as caught:
        route(path)
    assert caught.value.status_code == 404 and caught.value.code == "unknown_route"


def test_deployment_mapping() -> None:
    assert route("/openai/deployments/openai%2Fgpt-4o-mini/chat/completions").group == "openai/gpt-4o-mini"
    for name in ("unknown", "stale"):  # no such group; an alias to a group that is gone
        with pytest.raises(NotFoundError) as caught:
            route(f"/openai/deployments/{name}/chat/completions")
        body = caught.value.to_dict()["error"]
        assert body["code"] == "DeploymentNotFound" and name in body["message"]


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("", "missing_api_version"),
        ("api-version=", "missing_api_version"),
        ("api-version=yesterday", "invalid_api_version"),
    ],
)
def test_api_version_is_required(query: str, code: str) -> None:
    with pytest.raises(BadRequestError) as caught:
        route("/openai/deployments/gpt-4o/chat/completions", query)
    assert caught.value.code == code and caught.value.param == "api-version"


@pytest.mark.parametrize("version", ["2025-04-01-preview", "v1", "preview", "latest"])
def test_api_versions_accepted(version: str) -> None:
    assert route("/openai/deployments/gpt-4o/embeddings", f"api-version={version}").api_version == version


def test_routed_body_sets_the_group() -> None:
    found = route("/openai/deployments/prod-chat/chat/completions")
    body = {"model": "ignored", "messages": []}
    assert routed_body(body, found) == {"model": "gpt-4o", "messages": []}
    assert body["model"] == "ignored"
