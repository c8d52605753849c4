"""What the Redis state store costs: routerd on the memory store vs routerd on a (local) Redis.

Starts on loopback: the fast fake upstream of bench_proxy.py and three routerd processes (one worker
each) on the same routing file: the default memory store; a Redis store with the default rpm
reservations (most calls skip Redis); and a Redis store with ``ROUTERD_STATE_LEASE_FRACTION=0`` (every
call pays the admission round trip, the Lua script), each Redis store on its own private redis-server.
The deployment has an rpm limit far above the load (``--limit tpm``: a tpm limit, which counts tokens
and before token leases made every call pay the round trip; ``--limit none``: no limit, which never
waits on Redis). ``--key`` sends the calls with a client key whose key and team have rpm and tpm
limits far above the load (the gate's shared key/team limits on top of the deployment's). The stores take turns for several rounds and the medians are printed: requests/s
and p50 at 1 and 32 in flight, the added p50 (store p50 minus memory p50 of the same round), the
throughput as a share of the memory store's, and the Redis round trips and commands per routed
request (from ``INFO commandstats``; background sync and token corrections included).

    .venv/bin/python bench/bench_state.py [--seconds 2] [--rounds 5] [--limit rpm|tpm|none] [--key]

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
KEYS = """
teams:
  - {team_id: bench-team, rpm_limit: 100000000, tpm_limit: 10000000000}
keys:
  - {key_alias: bench-key, key: sk-routerd-bench-client, team_id: bench-team, rpm_limit: 100000000,
     tpm_limit: 10000000000}
"""
LIMITS = {"rpm": "\n      rpm: 100000000", "tpm": "\n      tpm: 10000000000", "none": ""}
AUTH = {"authorization": "Bearer sk-routerd-bench", "content-type": "application/json"}
KEY_AUTH = {"authorization": "Bearer sk-routerd-bench-client", "content-type": "application/json"}


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
    parser.add_argument("--rounds", type=int, default=5, help="turns of the three stores per load level")
    parser.add_argument("--limit", choices=sorted(LIMITS), default="rpm", help="the deployment's limit")
    parser.add_argument("--key", action="store_true", help="calls with a client key with rpm/tpm limits")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="routerd-bench-state-"))
    upstream_port = free_port()
    config = workdir / "bench.yaml"
    config.write_text(
        CONFIG.format(port=upstream_port, limit=LIMITS[args.limit]) + (KEYS if args.key else "")
    )
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("ROUTERD_")}
    base_env.update(ROUTERD_LOG_LEVEL="warning", ROUTERD_LOG_REQUESTS="false", ROUTERD_WATCH="false")
    servers = [RedisServer(workdir / "redis-lease").start(), RedisServer(workdir / "redis-exact").start()]
    stores: list[tuple[str, int, RedisServer | None, dict[str, str]]] = [
        ("memory", free_port(), None, {}),
        ("redis", free_port(), servers[0], {"ROUTERD_REDIS_URL": servers[0].url}),
        ("redis-exact", free_port(), servers[1], {"ROUTERD_REDIS_URL": servers[1].url,
                                                   "ROUTERD_STATE_LEASE_FRACTION": "0"}),
    ]  # fmt: skip
    processes = [subprocess.Popen([sys.executable, "-c", UPSTREAM, str(upstream_port)])]
    try:
        for _, port, _, extra in stores:
            command = [
                sys.executable,
                "-m",
                "routerd.cli",
                "serve",
                "--config",
                str(config),
                "--port",
                str(port),
            ]
            processes.append(subprocess.Popen(command, env={**base_env, **extra}, cwd=REPO))
        asyncio.run(measure(args, stores))
    finally:
        for process in reversed(processes):
            process.terminate()
            process.wait(timeout=40)
        for server in servers:
            server.stop()


Result = dict[str, float]


async def measure(
    args: argparse.Namespace, stores: list[tuple[str, int, RedisServer | None, dict[str, str]]]
) -> None:
    for _, port, _, _ in stores:
        await wait_ready(f"http://127.0.0.1:{port}/health/readiness")
    body = orjson.dumps({"model": "bench", "messages": [{"role": "user", "content": "ping"}]})
    auth = KEY_AUTH if args.key else AUTH
    limit = "without limits" if args.limit == "none" else f"with a {args.limit} limit"
    print(
        f"state bench: plain chat, deployment {limit}{', client key with limits' if args.key else ''}; "
        f"{args.rounds} rounds of {args.seconds:g}s per store (memory, redis, redis-exact) per load"
    )
    for concurrency in (1, 32):
        results: dict[str, list[Result]] = {name: [] for name, _, _, _ in stores}
        usage = {name: [0, 0, 0] for name, _, _, _ in stores}  # requests, round trips, commands
        ticks, stolen = cpu_ticks()
        for _ in range(args.rounds):
            for name, port, server, _ in stores:
                url = f"http://127.0.0.1:{port}/v1/chat/completions"
                before = commands(server) if server else (0, 0)
                result = await drive(url, auth, body, concurrency, args.seconds, False)
                after = commands(server) if server else (1, 1)
                results[name].append(result)
                usage[name][0] += int(result["requests"] + result["warmup"])
                usage[name][1] += after[0] - before[0] - 1  # minus the INFO itself
                usage[name][2] += after[1] - before[1] - 1
        ticks_now, stolen_now = cpu_ticks()
        steal = 100 * (stolen_now - stolen) / max(ticks_now - ticks, 1)
        memory = results["memory"]
        print(f"{concurrency} in flight (steal {steal:.0f}%):")
        for name, runs in results.items():
            added = sorted(r["p50_ms"] - m["p50_ms"] for m, r in zip(memory, runs, strict=True))
            ratio = sorted(r["rps"] / m["rps"] for m, r in zip(memory, runs, strict=True))
            sent, trips, calls = usage[name]
            print(
                f"  {name:>11}: {statistics.median(r['rps'] for r in runs):6.0f} req/s  p50 "
                f"{statistics.median(r['p50_ms'] for r in runs):6.3f} ms  | added p50 "
                f"{statistics.median(added):+.3f} ms (rounds {' '.join(f'{a:+.2f}' for a in added)})  | "
                f"req/s vs memory {statistics.median(ratio):4.0%}  | Redis round trips/request "
                f"{trips / max(sent, 1):.3f}, commands/request {calls / max(sent, 1):.2f}  | "
                f"failed {sum(r['errors'] for r in runs):.0f}"
            )


if __name__ == "__main__":
    main()
