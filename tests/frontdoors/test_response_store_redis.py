"""The Redis store of responses against a real redis-server (started on a free loopback port)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import openai
import pytest
import redis.asyncio as aioredis
from clients import tracked

from routerd.frontdoors.response_store import StoredResponse
from routerd.frontdoors.response_store_redis import MAX_RESPONSE_ID, RedisResponseStore
from routerd.testing import FakeOpenAI, run_in_thread
from routerd.testing.server import RouterdServer

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def redis_port() -> Iterator[int]:
    port = _free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
async def client(redis_port: int) -> AsyncIterator[aioredis.Redis]:
    connection = aioredis.Redis(host="127.0.0.1", port=redis_port)
    await connection.flushdb()
    yield connection
    await connection.aclose()


RECORD = StoredResponse(
    {"id": "resp_1", "output": [{"type": "message"}]}, [{"type": "message", "id": "msg_1"}]
)


async def test_put_get_delete_scoped_to_the_owner(client: aioredis.Redis) -> None:
    store = RedisResponseStore(client)
    assert await store.put("resp_1", "owner-a", RECORD)
    assert await store.get("resp_1", "owner-a") == RECORD
    assert await store.get("resp_1", "owner-b") is None  # another key: as if it did not exist
    assert not await store.delete("resp_1", "owner-b")
    assert await store.delete("resp_1", "owner-a")
    assert await store.get("resp_1", "owner-a") is None


async def test_records_expire_after_the_ttl(client: aioredis.Redis) -> None:
    store = RedisResponseStore(client, ttl=60)
    await store.put("resp_1", "owner", RECORD)
    remaining = await client.pttl("routerd:responses:owner:resp_1")
    assert 0 < remaining <= 60_000


async def test_bounds_on_one_record_and_on_ids(client: aioredis.Redis) -> None:
    store = RedisResponseStore(client, max_entry_bytes=64)
    assert not await store.put("resp_1", "owner", RECORD)  # larger than one record may be
    assert await client.dbsize() == 0
    roomy = RedisResponseStore(client)
    assert not await roomy.put("r" * (MAX_RESPONSE_ID + 1), "owner", RECORD)
    assert await roomy.get("r" * (MAX_RESPONSE_ID + 1), "owner") is None


def test_replicas_sharing_redis_share_stored_responses(redis_port: int, tmp_path: Path) -> None:
    """Two daemons on one Redis (ROUTERD_REDIS_URL): a conversation started on one continues on the other."""
    with run_in_thread(FakeOpenAI(api_key="sk-upstream-0000")) as fake:
        config = tmp_path / "config.yaml"
        config.write_text(
            "model_list:\n"
            f"  - {{model_name: gpt, litellm_params: {{model: openai/gpt-4o-mini, api_base: {fake.base_url},"
            " api_key: sk-upstream-0000}}\n"
            "general_settings: {master_key: sk-master-key-000000}\n"
        )
        url = f"redis://127.0.0.1:{redis_port}/0"
        with (
            RouterdServer.from_file(config, redis_url=url) as one,
            RouterdServer.from_file(config, redis_url=url) as two,
        ):
            first = _client(one).responses.create(model="gpt", input="remember me")
            second = _client(two).responses.create(
                model="gpt", input="and now?", previous_response_id=first.id
            )
            assert second.output_text == "echo: and now?"
            sent = fake.requests[-1].json["input"]
            assert sent[0]["content"][0]["text"] == "remember me"  # the conversation came from Redis
            assert _client(two).responses.retrieve(first.id).id == first.id
            with pytest.raises(openai.AuthenticationError):  # an unknown key reads nothing
                _client(two, "sk-someone-else-0000").responses.retrieve(first.id)


def _client(server: RouterdServer, key: str = "sk-master-key-000000") -> openai.OpenAI:
    return tracked(openai.OpenAI(base_url=server.base_url + "/v1", api_key=key, max_retries=0))
