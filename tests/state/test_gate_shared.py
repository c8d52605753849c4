"""The gate's shared state on a real Redis: two replicas share the response cache and the spend that
budgets count; Redis gone means cache misses and local budgets, never a failed call."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from clients import tracked

from routerd.testing import FakeOpenAI
from routerd.testing.openai_fake import run_in_thread
from routerd.testing.redis import RedisServer
from routerd.testing.server import RouterdServer
from routerd.testing.wait import wait_for

MASTER = "sk-shared-master-000000"
KEY = "sk-shared-client-key-0000001"
UPSTREAM_KEY = "sk-shared-upstream-key-0001"


def _config(upstream: str, redis_url: str) -> str:
    return (
        "model_list:\n"
        f"  - {{model_name: m, litellm_params: {{model: openai/gpt-4o-mini, api_base: {upstream}, api_key: {UPSTREAM_KEY},"
        " input_cost_per_token: 0.001, output_cost_per_token: 0.001}}\n"
        f"router_settings: {{redis_url: '{redis_url}'}}\n"
        f"general_settings: {{master_key: {MASTER}}}\n"
        "litellm_settings:\n  cache: true\n  cache_params: {type: redis, ttl: 60}\n"
        f"keys:\n  - {{key_alias: shared, key: {KEY}, max_budget: 0.05, budget_duration: 1d}}\n"
    )


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with run_in_thread(FakeOpenAI(api_key=UPSTREAM_KEY)) as started:
        yield started


def _client(server: RouterdServer, key: str = MASTER) -> openai.OpenAI:
    return tracked(openai.OpenAI(base_url=server.base_url + "/v1", api_key=key, max_retries=0))


def _replicas(config: Path, tmp_path: Path) -> tuple[RouterdServer, RouterdServer]:
    a = RouterdServer.from_file(config, spend_db=tmp_path / "a.sqlite", spend_flush_seconds=0.05)
    b = RouterdServer.from_file(config, spend_db=tmp_path / "b.sqlite", spend_flush_seconds=0.05)
    return a, b


def test_two_replicas_share_one_cache(fake: FakeOpenAI, redis_server: RedisServer, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(_config(fake.base_url, redis_server.url))
    a, b = _replicas(config, tmp_path)
    with a, b:
        question = [{"role": "user", "content": "shared?"}]
        first = _client(a).chat.completions.with_raw_response.create(model="m", messages=question)
        second = _client(b).chat.completions.with_raw_response.create(model="m", messages=question)
        assert (first.headers["x-routerd-cache"], second.headers["x-routerd-cache"]) == ("miss", "hit")
        assert second.parse().choices[0].message.content == first.parse().choices[0].message.content
        assert len(fake.requests) == 1
        redis_server.kill()  # Redis gone: every lookup is a miss, no call fails
        for server in (a, b):
            answer = _client(server).chat.completions.with_raw_response.create(model="m", messages=question)
            assert answer.headers["x-routerd-cache"] == "miss" and answer.parse().choices[0].message.content
        assert len(fake.requests) == 3


def test_two_replicas_share_spend_for_budgets(
    fake: FakeOpenAI, redis_server: RedisServer, tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(_config(fake.base_url, redis_server.url))
    a, b = _replicas(config, tmp_path)
    with a, b:
        words = "spend a good part of the budget " * 4
        _client(a, KEY).chat.completions.create(
            model="m", messages=[{"role": "user", "content": words}], extra_body={"cache": {"no-store": True}}
        )

        def seen_by_b() -> bool:
            info = httpx.get(b.base_url + "/key/info", headers={"authorization": f"Bearer {KEY}"}).json()
            return info["info"]["spend"] >= 0.05

        wait_for(seen_by_b, "replica b to see replica a's spend", timeout=10)
        with pytest.raises(openai.BadRequestError) as caught:
            _client(b, KEY).chat.completions.create(model="m", messages=[{"role": "user", "content": "more"}])
        assert caught.value.body["type"] == "budget_exceeded"  # type: ignore[index]
        assert redis_server.command("KEYS", "routerd:spend:*").strip()  # the shared counter exists


def _spend(server: RouterdServer, **params: str) -> dict[str, Any]:
    answer = httpx.get(
        server.base_url + "/v1/routerd/spend",
        params={"group_by": "key", **params},
        headers={"authorization": f"Bearer {MASTER}"},
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_the_spend_report_is_the_fleets(fake: FakeOpenAI, redis_server: RedisServer, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(_config(fake.base_url, redis_server.url).replace("max_budget: 0.05", "max_budget: 100"))
    a, b = _replicas(config, tmp_path)
    with a, b:
        for server in (a, b, b):
            _client(server, KEY).chat.completions.create(
                model="m",
                messages=[{"role": "user", "content": "count me"}],
                extra_body={"cache": {"no-store": True}},
            )

        def fleet_row() -> tuple[dict[str, Any], dict[str, Any]] | None:
            fleet = _spend(a)
            rows = [r for r in fleet["data"] if r["name"] == "shared"]
            return (fleet, rows[0]) if rows and rows[0]["requests"] == 3 else None

        # each replica pushes its rows every flush (0.05 s here): wait for b's two to reach Redis
        fleet, row = wait_for(fleet_row, "the fleet's report to hold a's one call and b's two", timeout=10)
        assert fleet["scope"] == "fleet"
        assert row["spend_usd"] > 0
        mine = _spend(a, scope="replica")
        assert mine["scope"] == "replica"
        assert [r["requests"] for r in mine["data"] if r["name"] == "shared"] == [1]
        info = httpx.get(a.base_url + "/key/info", headers={"authorization": f"Bearer {KEY}"}).json()
        assert info["info"]["spend_scope"] == "fleet"
        wait_for(lambda: httpx.get(a.base_url + "/key/info", headers={"authorization": f"Bearer {KEY}"}).json()["info"]["spend"]
                 == pytest.approx(row["spend_usd"]), "a's /key/info to show the fleet's spend", timeout=10)  # fmt: skip
        bad = httpx.get(
            a.base_url + "/v1/routerd/spend?scope=galaxy", headers={"authorization": f"Bearer {MASTER}"}
        )
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "scope"
        redis_server.kill()  # Redis gone: the report is this replica's, and says so
        alone = _spend(b)
        assert alone["scope"] == "replica"
        assert [r["requests"] for r in alone["data"] if r["name"] == "shared"] == [2]
