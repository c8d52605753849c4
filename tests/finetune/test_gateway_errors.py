"""Bad input gets a clear OpenAI-shaped error with the right status, and nothing is sent upstream."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

import httpx
import openai
import orjson
import pytest
from starlette.routing import Route

from routerd.config import load_config
from routerd.server.lazy import LazyRoutes
from tests.finetune.conftest import StartGateway
from tests.finetune.support import (
    MASTER_KEY,
    OPENAI_KEY,
    TRAINING,
    Gateway,
    Upstreams,
    chat_line,
    config_text,
)

E = TypeVar("E", bound=openai.APIStatusError)


async def raises(kind: type[E], call: Awaitable[Any]) -> E:
    with pytest.raises(kind) as caught:
        await call
    return caught.value


def error_body(exc: openai.APIStatusError) -> dict[str, Any]:
    body = exc.response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return dict(body["error"])


async def test_an_unknown_provider_is_a_400_naming_the_choices(
    gateway: Gateway, upstreams: Upstreams
) -> None:
    client = gateway.client
    exc = await raises(
        openai.BadRequestError,
        client.files.create(
            file=("t.jsonl", TRAINING), purpose="fine-tune", extra_body={"custom_llm_provider": "bedrock"}
        ),
    )
    body = error_body(exc)
    assert (body["type"], body["code"], body["param"]) == (
        "invalid_request_error",
        "invalid_provider",
        "custom_llm_provider",
    )
    assert "'bedrock'" in body["message"] and "openai, azure, vertex_ai" in body["message"]
    exc = await raises(
        openai.BadRequestError, client.fine_tuning.jobs.list(extra_query={"custom_llm_provider": "nope"})
    )
    assert exc.code == "invalid_provider"
    exc = await raises(
        openai.BadRequestError,
        client.fine_tuning.jobs.retrieve("ftjob-1", extra_headers={"custom-llm-provider": "x"}),
    )
    assert exc.code == "invalid_provider"
    assert not [r for r in upstreams.openai.requests if "/files" in r.path or "/fine_tuning" in r.path]
    assert [r.provider for r in gateway.records] == ["", "", ""]
    assert {r.status for r in gateway.records} == {400}


async def test_a_provider_without_a_settings_entry_names_the_missing_entry(
    start_gateway: StartGateway, upstreams: Upstreams
) -> None:
    client = start_gateway(config_text(upstreams, providers=("openai",))).client
    exc = await raises(
        openai.BadRequestError,
        client.fine_tuning.jobs.create(
            model="gpt-4o-mini", training_file="file-1", extra_body={"custom_llm_provider": "azure"}
        ),
    )
    assert exc.code == "provider_not_configured"
    assert "'azure' has no finetune_settings entry" in str(exc.message)
    exc = await raises(
        openai.BadRequestError,
        client.files.create(
            file=("t.jsonl", TRAINING), purpose="fine-tune", extra_body={"custom_llm_provider": "vertex_ai"}
        ),
    )
    assert "'vertex_ai' has no files_settings entry" in str(exc.message)
    assert not upstreams.azure.requests and not upstreams.vertex.requests


@pytest.mark.parametrize("provider", ["openai", "azure", "vertex_ai"])
async def test_a_malformed_jsonl_line_is_named_and_nothing_is_uploaded(
    gateway: Gateway, upstreams: Upstreams, provider: str
) -> None:
    content = (
        chat_line("a?", "b.") + b'{"messages": [{"role": "user", "content": "no answer"}]}\n' + b"{oops\n"
    )
    exc = await raises(
        openai.BadRequestError,
        gateway.client.files.create(
            file=("t.jsonl", content), purpose="fine-tune", extra_body={"custom_llm_provider": provider}
        ),
    )
    body = error_body(exc)
    assert (body["code"], body["param"]) == ("invalid_training_file", "file")
    assert "line 2: 'messages' must contain at least one assistant message" in body["message"]
    assert "line 3: not valid JSON at column 2" in body["message"]
    fakes = {"openai": upstreams.openai, "azure": upstreams.azure, "vertex_ai": upstreams.vertex}
    assert not [r for r in fakes[provider].requests if r.method == "POST"]


async def test_a_suffix_over_18_characters_is_refused(gateway: Gateway, upstreams: Upstreams) -> None:
    exc = await raises(
        openai.BadRequestError,
        gateway.client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file="file-1", suffix="s" * 19),
    )
    body = error_body(exc)
    assert (body["param"], body["code"]) == ("suffix", "invalid_value")
    assert "at most 18 characters, got 19" in body["message"]
    assert not upstreams.openai.requests


@pytest.mark.parametrize(
    ("provider", "job_id"),
    [
        ("openai", "ftjob-doesnotexist"),
        ("azure", "ftjob-doesnotexist"),
        ("vertex_ai", "123"),
        ("vertex_ai", "ftjob-x"),
    ],
)
async def test_an_unknown_job_id_is_a_404(gateway: Gateway, provider: str, job_id: str) -> None:
    selector = {"custom_llm_provider": provider}
    client = gateway.client
    for call in (
        client.fine_tuning.jobs.retrieve(job_id, extra_query=selector),
        client.fine_tuning.jobs.cancel(job_id, extra_body=selector),
        client.fine_tuning.jobs.list_events(job_id, extra_query=selector),
        client.fine_tuning.jobs.checkpoints.list(job_id, extra_query=selector),
    ):
        exc = await raises(openai.NotFoundError, call)
        body = error_body(exc)
        assert (body["type"], body["code"]) == ("invalid_request_error", "fine_tuning_job_not_found")
        assert job_id in body["message"]


@pytest.mark.parametrize("provider", ["openai", "azure", "vertex_ai"])
async def test_an_unknown_file_id_is_a_404(gateway: Gateway, provider: str) -> None:
    exc = await raises(
        openai.NotFoundError,
        gateway.client.files.retrieve("file-doesnotexist", extra_query={"custom_llm_provider": provider}),
    )
    assert exc.code == "file_not_found"


async def test_the_gateway_key_is_required(gateway: Gateway) -> None:
    anonymous = openai.AsyncOpenAI(base_url=gateway.server.base_url + "/v1", api_key="wrong", max_retries=0)
    try:
        exc = await raises(openai.AuthenticationError, anonymous.fine_tuning.jobs.list())
        assert exc.code == "invalid_api_key"
        await raises(
            openai.AuthenticationError,
            anonymous.files.create(file=("t.jsonl", TRAINING), purpose="fine-tune"),
        )
    finally:
        await anonymous.close()


async def test_an_upload_over_the_body_limit_is_a_413(
    start_gateway: StartGateway, upstreams: Upstreams
) -> None:
    gateway = start_gateway(max_body_mb=0.001)  # 1048 bytes
    big = chat_line("q" * 2000, "a")
    exc = await raises(
        openai.APIStatusError, gateway.client.files.create(file=("big.jsonl", big), purpose="fine-tune")
    )
    assert exc.status_code == 413

    # a client that does not declare a length (chunked upload) is cut off as the bytes arrive
    async def chunks() -> Any:
        yield b'--b\r\ncontent-disposition: form-data; name="file"; filename="t.jsonl"\r\n\r\n'
        for _ in range(4):
            yield b"x" * 1000
        yield b"\r\n--b--\r\n"

    async with httpx.AsyncClient() as raw:
        response = await raw.post(
            gateway.server.base_url + "/v1/files",
            content=chunks(),
            headers={
                "authorization": f"Bearer {MASTER_KEY}",
                "content-type": "multipart/form-data; boundary=b",
            },
        )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    assert not upstreams.openai.requests


async def test_malformed_requests(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.server.base_url) as raw:
        auth = {"authorization": f"Bearer {MASTER_KEY}"}
        not_multipart = await raw.post("/v1/files", json={"purpose": "fine-tune"}, headers=auth)
        assert not_multipart.status_code == 400
        assert "multipart/form-data" in not_multipart.json()["error"]["message"]
        no_file = await raw.post(
            "/v1/files", data={"purpose": "fine-tune"}, files={"x": ("a", b"b")}, headers=auth
        )
        assert (no_file.status_code, no_file.json()["error"]["param"]) == (400, "file")
        no_purpose = await raw.post("/v1/files", files={"file": ("t.jsonl", TRAINING)}, headers=auth)
        assert (no_purpose.status_code, no_purpose.json()["error"]["param"]) == (400, "purpose")
        not_json = await raw.post("/v1/fine_tuning/jobs", content=b"{nope", headers=auth)
        assert (not_json.status_code, not_json.json()["error"]["code"]) == (400, "invalid_json")
        bad_limit = await raw.get("/fine_tuning/jobs?limit=0", headers=auth)  # the path without /v1 works too
        assert (bad_limit.status_code, bad_limit.json()["error"]["param"]) == (400, "limit")


async def test_upstream_auth_failures_never_echo_the_key(
    start_gateway: StartGateway, upstreams: Upstreams
) -> None:
    config = config_text(upstreams).replace(
        f"api_key: {OPENAI_KEY}", "api_key: sk-wrong-key-0123456789abcdef"
    )
    gateway = start_gateway(config)
    exc = await raises(openai.AuthenticationError, gateway.client.fine_tuning.jobs.list())
    assert "Incorrect API key provided" in str(exc.message)
    assert "0123456789abcdef" not in exc.response.text and "sk-wrong" not in exc.response.text


async def test_a_reloaded_table_takes_effect_on_the_next_request(
    start_gateway: StartGateway, upstreams: Upstreams, tmp_path: Any
) -> None:
    gateway = start_gateway(config_text(upstreams, providers=("openai",)))
    client = gateway.client
    selector = {"custom_llm_provider": "azure"}
    await raises(openai.BadRequestError, client.fine_tuning.jobs.list(extra_query=selector))
    path = tmp_path / "reloaded.yaml"
    path.write_text(config_text(upstreams))
    gateway.server.state.router.publish(load_config(path))  # what a reload does
    page = await client.fine_tuning.jobs.list(extra_query=selector)
    assert page.data == [] and upstreams.azure.requests[-1].path == "/openai/fine_tuning/jobs"


async def test_upstream_failures_keep_their_status(gateway: Gateway, upstreams: Upstreams) -> None:
    from routerd.testing.openai_fake import Reply

    upstreams.openai.enqueue(Reply.error(429, "slow down", retry_after=7, path="/v1/fine_tuning/jobs"))
    exc = await raises(openai.RateLimitError, gateway.client.fine_tuning.jobs.list())
    assert exc.response.headers["retry-after"] == "7"
    upstreams.openai.enqueue(Reply(status=502, body=b"<html>bad gateway</html>", path="/v1/fine_tuning/jobs"))
    exc5 = await raises(openai.APIStatusError, gateway.client.fine_tuning.jobs.list())
    assert exc5.status_code == 502
    assert orjson.loads(exc5.response.content)["error"]["message"] == "bad gateway"


async def test_the_gateway_is_the_daemons_own_app(gateway: Gateway) -> None:
    # the files and fine-tuning routes are the app's lazy groups, not routes a test helper added
    # (support.build_app once appended eager copies, so the daemon's own routing went untested)
    routes = gateway.app.router.routes
    assert not [route for route in routes if isinstance(route, Route) and "files" in route.path]
    groups = {route.routes_factory for route in routes if isinstance(route, LazyRoutes)}
    assert {"routerd.server.files:files_routes", "routerd.server.fine_tuning:fine_tuning_routes"} <= groups
