"""Hot reload against the real daemon: edits go live, bad edits never do, and nothing in flight drops.

The daemon runs on a free loopback port with its file watcher on; the test rewrites the routing file
the ways files really change (rename over it, write in place) while clients keep calling it.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from routerd.testing.server import RouterdServer
from routerd.testing.wait import wait_for_async

KEY = "sk-routerd-reload-test"

STABLE = """
  - model_name: stable
    litellm_params:
      model: mock/stable
      mock_response: "steady as she goes"
      mock_latency_ms: 2
      mock_stream_chunk_delay_ms: 2
"""


def version(extra_model: str) -> str:
    """A valid file serving ``stable`` and one version-specific group."""
    return f"""
model_list:{STABLE}
  - model_name: {extra_model}
    litellm_params:
      model: mock/{extra_model}
      mock_response: "I am {extra_model}"
general_settings:
  master_key: {KEY}
"""


# Each invalid file names a group that must never become visible.
INVALID = [
    version("model-bad-1").replace("model_list:", "model_list:\n  - [unbalanced"),  # YAML syntax
    version("model-bad-2").replace('mock_response: "I am model-bad-2"', "api_bse: http://x"),  # typo'd key
    version("model-bad-3").replace("model: mock/model-bad-3", "model: nosuchprovider/x"),  # provider
    version("model-bad-4").replace(
        "general_settings:", "router_settings:\n  routing_strategy: fastest\ngeneral_settings:"
    ),
]


def write_atomically(path: Path, text: str) -> None:
    """What editors and `mv` do: write aside, then rename over the file."""
    tmp = path.with_name(f".{path.name}.{time.monotonic_ns()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_in_place(path: Path, text: str) -> None:
    with path.open("w") as handle:
        handle.write(text)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "routerd.yaml"
    path.write_text(version("model-a"))
    return path


@pytest.fixture
def server(config: Path) -> Iterator[RouterdServer]:
    with RouterdServer.from_file(config, watch=True, reload_debounce_ms=20, log_requests=False) as running:
        yield running


def headers() -> dict[str, str]:
    return {"authorization": f"Bearer {KEY}"}


async def models(client: httpx.AsyncClient) -> set[str]:
    response = await client.get("/v1/models", headers=headers())
    assert response.status_code == 200, response.text
    return {card["id"] for card in response.json()["data"]}


class Load:
    """Clients calling ``stable`` without pause, plain and streamed, counting every outcome."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.ok = 0
        self.streams_ok = 0
        self.failures: list[str] = []
        self.stop = asyncio.Event()

    async def plain(self) -> None:
        body = {"model": "stable", "messages": [{"role": "user", "content": "hi"}]}
        while not self.stop.is_set():
            response = await self.client.post("/v1/chat/completions", json=body, headers=headers())
            if response.status_code == 200 and response.json()["choices"][0]["message"]["content"]:
                self.ok += 1
            else:
                self.failures.append(f"plain {response.status_code}: {response.text[:200]}")

    async def streamed(self) -> None:
        body = {"model": "stable", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        while not self.stop.is_set():
            async with self.client.stream(
                "POST", "/v1/chat/completions", json=body, headers=headers()
            ) as response:
                lines = [line async for line in response.aiter_lines() if line]
            if response.status_code == 200 and lines and lines[-1] == "data: [DONE]":
                self.streams_ok += 1
            else:
                self.failures.append(f"stream {response.status_code}: {lines[-3:]}")


async def test_fifty_rewrites_under_load_drop_nothing_and_only_valid_versions_go_live(
    server: RouterdServer, config: Path
) -> None:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        load = Load(client)
        workers = [asyncio.create_task(load.plain()) for _ in range(3)]
        workers += [asyncio.create_task(load.streamed()) for _ in range(2)]
        seen_valid: list[str] = []
        current = "model-a"
        try:
            for i in range(50):
                writer = write_atomically if i % 2 == 0 else write_in_place
                if i % 5 == 4:  # every fifth rewrite is invalid
                    failures_before = server.state.reload.failures
                    writer(config, INVALID[(i // 5) % len(INVALID)])

                    async def failed(before: int = failures_before) -> bool:
                        return server.state.reload.failures > before

                    await wait_for_async(failed, f"reload failure #{i}")
                    names = await models(client)
                    assert names == {"stable", current}, f"rewrite {i}: invalid file leaked: {names}"
                    assert server.state.reload.last_error
                else:
                    current = "model-b" if current == "model-a" else "model-a"
                    writer(config, version(current))

                    async def visible(expected: str = current) -> bool:
                        return await models(client) == {"stable", expected}

                    await wait_for_async(visible, f"version {current} after rewrite {i}")
                    seen_valid.append(current)
                    # the model that just appeared answers, right away
                    response = await client.post(
                        "/v1/chat/completions",
                        json={"model": current, "messages": [{"role": "user", "content": "who?"}]},
                        headers=headers(),
                    )
                    assert response.json()["choices"][0]["message"]["content"] == f"I am {current}"
        finally:
            load.stop.set()
            await asyncio.gather(*workers)

    assert load.failures == []
    assert load.ok > 50 and load.streams_ok > 20, (load.ok, load.streams_ok)
    assert len(seen_valid) == 40 and set(seen_valid) == {"model-a", "model-b"}
    assert server.state.reload.failures == 10
    assert "api_bse" in (server.state.reload.last_error or "")  # rewrite 49 was invalid and still shows
    assert server.state.reload.generation == 41  # 40 valid rewrites on top of the first load


async def test_a_stream_in_flight_finishes_on_the_table_it_started_with(
    server: RouterdServer, config: Path
) -> None:
    config.write_text(
        version("model-a").replace(
            'mock_response: "I am model-a"',
            'mock_response: "one two three four five six"\n      mock_stream_chunk_delay_ms: 80',
        )
    )
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:

        async def slow_group_served() -> bool:
            return server.state.reload.generation >= 2

        await wait_for_async(slow_group_served, "slow version")
        body = {"model": "model-a", "messages": [{"role": "user", "content": "go"}], "stream": True}
        async with client.stream("POST", "/v1/chat/completions", json=body, headers=headers()) as response:
            lines = response.aiter_lines()
            first = await anext(lines)
            assert first.startswith("data: ")
            # the group this stream is served by disappears from the file mid-stream
            write_atomically(config, version("model-b"))

            async def removed() -> bool:
                return "model-a" not in await models(client)

            await wait_for_async(removed, "model-a removed")
            rest = [line async for line in lines if line]
        chunks = [orjson.loads(line[6:]) for line in [first, *rest] if line.startswith("data: {")]
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
        assert text == "one two three four five six"
        assert rest[-1] == "data: [DONE]"
        # and new calls for it are refused now
        gone = await client.post(
            "/v1/chat/completions",
            json={"model": "model-a", "messages": [{"role": "user", "content": "hi"}]},
            headers=headers(),
        )
        assert gone.status_code == 404


async def test_admin_reload_reports_errors_with_their_location_and_keeps_serving(
    server: RouterdServer, config: Path, tmp_path: Path
) -> None:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        config.write_text(version("model-a").replace("mock_response:", "mock_respons:"))
        response = await client.post("/admin/reload", headers=headers())
        assert response.status_code == 422
        outcome = response.json()
        assert outcome["result"] == "failure"
        assert f"{config}:" in outcome["error"] and "did you mean 'mock_response'" in outcome["error"]
        health = (await client.get("/health", headers=headers())).json()
        assert health["status"] == "degraded"
        assert health["config"]["last_error"] == outcome["error"]
        assert await models(client) == {"stable", "model-a"}

        unauthorized = await client.post("/admin/reload")
        assert unauthorized.status_code == 401

        config.write_text(version("model-b").replace("general_settings:", "general_settings:\n  port: 1"))
        response = await client.post("/admin/reload", headers=headers())
        assert response.status_code == 200
        assert response.json()["result"] in {"success", "unchanged"}  # the watcher may have been first
        health = (await client.get("/health", headers=headers())).json()
        assert health["status"] == "ok"
        assert health["config"]["restart_required"] == ["port"]
        assert await models(client) == {"stable", "model-b"}
