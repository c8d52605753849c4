"""Several ``routerd serve`` processes sharing one private Redis, in front of fake OpenAI upstreams.

The tests of one module share the processes and run in file order (the last one kills Redis); each
test uses its own model group, so one test's windows and cooldowns never touch another's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from routerd.testing import FakeOpenAI, Reply, run_in_thread
from routerd.testing.redis import RedisClusterNodes, RedisServer

from .support import AUTH, MASTER_KEY, ServeProcess, chat, start_all

UPSTREAM_KEY = "sk-state-upstream-0001"
CLIENT_KEY = "sk-state-client-key-0001"


def config(good: str, bad: str, redis: str) -> str:
    up = f"api_key: {UPSTREAM_KEY}"
    return f"""
model_list:
  - model_name: limited
    litellm_params: {{model: openai/limited, api_base: {good}, {up}, rpm: 30}}
    model_info: {{id: limited-1}}
  - model_name: after-restart
    litellm_params: {{model: openai/after, api_base: {good}, {up}, rpm: 6}}
    model_info: {{id: after-1}}
  - model_name: load
    litellm_params: {{model: openai/load, api_base: {good}, {up}, rpm: 100000}}
    model_info: {{id: load-1}}
  - model_name: keyed
    litellm_params: {{model: openai/keyed, api_base: {good}, {up}}}
    model_info: {{id: keyed-1}}
  - model_name: pair
    litellm_params: {{model: openai/flaky, api_base: {bad}, {up}}}
    model_info: {{id: flaky}}
  - model_name: pair
    litellm_params: {{model: openai/steady, api_base: {good}, {up}}}
    model_info: {{id: steady}}
router_settings:
{redis}
  allowed_fails: 0
  cooldown_time: 60
  num_retries: 1
general_settings:
  master_key: {MASTER_KEY}
keys:
  - {{key_alias: fleet-key, key: {CLIENT_KEY}, rpm_limit: 12}}
"""


def hits(fake: FakeOpenAI, model: str) -> int:
    return sum(1 for r in list(fake.requests) if isinstance(r.json, dict) and r.json.get("model") == model)


@pytest.fixture(scope="module")
def good() -> Iterator[FakeOpenAI]:
    with run_in_thread(FakeOpenAI(api_key=UPSTREAM_KEY)) as fake:
        yield fake


@pytest.fixture(scope="module")
def bad() -> Iterator[FakeOpenAI]:
    with run_in_thread(FakeOpenAI(api_key=UPSTREAM_KEY)) as fake:
        yield fake


@pytest.fixture(scope="module")
def module_redis(redis_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


def three(directory: Path, text: str) -> list[ServeProcess]:
    path = directory / "config.yaml"
    path.write_text(text, encoding="utf-8")
    # 2 s, not the 50 ms default: these tests check the shared limits, and on a loaded CI machine a Redis
    # reply slower than the timeout would (correctly) send a replica to its local share for a while
    env = {"ROUTERD_STATE_PROCESSES": "3", "ROUTERD_STATE_TIMEOUT_MS": "2000"}
    processes = [ServeProcess(path, directory / f"routerd-{i}.log", **env) for i in range(3)]
    start_all(processes)
    return processes


@pytest.fixture(scope="module")
def replicas(
    good: FakeOpenAI, bad: FakeOpenAI, module_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[ServeProcess]]:
    redis = f"  redis_url: {module_redis.url}"
    processes = three(tmp_path_factory.mktemp("replicas"), config(good.base_url, bad.base_url, redis))
    try:
        yield processes
    finally:
        for process in processes:
            process.stop()


def limit_test(replicas: list[ServeProcess], fake: FakeOpenAI, model: str, total: int) -> list[int]:
    """``total`` calls spread round-robin; the statuses, after checking every refusal's shape."""
    clients = [httpx.Client(timeout=30) for _ in replicas]
    statuses = []
    try:
        for i in range(total):
            response = chat(replicas[i % len(replicas)].base_url, model, clients[i % len(replicas)])
            statuses.append(response.status_code)
            if response.status_code == 429:
                assert float(response.headers["retry-after"]) > 0
                assert response.json()["error"]["type"]
    finally:
        for client in clients:
            client.close()
    return statuses


def test_three_replicas_hold_one_rpm_limit(replicas: list[ServeProcess], good: FakeOpenAI) -> None:
    assert all(p.health()["state"]["mode"] == "shared" for p in replicas)
    statuses = limit_test(replicas, good, "limited", 90)
    assert 28 <= hits(good, "limited") <= 31
    assert set(statuses) == {200, 429}
    assert statuses.count(200) == hits(good, "limited")


def test_a_key_limit_holds_across_replicas_and_one_replica_gets_all_of_it(
    replicas: list[ServeProcess], good: FakeOpenAI
) -> None:
    body = {"model": "keyed", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"authorization": f"Bearer {CLIENT_KEY}"}
    a = replicas[0]
    with httpx.Client(timeout=30, headers=headers) as client:
        on_one = [client.post(f"{a.base_url}/v1/chat/completions", json=body) for _ in range(15)]
        elsewhere = [client.post(f"{p.base_url}/v1/chat/completions", json=body) for p in replicas[1:]]
    # all the load on one replica: the key's whole rpm_limit (12), not 12 // 3
    assert [r.status_code for r in on_one] == [200] * 12 + [429] * 3
    assert all(r.status_code == 429 for r in elsewhere)  # the other replicas see the same window
    refusal = elsewhere[0]
    assert float(refusal.headers["retry-after"]) > 0
    assert refusal.json()["error"]["code"] == "rpm_limit"
    assert hits(good, "keyed") == 12


def test_a_deployment_failing_on_one_replica_is_avoided_by_the_others(
    replicas: list[ServeProcess], good: FakeOpenAI, bad: FakeOpenAI
) -> None:
    a, b, c = replicas
    bad.enqueue(*[Reply.error(500, "upstream down") for _ in range(200)])
    for _ in range(40):  # until a's random pick tries the failing deployment once (then it cools)
        assert chat(a.base_url, "pair").status_code == 200
        if hits(bad, "flaky"):
            break
    assert hits(bad, "flaky") == 1
    time.sleep(1.0)  # the bound: every other process stops sending within 1 s
    for _ in range(15):
        for process in (b, c):
            assert chat(process.base_url, "pair").status_code == 200
    assert hits(bad, "flaky") == 1
    states = {d["id"]: d["state"] for d in b.health()["deployments"]["deployments"]}
    assert states["flaky"] == "cooling_down"


def test_redis_killed_under_load_then_restarted(
    replicas: list[ServeProcess], good: FakeOpenAI, module_redis: RedisServer
) -> None:
    failures: list[str] = []
    done = threading.Event()
    sent = [0]

    def client_loop(index: int) -> None:
        with httpx.Client(timeout=30) as client:
            i = index
            while not done.is_set() and sent[0] < 5000:
                response = chat(replicas[i % 3].base_url, "load", client)
                sent[0] += 1
                if response.status_code != 200:
                    failures.append(f"{response.status_code} {response.text[:200]}")
                i += 1

    threads = [threading.Thread(target=client_loop, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.0)
        before_kill = sent[0]
        module_redis.kill()
        time.sleep(1.5)
    finally:
        done.set()
        for thread in threads:
            thread.join(timeout=60)
    assert before_kill > 0 and sent[0] > before_kill
    assert failures == []
    assert all(p.health()["state"] == {"backend": p.health()["state"]["backend"], "mode": "local",
                                       "up": False, "limit_share": 3} for p in replicas)  # fmt: skip
    metrics = httpx.get(f"{replicas[0].base_url}/metrics", headers=AUTH, timeout=10).text
    assert 'routerd_state_backend_up{backend="redis"} 0.0' in metrics
    module_redis.start()
    deadline = time.monotonic() + 5.0  # the documented bound for shared state to resume
    while not all(p.health()["state"]["mode"] == "shared" for p in replicas):
        assert time.monotonic() < deadline, "shared state did not resume within 5 s of Redis returning"
        time.sleep(0.05)
    statuses = limit_test(replicas, good, "after-restart", 18)
    assert 5 <= hits(good, "after") <= 6
    assert statuses.count(200) == hits(good, "after")


# --- --workers N without Redis ------------------------------------------------------------------------


@pytest.mark.slow  # over ~10 s (pytest --durations); deselect with -m "not slow"
def test_two_workers_without_redis_divide_a_limit(good: FakeOpenAI, tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    text = config(good.base_url, good.base_url, "  timeout: 30").replace("rpm: 30", "rpm: 20")
    path.write_text(text.replace("model: openai/limited", "model: openai/workers"), encoding="utf-8")
    process = ServeProcess(path, tmp_path / "routerd.log", ROUTERD_WORKERS="2")
    start_all([process])
    try:
        assert process.health()["state"] == {
            "backend": "memory",
            "mode": "per_worker",
            "up": True,
            "limit_share": 2,
        }
        statuses = [chat(process.base_url, "limited").status_code for _ in range(40)]  # new connections
        metrics = httpx.get(f"{process.base_url}/metrics", headers=AUTH, timeout=10).text
    finally:
        process.stop()
    assert 10 <= hits(good, "workers") <= 20
    assert statuses.count(200) == hits(good, "workers")
    assert 'routerd_state_mode{mode="per_worker"} 1.0' in metrics


# --- Redis Cluster ------------------------------------------------------------------------------------


@pytest.mark.slow  # over ~10 s (pytest --durations); deselect with -m "not slow"
def test_three_replicas_on_a_redis_cluster_hold_one_rpm_limit(
    redis_cluster: RedisClusterNodes, good: FakeOpenAI, tmp_path: Path
) -> None:
    nodes = ", ".join(f"{{host: {h}, port: {p}}}" for h, p in redis_cluster.startup_nodes)
    text = config(good.base_url, good.base_url, f"  redis_startup_nodes: [{nodes}]")
    text = text.replace("model: openai/limited", "model: openai/clustered")
    processes = three(tmp_path, text)
    try:
        assert all(p.health()["state"]["mode"] == "shared" for p in processes)
        assert processes[0].health()["state"]["backend"].startswith("redis-cluster")
        statuses = limit_test(processes, good, "limited", 90)
    finally:
        for process in processes:
            process.stop()
    assert 28 <= hits(good, "clustered") <= 31
    assert statuses.count(200) == hits(good, "clustered")
