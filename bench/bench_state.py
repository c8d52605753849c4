"""What the Redis state store costs: routerd on the memory store vs routerd on a (local) Redis.

Starts on loopback: the fast fake upstream of bench_proxy.py, a private redis-server, and two routerd
processes (one worker each) on the same routing file, one with the default memory store and one with
``ROUTERD_REDIS_URL``. The deployment has an rpm limit (far above the load), so every call on the
Redis store pays its one admission round trip (the Lua script); ``--no-limit`` measures a deployment
without limits, which never waits on Redis. Memory and Redis runs alternate for several rounds and the
medians are printed: requests/s and p50 at 1 and 32 in flight, the added p50 (Redis p50 minus memory
p50 of the same round), the Redis throughput as a share of the memory store's, and the Redis commands
per routed request (from ``INFO commandstats``: the admission script, token corrections and the
background sync, all included).

    .venv/bin/python bench/bench_state.py [--seconds 2] [--rounds 5] [--no-limit]

A benchmark, not a test: it asserts nothing and prints numbers for the closing notes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_proxy import REPO, UPSTREAM, cpu_ticks, drive, free_port, wait_ready

from routerd.testing.redis import RedisServer

CONFIG = """
model_list:
  - model_name: bench
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: http://127.0.0.1:{port}/v1
      api_key: sk-bench-not-a-real-key{limit}
general_settings:
  master_key: sk-routerd-bench
"""
AUTH = {"authorization": "Bearer sk-routerd-bench", "content-type": "application/json"}


# What routerd sends itself; everything else in commandstats ran inside its Lua scripts.
_TOP_LEVEL = ("evalsha", "eval", "ping", "info", "client", "hello", "subscribe", "script", "cluster")


def commands(redis: RedisServer) -> tuple[int, int]:
    """(round trips, commands including those run inside scripts) Redis has executed so far."""
    trips = total = 0
    for line in redis.command("INFO", "commandstats").splitlines():
        if line.startswith("cmdstat_"):
            name, stats = line[len("cmdstat_") :].split(":", 1)
            calls = int(dict(item.split("=") for item in stats.split(","))["calls"])
            total += calls
            if name.split("|")[0] in _TOP_LEVEL:
                trips += calls
    return trips, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each run")
    parser.add_argument("--rounds", type=int, default=5, help="memory/Redis pairs per load level")
    parser.add_argument("--no-limit", action="store_true", help="a deployment without rpm/tpm limits")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="routerd-bench-state-"))
    upstream_port, memory_port, redis_port = free_port(), free_port(), free_port()
    config = workdir / "bench.yaml"
    limit = "" if args.no_limit else "\n      rpm: 100000000"
    config.write_text(CONFIG.format(port=upstream_port, limit=limit))
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("ROUTERD_")}
    base_env.update(ROUTERD_LOG_LEVEL="warning", ROUTERD_LOG_REQUESTS="false", ROUTERD_WATCH="false")
    redis = RedisServer(workdir / "redis").start()
    processes = [subprocess.Popen([sys.executable, "-c", UPSTREAM, str(upstream_port)])]
    try:
        for port, extra in ((memory_port, {}), (redis_port, {"ROUTERD_REDIS_URL": redis.url})):
            processes.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "routerd.cli",
                        "serve",
                        "--config",
                        str(config),
                        "--port",
                        str(port),
                    ],
                    env={**base_env, **extra},
                    cwd=REPO,
                )
            )
        asyncio.run(measure(args, memory_port, redis_port, redis))
    finally:
        for process in reversed(processes):
            process.terminate()
            process.wait(timeout=40)
        redis.stop()


async def measure(args: argparse.Namespace, memory_port: int, redis_port: int, redis: RedisServer) -> None:
    for port in (memory_port, redis_port):
        await wait_ready(f"http://127.0.0.1:{port}/health/readiness")
    body = orjson.dumps({"model": "bench", "messages": [{"role": "user", "content": "ping"}]})
    memory_url = f"http://127.0.0.1:{memory_port}/v1/chat/completions"
    redis_url = f"http://127.0.0.1:{redis_port}/v1/chat/completions"
    print(
        f"state bench: plain chat, deployment {'without limits' if args.no_limit else 'with an rpm limit'}; "
        f"{args.rounds} rounds of {args.seconds:g}s memory store then {args.seconds:g}s Redis store per load"
    )
    for concurrency in (1, 32):
        memory: list[dict[str, float]] = []
        shared: list[dict[str, float]] = []
        sent = trips = calls = 0
        ticks, stolen = cpu_ticks()
        for _ in range(args.rounds):
            memory.append(await drive(memory_url, AUTH, body, concurrency, args.seconds, False))
            trips_before, calls_before = commands(redis)
            result = await drive(redis_url, AUTH, body, concurrency, args.seconds, False)
            trips_after, calls_after = commands(redis)
            trips += trips_after - trips_before - 1  # minus the INFO itself
            calls += calls_after - calls_before - 1
            sent += int(result["requests"] + result["warmup"])
            shared.append(result)
        ticks_now, stolen_now = cpu_ticks()
        steal = 100 * (stolen_now - stolen) / max(ticks_now - ticks, 1)
        added = sorted(s["p50_ms"] - m["p50_ms"] for m, s in zip(memory, shared, strict=True))
        ratio = sorted(s["rps"] / m["rps"] for m, s in zip(memory, shared, strict=True))

        def median(results: list[dict[str, float]], key: str) -> float:
            return statistics.median(r[key] for r in results)

        failed = sum(r["errors"] for r in memory + shared)
        print(
            f"{concurrency:>2} in flight: memory {median(memory, 'rps'):6.0f} req/s p50 "
            f"{median(memory, 'p50_ms'):5.2f} ms | redis {median(shared, 'rps'):6.0f} req/s p50 "
            f"{median(shared, 'p50_ms'):5.2f} ms | added p50 {statistics.median(added):+.3f} ms "
            f"(rounds {' '.join(f'{a:+.2f}' for a in added)}) | redis/memory req/s "
            f"{statistics.median(ratio):.0%} | Redis round trips/request {trips / max(sent, 1):.2f} "
            f"(commands incl. inside scripts {calls / max(sent, 1):.1f}) | "
            f"failed {failed:.0f} | steal {steal:.0f}%"
        )


if __name__ == "__main__":
    main()
