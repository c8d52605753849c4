"""Gateway batches in Redis (a private redis-server): the registry itself, and two daemons sharing it --
a batch created through one replica is answered and metered once through the other."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import openai
import orjson
import pytest
import redis.asyncio as aioredis
from clients import tracked

from routerd.errors import ServiceUnavailableError
from routerd.server.batch_registry import GatewayBatch, RedisBatchRegistry
from routerd.testing import run_in_thread
from routerd.testing.finetune_fakes import FakeOpenAIFineTuning
from routerd.testing.redis import RedisServer
from routerd.testing.server import RouterdServer

MASTER = "sk-redis-batches-master-01"
CAROL = "sk-redis-batches-carol-012"
UPSTREAM = "sk-redis-batches-upstream-0"


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    connection = aioredis.Redis.from_url(redis_server.url)
    try:
        yield connection
    finally:
        await connection.aclose()


def _batch(batch_id: str, owner: str) -> GatewayBatch:
    return GatewayBatch(
        batch_id, owner, "carol", "t", "g", "d1", "file-in", {"output_file_id": f"out-{batch_id}"}
    )


async def test_records_uploads_claims_and_the_bound(client: aioredis.Redis) -> None:
    found = RedisBatchRegistry(client, prefix="t:batches:", max_batches=2)
    for name, owner in (("b1", "alice"), ("b2", "alice"), ("b3", "bob")):
        await found.put(_batch(name, owner))
    assert (await found.get("b3")) == _batch("b3", "bob")
    assert await found.batch_for_file("out-b1") == "b1"
    assert [b.batch_id for b in await found.listed("alice")] == ["b2", "b1"]
    assert [b.batch_id for b in await found.listed(None)] == ["b3", "b2"]  # MAX_GATEWAY_BATCHES
    assert await found.claim_metering("b2") and not await found.claim_metering("b2")
    await found.release_metering("b2")
    assert await found.claim_metering("b2")
    await found.add_file("f1", "alice")
    assert await found.file_owner("f1") == "alice" and await found.file_owner("f2") is None
    await found.forget_file("f1")
    assert await found.file_owner("f1") is None
    ttl = await client.pttl("t:batches:b:b1")
    assert 0 < ttl <= found.ttl_ms  # BATCH_RECORD_TTL_SECONDS


async def test_a_batchs_endpoint_and_guardrails_are_kept_and_old_records_still_load(
    client: aioredis.Redis,
) -> None:
    found = RedisBatchRegistry(client, prefix="t:guarded:")
    guarded = _batch("g1", "alice")
    guarded.endpoint, guarded.guardrails = "/v1/chat/completions", ["answers", "policy"]
    await found.put(guarded)
    assert await found.get("g1") == guarded  # the output's guardrails come back on every replica
    old = orjson.loads(await client.get("t:guarded:b:g1"))
    del old["endpoint"], old["guardrails"]  # a record written before batches had guardrails
    await client.set("t:guarded:b:g1", orjson.dumps(old))
    loaded = await found.get("g1")
    assert loaded is not None and loaded.endpoint == "" and loaded.guardrails == []


async def test_redis_down_is_a_503() -> None:
    unreachable = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    try:
        with pytest.raises(ServiceUnavailableError, match="shared state store"):
            await RedisBatchRegistry(unreachable).get("b1")
    finally:
        await unreachable.aclose()


def _config(redis_url: str, staging: str, deployment: str) -> str:
    return f"""\
model_list:
  - model_name: gpt
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: {deployment}
      api_key: {UPSTREAM}
      input_cost_per_token: 0.001
      output_cost_per_token: 0.002
files_settings:
  - {{custom_llm_provider: openai, api_base: {staging}, api_key: {UPSTREAM}}}
router_settings: {{redis_url: "{redis_url}"}}
general_settings: {{master_key: {MASTER}}}
keys:
  - {{key_alias: carol, key: {CAROL}, models: [gpt]}}
"""


def _spent(server: RouterdServer) -> float:
    rows = server.state.gate.ledger.report("key", 0, 4e9)
    return sum(float(row["spend_usd"]) for row in rows if row["name"] == "carol")


def test_two_replicas_share_gateway_batches(redis_server: RedisServer, tmp_path: Path) -> None:
    with (
        run_in_thread(FakeOpenAIFineTuning(api_key=UPSTREAM)) as staging,
        run_in_thread(FakeOpenAIFineTuning(api_key=UPSTREAM)) as deployment,
    ):
        config = tmp_path / "config.yaml"
        config.write_text(_config(redis_server.url, staging.base_url, deployment.base_url))
        with (
            RouterdServer.from_file(config, spend_db=tmp_path / "a.sqlite") as first,
            RouterdServer.from_file(config, spend_db=tmp_path / "b.sqlite") as second,
        ):
            one, two = (
                tracked(openai.OpenAI(base_url=s.base_url + "/v1", api_key=CAROL, max_retries=0))
                for s in (first, second)
            )
            line = {
                "custom_id": "a",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {"model": "gpt", "messages": [{"role": "user", "content": "hi"}]},
            }
            upload = one.files.create(file=("in.jsonl", orjson.dumps(line)), purpose="batch")
            batch = one.batches.create(
                input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
            )
            assert [b.id for b in two.batches.list()] == [batch.id]
            deployment.complete_batch(batch.id, usage=(10, 5))
            done = two.batches.retrieve(batch.id)  # the other replica meters it
            assert done.status == "completed"
            assert one.batches.retrieve(batch.id).status == "completed"  # ... and this one does not again
            assert one.files.content(done.output_file_id).content
            assert _spent(second) == pytest.approx(10 * 0.001 + 5 * 0.002) and _spent(first) == 0
