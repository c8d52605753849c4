"""The fake upstreams themselves, checked with the official openai clients (the strictest readers of
the wire format we have), and the fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import openai
import pytest
from aiohttp import web
from clients import tracked

from routerd.testing import FakeAzureOpenAI, FakeClock, FakeOpenAI, Reply, run_in_thread

KEY = "sk-test-key-123456"


@pytest.fixture
async def client(fake_openai: FakeOpenAI) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=fake_openai.base_url, api_key=KEY, max_retries=0) as client:
        yield client


async def test_official_client_chat_and_stream(client, fake_openai) -> None:
    answer = await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "ping"}], n=2, user="u1"
    )
    assert [c.message.content for c in answer.choices] == ["ping", "ping"]
    assert answer.usage is not None and answer.usage.total_tokens > 0
    recorded = fake_openai.requests[-1]
    assert (recorded.method, recorded.path) == ("POST", "/v1/chat/completions")
    assert recorded.json["user"] == "u1"
    assert recorded.headers["authorization"] == f"Bearer {KEY}"

    stream = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "streamed words here"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "streamed words here"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


async def test_official_client_completions_embeddings_models(client) -> None:
    completion = await client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say this", echo=True)
    assert completion.choices[0].text == "Say thisSay this"
    embedding = await client.embeddings.create(
        model="text-embedding-3-small", input=["a", "b"]
    )  # base64 by default
    assert [len(item.embedding) for item in embedding.data] == [8, 8]
    models = await client.models.list()
    assert "gpt-4o-mini" in [m.id for m in models.data]
    assert (await client.models.retrieve("gpt-4o")).id == "gpt-4o"
    with pytest.raises(openai.NotFoundError):
        await client.models.retrieve("no-such-model")


async def test_scripted_errors_reach_the_official_client(client, fake_openai) -> None:
    fake_openai.enqueue(Reply.error(429, "Rate limit reached", code="rate_limit_exceeded", retry_after=3))
    with pytest.raises(openai.RateLimitError) as info:
        await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert info.value.response.headers["retry-after"] == "3"
    assert info.value.code == "rate_limit_exceeded"
    bad = openai.AsyncOpenAI(base_url=fake_openai.base_url, api_key="sk-wrong-000000", max_retries=0)
    async with bad:
        with pytest.raises(openai.AuthenticationError):
            await bad.models.list()


async def test_replies_are_consumed_in_order_and_by_path(fake_openai) -> None:
    fake_openai.enqueue(
        Reply(content="for embeddings?", path="/v1/embeddings", status=500),
        Reply(content="first"),
        Reply(content="second", headers={"x-ratelimit-remaining-tokens": "5"}),
    )
    async with httpx.AsyncClient(
        base_url=fake_openai.base_url, headers={"authorization": f"Bearer {KEY}"}
    ) as http:
        body = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
        first = await http.post("/chat/completions", json=body)
        second = await http.post("/chat/completions", json=body)
        default = await http.post("/chat/completions", json=body)
        embeddings = await http.post("/embeddings", json={"model": "e", "input": "x"})
    assert first.json()["choices"][0]["message"]["content"] == "first"
    assert second.json()["choices"][0]["message"]["content"] == "second"
    assert second.headers["x-ratelimit-remaining-tokens"] == "5"
    assert default.json()["choices"][0]["message"]["content"] == "x"
    assert embeddings.status_code == 500
    assert fake_openai.replies == []


async def test_raw_chunks_and_delays(fake_openai) -> None:
    fake_openai.enqueue(Reply(chunks=[b'data: {"custom": 1}\n\n', {"custom": 2}], done=False, delay=0.01))
    async with httpx.AsyncClient(
        base_url=fake_openai.base_url, headers={"authorization": f"Bearer {KEY}"}
    ) as http:
        response = await http.post("/chat/completions", json={"stream": True, "messages": []})
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.text == 'data: {"custom": 1}\n\ndata: {"custom":2}\n\n'


async def test_subclasses_add_routes() -> None:
    class WithFiles(FakeOpenAI):
        def routes(self) -> list[web.RouteDef]:
            return [*super().routes(), web.get("/v1/files", self.files)]

        async def files(self, request: web.Request) -> web.Response:
            await self.record(request)
            return web.json_response({"object": "list", "data": []})

    async with WithFiles() as fake:
        async with httpx.AsyncClient() as http:
            response = await http.get(f"{fake.base_url}/files")
        assert response.json() == {"object": "list", "data": []}
        assert fake.requests[-1].path == "/v1/files"


def test_run_in_thread_for_sync_clients() -> None:
    with run_in_thread(FakeOpenAI(answer="from a thread")) as fake:
        client = tracked(openai.OpenAI(base_url=fake.base_url, api_key="any", max_retries=0))
        answer = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        assert answer.choices[0].message.content == "from a thread"
        assert fake.requests[-1].json["model"] == "m"


async def test_official_azure_client_against_the_azure_fake() -> None:
    async with (
        FakeAzureOpenAI(api_key="azkey", deployments=["dep-a"]) as fake,
        openai.AsyncAzureOpenAI(
            azure_endpoint=fake.base_url, api_key="azkey", api_version="2024-06-01", max_retries=0
        ) as client,
    ):
        answer = await client.chat.completions.create(
            model="dep-a", messages=[{"role": "user", "content": "hello"}]
        )
        assert answer.choices[0].message.content == "hello"
        assert fake.requests[-1].path == "/openai/deployments/dep-a/chat/completions"
        assert fake.requests[-1].query["api-version"] == "2024-06-01"
        fake.enqueue(FakeAzureOpenAI.content_filter_reply())
        with pytest.raises(openai.BadRequestError) as info:
            await client.chat.completions.create(model="dep-a", messages=[{"role": "user", "content": "x"}])
        assert info.value.code == "content_filter"
        async with httpx.AsyncClient() as http:
            missing_version = await http.post(
                f"{fake.base_url}/openai/deployments/dep-a/chat/completions",
                headers={"api-key": "azkey"},
                json={},
            )
        assert missing_version.status_code == 404
        assert missing_version.json() == {"error": {"code": "404", "message": "Resource not found"}}


# --- FakeClock -----------------------------------------------------------------------------------


def test_fake_clock_moves_only_when_told() -> None:
    clock = FakeClock(monotonic=10.0, wall=1_000_000.0)
    assert (clock.monotonic(), clock.time(), clock()) == (10.0, 1_000_000.0, 10.0)
    clock.advance(2.5)
    assert (clock.monotonic(), clock.time()) == (12.5, 1_000_002.5)
    with pytest.raises(ValueError):
        clock.advance(-1)


async def test_fake_clock_sleep_advances_instantly_and_yields() -> None:
    clock = FakeClock()
    order: list[str] = []

    async def other() -> None:
        order.append("other ran")

    task = asyncio.create_task(other())
    await clock.sleep(30)
    await clock.sleep(-1)  # like asyncio.sleep, a negative delay is no delay
    assert order == ["other ran"]
    assert clock.sleeps == [30.0, 0.0]
    assert clock.monotonic() == 1030.0
    await task
