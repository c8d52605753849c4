"""Throughput and added latency of routerd in front of a fast fake OpenAI upstream.

Starts three processes on loopback: a minimal aiohttp upstream answering a fixed chat completion,
routerd (one worker, uvloop + httptools) routing an `openai/` deployment to it, and this load driver.
Prints requests/s, p50/p99 latency at 1 and 32 in flight through routerd and direct to the upstream,
routerd's added latency (p50 through routerd minus p50 direct), routerd's CPU time per request, and
its peak RSS. Direct and routed runs alternate for several rounds and the medians are reported: on a
shared machine a burst of noise then spoils one round, not the result. Each line ends with the CPU
time the hypervisor gave to other guests during its rounds (steal): numbers taken under heavy steal
are not comparable with numbers taken without.

    .venv/bin/python bench/bench_proxy.py [--seconds 2] [--rounds 5] [--stream]

A benchmark, not a test: it asserts nothing and prints numbers for the closing notes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import orjson

REPO = Path(__file__).resolve().parent.parent

UPSTREAM = r"""
import sys, orjson
from aiohttp import web
BODY = orjson.dumps({"id": "chatcmpl-bench", "object": "chat.completion", "created": 1700000000,
    "model": "gpt-4o-mini", "choices": [{"index": 0, "message": {"role": "assistant", "content": "pong"},
    "finish_reason": "stop", "logprobs": None}],
    "usage": {"prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10}})
CHUNKS = [orjson.dumps({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
    "choices": [{"index": 0, "delta": {"content": w}, "finish_reason": None}]}) for w in ["po", "ng"]]
async def chat(request):
    body = await request.json()
    if body.get("stream"):
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        for c in CHUNKS:
            await resp.write(b"data: " + c + b"\n\n")
        await resp.write(b"data: [DONE]\n\n")
        return resp
    return web.Response(body=BODY, content_type="application/json")
app = web.Application()
app.router.add_post("/v1/chat/completions", chat)
import asyncio, uvloop
uvloop.install()
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""

CONFIG = """
model_list:
  - model_name: bench
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: http://127.0.0.1:{port}/v1
      api_key: sk-bench-not-a-real-key
general_settings:
  master_key: sk-routerd-bench
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_ready(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(url) as response:
                    if response.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


async def drive(
    url: str, headers: dict[str, str], body: bytes, concurrency: int, seconds: float, stream: bool
):
    latencies: list[float] = []
    errors = 0
    stop_at = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal errors
            while time.monotonic() < stop_at:
                started = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        errors += 1
                latencies.append(time.perf_counter() - started)

        # warm-up
        for _ in range(50):
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
        began = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.monotonic() - began
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "requests": len(latencies),
        "warmup": 50,  # requests sent before timing, which routerd's CPU time includes
        "errors": errors,
    }


WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = [[{body}]]
wrk.headers["content-type"] = "application/json"
wrk.headers["authorization"] = "Bearer sk-routerd-bench"
"""


def wrk_run(url: str, body: bytes, connections: int, seconds: float) -> dict[str, float]:
    """Throughput and latency measured by wrk, whose load costs far less CPU than a Python driver."""
    script = Path(tempfile.mkdtemp(prefix="routerd-wrk-")) / "post.lua"
    script.write_text(WRK_SCRIPT.format(body=body.decode()))
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds:.0f}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result = {
        "rps": float(out.split("Requests/sec:")[1].split()[0]),
        "requests": float(out.split(" requests in ")[0].split()[-1]),
    }
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in ("50%", "99%"):
            value = parts[1]
            unit = 1e-3 if value.endswith("us") else 1.0 if value.endswith("ms") else 1e3
            result[f"p{parts[0][:-1]}_ms"] = float(value.rstrip("usm")) * unit
    result["non_2xx"] = (
        float(out.split("Non-2xx or 3xx responses:")[1].split()[0]) if "Non-2xx" in out else 0.0
    )
    return result


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_ticks() -> tuple[int, int]:
    """(all ticks, stolen ticks) of the machine so far: steal is time the hypervisor gave elsewhere."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    return sum(fields), fields[7]


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=2, help="length of each run (whole seconds, for wrk)")
    parser.add_argument("--rounds", type=int, default=5, help="direct/routed pairs per load level")
    parser.add_argument("--stream", action="store_true", help="measure streamed chat instead of plain")
    args = parser.parse_args()

    upstream_port, routerd_port = free_port(), free_port()
    workdir = Path(tempfile.mkdtemp(prefix="routerd-bench-"))
    config = workdir / "bench.yaml"
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
        asyncio.run(measure(args, upstream_port, routerd_port, routerd.pid))
        print(f"routerd peak RSS: {peak_rss_mb(routerd.pid):.1f} MB")
    finally:
        # routerd first, and only then its upstream: requests still draining must not fail and wait out
        # a cooldown because the upstream vanished under them
        for process in (routerd, upstream):
            process.terminate()
            process.wait(timeout=40)


async def measure(args: argparse.Namespace, upstream_port: int, routerd_port: int, routerd_pid: int) -> None:
    await wait_ready(f"http://127.0.0.1:{routerd_port}/health/readiness")
    body = orjson.dumps(
        {"model": "bench", "messages": [{"role": "user", "content": "ping"}], "stream": args.stream}
    )
    direct_body = body.replace(b'"bench"', b'"gpt-4o-mini"')
    auth = {"authorization": "Bearer sk-routerd-bench", "content-type": "application/json"}
    direct_url = f"http://127.0.0.1:{upstream_port}/v1/chat/completions"
    routed_url = f"http://127.0.0.1:{routerd_port}/v1/chat/completions"
    print(
        f"routerd bench: {'streamed' if args.stream else 'plain'} chat; per load: {args.rounds} rounds of "
        f"{args.seconds:.0f}s direct then {args.seconds:.0f}s through routerd; medians over the rounds"
    )

    async def python_driver(url: str, concurrency: int) -> dict[str, float]:
        payload = direct_body if url == direct_url else body
        return await drive(url, auth, payload, concurrency, args.seconds, args.stream)

    async def wrk_driver(url: str, concurrency: int) -> dict[str, float]:
        payload = direct_body if url == direct_url else body
        return await asyncio.to_thread(wrk_run, url, payload, concurrency, args.seconds)

    drivers = [("python", python_driver)]
    if shutil.which("wrk"):
        drivers.append(("wrk", wrk_driver))
    for name, driver in drivers:
        for concurrency in (1, 32):
            await compare(name, driver, concurrency, args.rounds, direct_url, routed_url, routerd_pid)
    if not shutil.which("wrk"):
        print("(install wrk for a load generator that leaves the CPU to routerd: apt-get install wrk)")


Driver = Callable[[str, int], Awaitable[dict[str, float]]]


async def compare(
    name: str, driver: Driver, concurrency: int, rounds: int, direct_url: str, routed_url: str, pid: int
) -> None:
    """Alternate direct and routed runs: a noisy neighbour then skews a pair, not one side of the result.

    The added latency is the median over rounds of (routed p50 - direct p50) of the same round.
    """
    direct: list[dict[str, float]] = []
    routed: list[dict[str, float]] = []
    cpu = 0.0
    ticks, stolen = cpu_ticks()
    for _ in range(rounds):
        direct.append(await driver(direct_url, concurrency))
        before = cpu_seconds(pid)
        routed.append(await driver(routed_url, concurrency))
        # CPU per request is what bounds one worker's throughput, whatever else shares the machine
        cpu += cpu_seconds(pid) - before
    added = sorted(r["p50_ms"] - d["p50_ms"] for d, r in zip(direct, routed, strict=True))
    ticks_now, stolen_now = cpu_ticks()
    steal = 100 * (stolen_now - stolen) / max(ticks_now - ticks, 1)
    requests = sum(r["requests"] + r.get("warmup", 0) for r in routed)
    failed = sum(r.get("errors", r.get("non_2xx", 0.0)) for r in routed)

    def median(results: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in results)

    cpu_us = cpu / requests * 1e6
    print(
        f"{name:>6}, {concurrency:>2} in flight: routerd {median(routed, 'rps'):6.0f} req/s  "
        f"p50 {median(routed, 'p50_ms'):6.2f} ms  p99 {median(routed, 'p99_ms'):6.2f} ms  failed {failed:.0f}  | "
        f"direct {median(direct, 'rps'):6.0f} req/s  p50 {median(direct, 'p50_ms'):6.2f} ms  | "
        f"added p50 {statistics.median(added):5.2f} ms (rounds {' '.join(f'{a:.2f}' for a in added)})  | "
        f"routerd CPU {cpu_us:4.0f} us/req (= {1e6 / cpu_us:5.0f} req/s per core)  | steal {steal:.0f}%"
    )


if __name__ == "__main__":
    main()
