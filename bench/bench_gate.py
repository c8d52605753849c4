"""What the gate costs: client keys with spend accounting, a content-filter guardrail, and cache hits.

Each scenario runs two routerd processes (or two kinds of request) in front of the same fast fake
OpenAI upstream (bench_proxy's), alternating rounds of load so noise spoils a pair, not a side:

- ``keys``:       a master key only, vs 1,000 declared keys in 50 teams with budgets and rpm limits
                  (calls made with one of them; spend written to a SQLite ledger). Target >= 95%.
- ``guardrails``: no guardrail, vs a 20-pattern litellm_content_filter on pre_call and post_call
                  (default_on). Target >= 90%.
- ``cache``:      one routerd with the local cache: repeated requests (hits) vs requests that bypass it
                  (cache: {no-cache, no-store}: proxied misses). Target: hits >= 2x the misses' req/s.
                  Also prints the local cache's memory per 10,000 entries of the bench answer.

    .venv/bin/python bench/bench_gate.py keys|guardrails|cache [--seconds 2] [--rounds 5] [--concurrency 32]

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
import tracemalloc
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_proxy import REPO, UPSTREAM, cpu_seconds, cpu_ticks, drive, free_port, wait_ready

MASTER = "sk-routerd-bench"
CLIENT_KEY = "sk-bench-client-key-0500-xxxxxxxx"

BASE = """
model_list:
  - model_name: bench
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: http://127.0.0.1:{port}/v1
      api_key: sk-bench-not-a-real-key
      input_cost_per_token: 0.000001
      output_cost_per_token: 0.000002
general_settings:
  master_key: {master}
"""

PATTERNS = [
    "email", "phone", "us_ssn", "credit_card", "visa", "mastercard", "amex", "discover", "iban", "ipv4",
    "aws_access_key", "aws_secret_key", "github_token", "openai_api_key", "anthropic_api_key",
    "google_api_key", "slack_token", "stripe_key", "private_key", "jwt",
]  # fmt: skip

PROMPT = (
    "Please summarise the following support ticket in two sentences. The customer writes that the "
    "invoice for order 4471 was charged twice, that the second charge should be refunded to the same "
    "card, and that they can be reached by phone in the afternoons. They also ask whether the annual "
    "plan can be switched to monthly billing from next quarter."
)


def keys_config(port: int) -> str:
    teams = "".join(
        f"  - {{team_id: team-{t}, max_budget: 1000, budget_duration: 30d, rpm_limit: 1000000}}\n"
        for t in range(50)
    )
    keys = "".join(
        f"  - {{key_alias: key-{i:04d}, key: sk-bench-client-key-{i:04d}-xxxxxxxx, team_id: team-{i % 50},"
        f" max_budget: 100, budget_duration: 1d, rpm_limit: 1000000, tpm_limit: 100000000}}\n"
        for i in range(1000)
    )
    return BASE.format(port=port, master=MASTER) + "teams:\n" + teams + "keys:\n" + keys


def guardrail_config(port: int) -> str:
    patterns = "".join(
        f"        - {{pattern_type: prebuilt, pattern_name: {p}, action: MASK}}\n" for p in PATTERNS
    )
    return BASE.format(port=port, master=MASTER) + (
        "guardrails:\n  - guardrail_name: filter\n    litellm_params:\n      guardrail: litellm_content_filter\n"
        "      mode: [pre_call, post_call]\n      default_on: true\n      patterns:\n" + patterns
    )


def cache_config(port: int) -> str:
    return (
        BASE.format(port=port, master=MASTER)
        + "litellm_settings:\n  cache: true\n  cache_params: {type: local, ttl: 3600}\n"
    )


def start_routerd(config: str, workdir: Path, name: str) -> tuple[subprocess.Popen[bytes], int]:
    path = workdir / f"{name}.yaml"
    path.write_text(config)
    port = free_port()
    env = {
        **os.environ,
        "ROUTERD_LOG_LEVEL": "warning",
        "ROUTERD_LOG_REQUESTS": "false",
        "ROUTERD_WATCH": "false",
        "ROUTERD_SPEND_DB": str(workdir / f"{name}-spend.sqlite"),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "routerd.cli", "serve", "--config", str(path), "--port", str(port)],
        env=env,
        cwd=REPO,
    )
    return process, port


async def pair(
    label_a: str,
    run_a,
    pid_a: int,
    label_b: str,
    run_b,
    pid_b: int,
    rounds: int,
    target: str,  # type: ignore[no-untyped-def]
) -> None:
    a_results, b_results, cpu_a, cpu_b = [], [], 0.0, 0.0
    ticks, stolen = cpu_ticks()
    for _ in range(rounds):
        before = cpu_seconds(pid_a)
        a_results.append(await run_a())
        cpu_a += cpu_seconds(pid_a) - before
        before = cpu_seconds(pid_b)
        b_results.append(await run_b())
        cpu_b += cpu_seconds(pid_b) - before
    ticks_now, stolen_now = cpu_ticks()
    steal = 100 * (stolen_now - stolen) / max(ticks_now - ticks, 1)
    ratios = sorted(b["rps"] / a["rps"] for a, b in zip(a_results, b_results, strict=True))

    def line(label: str, results: list[dict[str, float]], cpu: float, same_pid: bool) -> str:
        requests = sum(r["requests"] + r["warmup"] for r in results)
        rps = statistics.median(r["rps"] for r in results)
        p50 = statistics.median(r["p50_ms"] for r in results)
        errors = sum(r["errors"] for r in results)
        cpu_note = "" if same_pid else f"  CPU {cpu / requests * 1e6:5.0f} us/req"
        return f"  {label:<34} {rps:7.0f} req/s  p50 {p50:6.2f} ms  errors {errors:.0f}{cpu_note}"

    same = pid_a == pid_b
    print(line(label_a, a_results, cpu_a, same))
    print(line(label_b, b_results, cpu_b, same))
    print(
        f"  ratio {label_b} / {label_a}: median {statistics.median(ratios):.3f} "
        f"(rounds {' '.join(f'{r:.2f}' for r in ratios)}; {target})  | steal {steal:.0f}%"
    )


def cache_memory_per_10k() -> float:
    from routerd.cache.local import LocalCache

    answer = orjson.dumps(
        {"id": "chatcmpl-bench", "object": "chat.completion", "created": 1700000000, "model": "gpt-4o-mini",
         "choices": [{"index": 0, "message": {"role": "assistant", "content": "pong " * 40}, "finish_reason": "stop"}],
         "usage": {"prompt_tokens": 9, "completion_tokens": 40, "total_tokens": 49}}
    )  # fmt: skip
    cache = LocalCache(max_bytes=1 << 30, max_entry_bytes=1 << 20)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(10_000):
        cache.set(f"{i:064x}", bytes(bytearray(answer)), 3600)  # a distinct object per entry
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    print(f"  local cache: 10,000 entries of a {len(answer)}-byte answer take {used / 1e6:.2f} MB "
          f"({used / 10_000:.0f} B per entry; the cache counts {cache.bytes / 10_000:.0f} B per entry)")  # fmt: skip
    return used


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=["keys", "guardrails", "cache"])
    parser.add_argument("--seconds", type=float, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="routerd-bench-gate-"))
    upstream_port = free_port()
    upstream = subprocess.Popen([sys.executable, "-c", UPSTREAM, str(upstream_port)])
    processes = [upstream]
    try:
        if args.scenario == "cache":
            cache_memory_per_10k()
            process, port = start_routerd(cache_config(upstream_port), workdir, "cache")
            processes.insert(0, process)
            asyncio.run(run_cache(args, port, process.pid))
        else:
            make = keys_config if args.scenario == "keys" else guardrail_config
            plain, plain_port = start_routerd(
                BASE.format(port=upstream_port, master=MASTER), workdir, "plain"
            )
            gated, gated_port = start_routerd(make(upstream_port), workdir, args.scenario)
            processes[:0] = [plain, gated]
            asyncio.run(run_pair(args, plain_port, plain.pid, gated_port, gated.pid))
    finally:
        for process in processes:  # routerd before its upstream
            process.terminate()
            process.wait(timeout=40)


def _body(**extra: object) -> bytes:
    return orjson.dumps({"model": "bench", "messages": [{"role": "user", "content": PROMPT}], **extra})


async def run_pair(
    args: argparse.Namespace, plain_port: int, plain_pid: int, gated_port: int, gated_pid: int
) -> None:
    for port in (plain_port, gated_port):
        await wait_ready(f"http://127.0.0.1:{port}/health/readiness")
    key = CLIENT_KEY if args.scenario == "keys" else MASTER
    body = _body()

    async def plain() -> dict[str, float]:
        headers = {"authorization": f"Bearer {MASTER}", "content-type": "application/json"}
        return await drive(
            f"http://127.0.0.1:{plain_port}/v1/chat/completions",
            headers,
            body,
            args.concurrency,
            args.seconds,
            False,
        )

    async def gated() -> dict[str, float]:
        headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
        return await drive(
            f"http://127.0.0.1:{gated_port}/v1/chat/completions",
            headers,
            body,
            args.concurrency,
            args.seconds,
            False,
        )

    what = "1000 keys + spend" if args.scenario == "keys" else "20-pattern filter pre+post"
    target = "target >= 0.95" if args.scenario == "keys" else "target >= 0.90"
    print(
        f"bench_gate {args.scenario}: {args.rounds} rounds of {args.seconds:g}s each side, {args.concurrency} in flight"
    )
    await pair("master key only, no gate work", plain, plain_pid, what, gated, gated_pid, args.rounds, target)


async def run_cache(args: argparse.Namespace, port: int, pid: int) -> None:
    await wait_ready(f"http://127.0.0.1:{port}/health/readiness")
    headers = {"authorization": f"Bearer {MASTER}", "content-type": "application/json"}
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    hit, miss = _body(), _body(cache={"no-cache": True, "no-store": True})

    async def misses() -> dict[str, float]:
        return await drive(url, headers, miss, args.concurrency, args.seconds, False)

    async def hits() -> dict[str, float]:
        return await drive(url, headers, hit, args.concurrency, args.seconds, False)

    print(
        f"bench_gate cache: {args.rounds} rounds of {args.seconds:g}s each side, {args.concurrency} in flight"
    )
    await pair(
        "proxied misses (no-cache, no-store)",
        misses,
        pid,
        "cache hits",
        hits,
        pid,
        args.rounds,
        "target >= 2",
    )
    one = await drive(url, headers, hit, 1, args.seconds, False)
    print(f"  cache hit at 1 in flight: p50 {one['p50_ms']:.3f} ms, p99 {one['p99_ms']:.3f} ms")


if __name__ == "__main__":
    main()
