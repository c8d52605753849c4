"""Hot reload of client keys under load (issue 14): the file is rewritten to add one key and remove
another while clients keep calling with a key present in every version; the added key works as soon as
the new table is live, the removed one gets 401 from then on, and the unchanged key never fails."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from routerd.testing.server import RouterdServer
from routerd.testing.wait import wait_for_async

MASTER = "sk-routerd-reload-keys-master"
KEY_A = "sk-reload-key-a-0123456789abcdef"  # in every version of the file
KEY_B = "sk-reload-key-b-0123456789abcdef"  # only in the "added" version
KEY_C = "sk-reload-key-c-0123456789abcdef"  # only in the "removed" version
#: Rewrites per test (alternating C -> B -> C ...) and the most calls one load worker makes.
REWRITES = 6
MAX_CALLS_PER_WORKER = 3000


def write_atomically(path: Path, text: str) -> None:
    """What editors and `mv` do: write aside, then rename over the file."""
    tmp = path.with_name(f".{path.name}.{time.monotonic_ns()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_in_place(path: Path, text: str) -> None:
    with path.open("w") as handle:
        handle.write(text)


def version(*keys: tuple[str, str]) -> str:
    declared = "".join(f"  - {{key_alias: {alias}, key: {key}}}\n" for alias, key in keys)
    return f"""
model_list:
  - model_name: stable
    litellm_params:
      model: mock/stable
      mock_response: "steady"
      mock_latency_ms: 2
      mock_stream_chunk_delay_ms: 2
general_settings:
  master_key: {MASTER}
keys:
{declared}"""


WITH_C = version(("a", KEY_A), ("c", KEY_C))
WITH_B = version(("a", KEY_A), ("b", KEY_B))


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "routerd.yaml"
    path.write_text(WITH_C)
    return path


@pytest.fixture
def server(config: Path, tmp_path: Path) -> Iterator[RouterdServer]:
    with RouterdServer.from_file(
        config, watch=True, reload_debounce_ms=20, log_requests=False, spend_db=tmp_path / "spend.sqlite"
    ) as running:
        yield running


BODY = {"model": "stable", "messages": [{"role": "user", "content": "hi"}]}


async def status(client: httpx.AsyncClient, key: str) -> int:
    response = await client.post(
        "/v1/chat/completions", json=BODY, headers={"authorization": f"Bearer {key}"}
    )
    return response.status_code


class KeyLoad:
    """Workers calling ``stable`` with key A without pause (plain and streamed), counting outcomes."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.ok = 0
        self.failures: list[str] = []
        self.stop = asyncio.Event()
        self.headers = {"authorization": f"Bearer {KEY_A}"}

    async def plain(self) -> None:
        for _ in range(MAX_CALLS_PER_WORKER):
            if self.stop.is_set():
                return
            response = await self.client.post("/v1/chat/completions", json=BODY, headers=self.headers)
            if response.status_code == 200 and response.json()["choices"][0]["message"]["content"]:
                self.ok += 1
            else:
                self.failures.append(f"plain {response.status_code}: {response.text[:200]}")

    async def streamed(self) -> None:
        for _ in range(MAX_CALLS_PER_WORKER):
            if self.stop.is_set():
                return
            async with self.client.stream(
                "POST", "/v1/chat/completions", json={**BODY, "stream": True}, headers=self.headers
            ) as response:
                lines = [line async for line in response.aiter_lines() if line]
            if response.status_code == 200 and lines and lines[-1] == "data: [DONE]":
                self.ok += 1
            else:
                self.failures.append(f"stream {response.status_code}: {lines[-3:]}")


async def test_keys_added_and_removed_under_load_never_fail_an_unchanged_key(
    server: RouterdServer, config: Path
) -> None:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        assert await status(client, KEY_B) == 401 and await status(client, KEY_C) == 200
        load = KeyLoad(client)
        workers = [asyncio.create_task(load.plain()) for _ in range(3)]
        workers.append(asyncio.create_task(load.streamed()))
        try:
            for i in range(REWRITES):
                added, removed, text = (KEY_B, KEY_C, WITH_B) if i % 2 == 0 else (KEY_C, KEY_B, WITH_C)
                generation = server.state.reload.generation
                (write_atomically if i % 2 == 0 else write_in_place)(config, text)

                async def reloaded(before: int = generation) -> bool:
                    return server.state.reload.generation > before

                await wait_for_async(reloaded, f"reload after rewrite {i}")
                # the new table is live: the added key works at once, the removed one is refused at once
                assert await status(client, added) == 200, f"rewrite {i}: added key refused"
                assert await status(client, removed) == 401, f"rewrite {i}: removed key still works"
                ok_before = load.ok

                async def load_goes_on(before: int = ok_before) -> bool:
                    return load.ok > before + 10

                await wait_for_async(load_goes_on, f"key A served after rewrite {i}")
        finally:
            load.stop.set()
            await asyncio.gather(*workers)
    assert server.state.reload.failures == 0 and server.state.reload.last_error is None
    assert load.failures == []
    assert load.ok > REWRITES * 10
