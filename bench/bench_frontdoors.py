"""Throughput of ``/v1/messages`` passed through to an Anthropic deployment, against
``/v1/chat/completions`` to an OpenAI deployment, through the same routerd on the same machine.

Starts a minimal aiohttp upstream that answers both APIs with a fixed body (``/v1/messages`` in
Anthropic's shape, ``/v1/chat/completions`` in OpenAI's), and routerd (one worker) with one group for
each. Chat and messages runs alternate for several rounds at the same load; the medians are reported,
with routerd's CPU time per request and the ratio messages / chat (issue 17's target: >= 90%).

    .venv/bin/python bench/bench_frontdoors.py [--seconds 2] [--rounds 5] [--concurrency 32]

A benchmark, not a test: it asserts nothing and prints numbers for the closing notes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson
from bench_proxy import cpu_seconds, cpu_ticks, drive, free_port, wait_ready, wrk_run

REPO = Path(__file__).resolve().parent.parent

UPSTREAM = r"""
import sys, orjson
from aiohttp import web
CHAT = orjson.dumps({"id": "chatcmpl-bench", "object": "chat.completion", "created": 1700000000,
    "model": "gpt-4o-mini", "choices": [{"index": 0, "message": {"role": "assistant", "content": "pong"},
    "finish_reason": "stop", "logprobs": None}],
    "usage": {"prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10}})
MESSAGE = orjson.dumps({"id": "msg_bench", "type": "message", "role": "assistant",
    "model": "claude-sonnet-4-5", "content": [{"type": "text", "text": "pong"}],
    "stop_reason": "end_turn", "stop_sequence": None,
    "usage": {"input_tokens": 9, "output_tokens": 1}})
async def chat(request):
    await request.read()
    return web.Response(body=CHAT, content_type="application/json")
async def messages(request):
    await request.read()
    return web.Response(body=MESSAGE, content_type="application/json")
app = web.Application()
app.router.add_post("/v1/chat/completions", chat)
app.router.add_post("/v1/messages", messages)
import uvloop
uvloop.install()
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""

CONFIG = """
model_list:
  - model_name: gpt
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "http://127.0.0.1:{port}/v1", api_key: sk-bench-x}}
  - model_name: claude
    litellm_params: {{model: anthropic/claude-sonnet-4-5, api_base: "http://127.0.0.1:{port}", api_key: sk-ant-x}}
general_settings:
  master_key: sk-routerd-bench
"""

CHAT_BODY = orjson.dumps({"model": "gpt", "messages": [{"role": "user", "content": "ping"}]})
MESSAGES_BODY = orjson.dumps(
    {"model": "claude", "max_tokens": 16, "messages": [{"role": "user", "content": "ping"}]}
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=2, help="length of each run (whole seconds)")
    parser.add_argument("--rounds", type=int, default=5, help="chat/messages pairs")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    args = parser.parse_args()
    upstream_port, routerd_port = free_port(), free_port()
    config = Path(tempfile.mkdtemp(prefix="routerd-bench-")) / "bench.yaml"
    config.write_text(CONFIG.format(port=upstream_port))
    env = {
        **os.environ,
        "ROUTERD_LOG_LEVEL": "warning",
        "ROUTERD_LOG_REQUESTS": "false",
        "ROUTERD_WATCH": "false",
    }
    upstream = subprocess.Popen([sys.executable, "-c", UPSTREAM, str(upstream_port)])
    routerd = subprocess.Popen(
        [sys.executable, "-m", "routerd.cli", "serve", "--config", str(config), "--port", str(routerd_port)],
        env=env,
        cwd=REPO,
    )
    try:
        asyncio.run(measure(args, routerd_port, routerd.pid))
    finally:
        for process in (routerd, upstream):
            process.terminate()
            process.wait(timeout=40)


async def measure(args: argparse.Namespace, port: int, pid: int) -> None:
    await wait_ready(f"http://127.0.0.1:{port}/health/readiness")
    base = f"http://127.0.0.1:{port}"
    auth = {"authorization": "Bearer sk-routerd-bench", "content-type": "application/json"}
    use_wrk = shutil.which("wrk") is not None

    async def run(path: str, body: bytes) -> dict[str, float]:
        if use_wrk:
            return await asyncio.to_thread(wrk_run, base + path, body, args.concurrency, args.seconds)
        return await drive(base + path, auth, body, args.concurrency, args.seconds, False)

    results: dict[str, list[dict[str, float]]] = {"chat": [], "messages": []}
    cpu = {"chat": 0.0, "messages": 0.0}
    ticks, stolen = cpu_ticks()
    for _ in range(args.rounds):
        for name, path, body in (
            ("chat", "/v1/chat/completions", CHAT_BODY),
            ("messages", "/v1/messages", MESSAGES_BODY),
        ):
            before = cpu_seconds(pid)
            results[name].append(await run(path, body))
            cpu[name] += cpu_seconds(pid) - before
    ticks_now, stolen_now = cpu_ticks()
    steal = 100 * (stolen_now - stolen) / max(ticks_now - ticks, 1)
    print(
        f"front doors bench ({'wrk' if use_wrk else 'python driver'}), {args.concurrency} in flight, "
        f"{args.rounds} rounds of {args.seconds}s each; medians; steal {steal:.0f}%"
    )
    rps = {}
    for name, runs in results.items():
        rps[name] = statistics.median(r["rps"] for r in runs)
        requests = sum(r["requests"] + r.get("warmup", 0) for r in runs)
        failed = sum(r.get("errors", r.get("non_2xx", 0.0)) for r in runs)
        per_round = " ".join(f"{r['rps']:.0f}" for r in runs)
        print(
            f"{name:>9}: {rps[name]:6.0f} req/s  p50 {statistics.median(r['p50_ms'] for r in runs):6.2f} ms  "
            f"p99 {statistics.median(r['p99_ms'] for r in runs):6.2f} ms  failed {failed:.0f}  "
            f"routerd CPU {cpu[name] / requests * 1e6:4.0f} us/req  (rounds: {per_round})"
        )
    print(f"ratio /v1/messages pass-through / chat completions: {100 * rps['messages'] / rps['chat']:.0f}%")


if __name__ == "__main__":
    main()
