"""Streamed chat through routerd next to a bare byte relay, in alternating rounds (issue 20).

Starts nginx as the upstream (the shared harness's streamed answer: 40 content chunks, a finish chunk,
a usage chunk and ``[DONE]``; plus the same answer as Anthropic and Gemini event streams), a bare
Starlette + aiohttp relay that hands the upstream's bytes on unchanged (the Python floor), and
``routerd serve`` (uvloop + httptools, one process). wrk drives each in turn, round after round:

    .venv/bin/python bench/bench_stream.py [--seconds 3] [--rounds 3] [--conc 1 32] [--translated]
    .venv/bin/python bench/bench_stream.py --soak-requests 1000000 [--soak-every 250000]

Per load it prints, as medians over the rounds: requests/s and p50 of the relay and of routerd, the
median of the per-round ratios (routerd / relay), routerd's CPU per request and per upstream chunk
(42 per answer), routerd's marginal CPU per chunk (CPU per request on a 402-chunk answer less that on
the 42-chunk one, over the 360 extra chunks), the TTFT routerd adds at 1 in flight (from a separate probe: median time to the first
``data:`` line, routerd minus relay), the machine's steal during the rounds, and routerd's RSS at the
end. ``--translated`` also drives the Anthropic- and Gemini-backed groups through routerd (OpenAI
chunks out). routerd serves configs/example.yaml with the bench groups added, so its RSS is the example
config's. ``--soak-requests N`` instead streams N answers through routerd at 32 in flight and prints
routerd's RSS at the start and every ``--soak-every`` requests (the issue's soak: 1,000,000, RSS at 0,
250k, 500k, 1M). Needs nginx and wrk (``apt-get install nginx-light wrk``). A benchmark: asserts nothing.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parent.parent
# the shared harness's streamed answer (/work/shared/bench), so the numbers compare with its runs
SHARED = Path(os.environ.get("BENCH_SHARED", "/work/shared/bench"))
CHUNKS_PER_ANSWER = 42  # upstream events routerd parses per answer: 40 content + finish + usage
WORDS = [f"word{i} " for i in range(40)]
# The same answer with 10x the content chunks, all in one upstream read as with nginx's 42: the CPU
# routerd spends per request on it, less that on the 42-chunk answer, over the 360 extra chunks is the
# marginal CPU per chunk (what a chunk costs beyond the request's fixed work).
LONG_WORDS = [f"word{i} " for i in range(400)]

NGINX = """
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  client_body_temp_path {prefix}/tmp;
  server {{
    listen 127.0.0.1:{port} reuseport backlog=4096;
    root {prefix}/sse;
    location = /v1/chat/completions {{ default_type text/event-stream; try_files /openai.sse =404;
      error_page 405 =200 /openai.sse; }}
    location = /long/v1/chat/completions {{ default_type text/event-stream; try_files /long.sse =404;
      error_page 405 =200 /long.sse; }}
    location = /v1/messages {{ default_type text/event-stream; try_files /anthropic.sse =404;
      error_page 405 =200 /anthropic.sse; }}
    location /models/ {{ default_type text/event-stream; try_files /gemini.sse =404;
      error_page 405 =200 /gemini.sse; }}
    location ~ ^/(openai|long|anthropic|gemini)\\.sse$ {{ internal; default_type text/event-stream; }}
  }}
}}
"""

RELAY = r"""
import sys, orjson, aiohttp, contextlib
from starlette.applications import Starlette
from starlette.responses import StreamingResponse
from starlette.routing import Route
UP = f"http://127.0.0.1:{sys.argv[1]}/v1/chat/completions"
state = {}
async def chat(request):
    body = orjson.loads(await request.body())
    body["model"] = "bench-model"
    r = await state["c"].post(UP, data=orjson.dumps(body), headers={"Content-Type": "application/json"})
    async def relay():
        async for chunk in r.content.iter_any():
            yield chunk
        r.release()
    return StreamingResponse(relay(), media_type="text/event-stream")
@contextlib.asynccontextmanager
async def lifespan(app):
    state["c"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1000)); yield
app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])], lifespan=lifespan)
import uvicorn
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), loop="uvloop", http="httptools",
            log_level="warning", access_log=False)
"""

CONFIG = """
model_list:
  - model_name: bench-stream
    litellm_params: {{model: openai/bench-model, api_base: "http://127.0.0.1:{port}/v1", api_key: sk-up}}
  - model_name: bench-stream-long
    litellm_params: {{model: openai/bench-model, api_base: "http://127.0.0.1:{port}/long/v1", api_key: sk-up}}
  - model_name: bench-anthropic
    litellm_params: {{model: anthropic/claude-bench, api_base: "http://127.0.0.1:{port}", api_key: sk-up}}
  - model_name: bench-gemini
    litellm_params: {{model: gemini/gemini-bench, api_base: "http://127.0.0.1:{port}", api_key: sk-up}}
general_settings:
  master_key: sk-bench
"""

WRK = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-bench"
wrk.body = '{"model":"MODEL","stream":true,"messages":[{"role":"user","content":"Say hello."}],"max_tokens":64}'
done = function(summary, latency, requests)
  io.write(string.format("RESULT %f %f %d %d\\n", summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, summary.requests,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
    + summary.errors.status))
end
"""


def sse(events: list[tuple[str | None, dict[str, object]]]) -> bytes:
    out = b""
    for name, data in events:
        out += (
            (b"event: " + name.encode() + b"\n" if name else b"") + b"data: " + orjson.dumps(data) + b"\n\n"
        )
    return out


def openai_body(words: list[str] = WORDS) -> bytes:
    base = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "bench-model",
    }
    events: list[tuple[str | None, dict[str, object]]] = [
        (None, {**base, "choices": [{"index": 0, "delta": {"content": w}, "finish_reason": None}]})
        for w in words
    ]
    events.append((None, {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
    events.append(
        (
            None,
            {
                **base,
                "choices": [],
                "usage": {"prompt_tokens": 12, "completion_tokens": 40, "total_tokens": 52},
            },
        )
    )
    return sse(events) + b"data: [DONE]\n\n"


def anthropic_body() -> bytes:
    message = {
        "id": "msg_bench",
        "type": "message",
        "role": "assistant",
        "model": "claude-bench",
        "content": [],
        "stop_reason": None,
        "usage": {"input_tokens": 12, "output_tokens": 1},
    }
    events: list[tuple[str | None, dict[str, object]]] = [
        ("message_start", {"type": "message_start", "message": message}),
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
    ]
    events += [
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}},
        )
        for w in WORDS
    ]
    events += [
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 40}},
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return sse(events)


def gemini_body() -> bytes:
    events: list[tuple[str | None, dict[str, object]]] = [
        (None, {"candidates": [{"content": {"role": "model", "parts": [{"text": w}]}, "index": 0}]})
        for w in WORDS
    ]
    events.append(
        (
            None,
            {
                "candidates": [
                    {
                        "content": {"role": "model", "parts": [{"text": ""}]},
                        "finishReason": "STOP",
                        "index": 0,
                    }
                ],
                "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 40, "totalTokenCount": 52},
            },
        )
    )
    return sse(events)


def config_text(port: int) -> str:
    """configs/example.yaml (offline mock groups) with the bench groups added to its model_list."""
    from ruamel.yaml import YAML

    yaml = YAML()
    example = yaml.load((REPO / "configs" / "example.yaml").read_text())
    bench = yaml.load(CONFIG.format(port=port))
    example["model_list"].extend(bench["model_list"])
    example.setdefault("general_settings", {})["master_key"] = "sk-bench"
    out = io.StringIO()
    yaml.dump(example, out)
    return out.getvalue()


def soak(script: Path, port: int, pid: int, total: int, every: int) -> None:
    """Stream ``total`` answers at 32 in flight; RSS at the start and after every ``every`` requests."""
    print(
        f"soak: {total} streamed answers at 32 in flight; routerd RSS at 0: {rss_mb(pid):.1f} MB", flush=True
    )
    done, mark, start = 0, every, time.monotonic()
    while done < total:
        rps, _, requests, errors = wrk(script, port, 32, 10)
        done += requests
        while done >= mark and mark <= total:
            print(
                f"  {mark:>9} requests ({time.monotonic() - start:5.0f}s, {rps:.0f} rps, {errors} errors):"
                f" RSS {rss_mb(pid):.1f} MB",
                flush=True,
            )
            mark += every
    print(f"  {done:>9} requests in all: RSS {rss_mb(pid):.1f} MB")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, seconds: float = 10) -> None:
    for _ in range(int(seconds / 0.05)):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def cpu_split(pid: int) -> tuple[float, float]:
    """The process's user and system CPU seconds so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def cpu_seconds(pid: int) -> float:
    return sum(cpu_split(pid))


def steal_ticks() -> tuple[int, int]:
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return sum(values), values[7]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wrk(script: Path, port: int, conc: int, seconds: int) -> tuple[float, float, int, int]:
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{conc}",
            f"-d{seconds}s",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}/v1/chat/completions",
        ],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    line = next((x for x in out.splitlines() if x.startswith("RESULT")), "RESULT 0 0 0 1")
    rps, p50, requests, errors = line.split()[1:]
    return float(rps), float(p50), int(requests), int(errors)


def ttft_ms(port: int, model: str, samples: int = 200) -> float:
    """Median time from sending the request to reading the first ``data:`` line, one at a time."""
    body = orjson.dumps(
        {"model": model, "stream": True, "messages": [{"role": "user", "content": "Say hello."}]}
    )
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sk-bench\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    times = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        for _ in range(samples):
            start = time.perf_counter()
            s.sendall(head)
            data = b""
            while b"data:" not in data:
                data += s.recv(65536)
            times.append(time.perf_counter() - start)
            while not data.endswith(b"0\r\n\r\n"):  # drain the rest of the chunked answer
                data += s.recv(65536)
    return statistics.median(times) * 1000


def stream_requests(port: int, count: int, model: str = "bench-stream") -> None:
    """``count`` streamed chat completions one after another on one keep-alive connection."""
    body = orjson.dumps(
        {
            "model": model,
            "stream": True,
            "messages": [{"role": "user", "content": "Say hello."}],
            "max_tokens": 64,
        }
    )
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sk-bench\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        for _ in range(count):
            s.sendall(head)
            data = b""
            while not data.endswith(b"0\r\n\r\n"):  # the end of the chunked answer
                more = s.recv(65536)
                if not more:
                    raise SystemExit(f"the server on {port} closed the connection: {data[:300]!r}")
                data += more
            if b"[DONE]" not in data:
                raise SystemExit(f"an answer without [DONE] from {port}: {data[:300]!r}")


def instructions_per_request(port: int, pid: int, work: Path, count: int) -> float:
    """Instructions a process under callgrind executes per streamed request: a warm-up, then
    collection on for ``count`` sequential requests, then a dump whose total is divided by ``count``."""
    stream_requests(port, 200)
    subprocess.run(["callgrind_control", "-i", "on", str(pid)], check=True, capture_output=True)
    stream_requests(port, count)
    subprocess.run(["callgrind_control", "-d", str(pid)], check=True, capture_output=True)
    dumps = sorted(work.glob(f"callgrind.{pid}.*"), key=lambda f: f.stat().st_mtime)
    for line in dumps[-1].read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1]) / count
    raise SystemExit(f"no totals in {dumps[-1]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--conc", type=int, nargs="+", default=[1, 32])
    parser.add_argument(
        "--translated", action="store_true", help="also drive the Anthropic and Gemini groups"
    )
    parser.add_argument("--soak-requests", type=int, default=0, help="soak instead: stream this many answers")
    parser.add_argument("--soak-every", type=int, default=250_000, help="print RSS every this many requests")
    parser.add_argument(
        "--instructions",
        type=int,
        default=0,
        metavar="N",
        help="instead: count the instructions relay and routerd execute per streamed request"
        " (valgrind callgrind, N sequential requests after a warm-up)",
    )
    args = parser.parse_args()
    for tool in ("nginx", "wrk"):
        if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
            raise SystemExit(f"{tool} is missing: apt-get install nginx-light wrk")
    work = Path(tempfile.mkdtemp(prefix="routerd-stream-bench-"))
    work.chmod(0o755)  # nginx's workers run as another user and read the answers from here
    (work / "sse").mkdir()
    (work / "tmp").mkdir()
    shared = SHARED / "stream.sse"
    (work / "sse" / "openai.sse").write_bytes(shared.read_bytes() if shared.exists() else openai_body())
    (work / "sse" / "long.sse").write_bytes(openai_body(LONG_WORDS))
    (work / "sse" / "anthropic.sse").write_bytes(anthropic_body())
    (work / "sse" / "gemini.sse").write_bytes(gemini_body())
    up, relay_port, routerd_port = free_port(), free_port(), free_port()
    (work / "nginx.conf").write_text(NGINX.format(prefix=work, port=up))
    (work / "config.yaml").write_text(config_text(up))
    scripts = {}
    for model in ("bench-stream", "bench-stream-long", "bench-anthropic", "bench-gemini"):
        scripts[model] = work / f"{model}.lua"
        scripts[model].write_text(WRK.replace("MODEL", model))
    nginx_bin = shutil.which("nginx") or "/usr/sbin/nginx"
    procs = [subprocess.Popen([nginx_bin, "-p", str(work), "-c", str(work / "nginx.conf")])]
    env = {**os.environ, "ROUTERD_WATCH": "false", "PYTHONPATH": str(REPO)}
    if args.instructions:  # the same hashes every run: set and dict layouts, and so the counts, repeat
        env["PYTHONHASHSEED"] = "0"
    # under --instructions both contestants run inside callgrind, counting from the first request on
    under = (
        [
            "valgrind",
            "--tool=callgrind",
            "-q",
            "--instr-atstart=no",
            f"--callgrind-out-file={work}/callgrind.%p",
        ]
        if args.instructions
        else []
    )
    procs.append(subprocess.Popen([*under, sys.executable, "-c", RELAY, str(up), str(relay_port)], env=env))
    log_file = (work / "routerd.log").open("wb")
    routerd = subprocess.Popen(
        [
            *under,
            sys.executable,
            "-m",
            "routerd.cli",
            "serve",
            "--config",
            str(work / "config.yaml"),
            "--port",
            str(routerd_port),
        ],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=log_file,
    )
    procs.append(routerd)
    try:
        for port in (up, relay_port, routerd_port):
            wait_port(port, 60 if args.instructions else 10)
        if args.instructions:
            for name, port, proc in (("relay", relay_port, procs[1]), ("routerd", routerd_port, routerd)):
                count = instructions_per_request(port, proc.pid, work, args.instructions)
                print(
                    f"{name}: {count / 1000:,.0f}k instructions per streamed request ({args.instructions} requests)"
                )
        elif args.soak_requests:
            soak(scripts["bench-stream"], routerd_port, routerd.pid, args.soak_requests, args.soak_every)
        else:
            run(args, scripts, relay_port, procs[1].pid, routerd_port, routerd.pid)
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(timeout=30)
        log_file.close()
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(work, ignore_errors=True)


def run(
    args: argparse.Namespace,
    scripts: dict[str, Path],
    relay_port: int,
    relay_pid: int,
    routerd_port: int,
    routerd_pid: int,
) -> None:
    stream = scripts["bench-stream"]
    for port in (relay_port, routerd_port):  # warm-up
        wrk(stream, port, 8, 1)
    print(
        f"streamed chat, 42 upstream chunks per answer; {args.rounds} rounds of {args.seconds}s each, relay then routerd"
    )
    for conc in args.conc:
        relay, routed, ratios, cpu_req, relay_cpu = [], [], [], [], []
        sys_share: dict[str, list[float]] = {"relay": [], "routerd": []}  # system CPU per request
        total, stolen = steal_ticks()
        for _ in range(args.rounds):
            before = cpu_split(relay_pid)
            r = wrk(stream, relay_port, conc, args.seconds)
            after = cpu_split(relay_pid)
            relay_cpu.append((sum(after) - sum(before)) / max(r[2], 1) * 1e6)
            sys_share["relay"].append((after[1] - before[1]) / max(r[2], 1) * 1e6)
            before = cpu_split(routerd_pid)
            d = wrk(stream, routerd_port, conc, args.seconds)
            after = cpu_split(routerd_pid)
            cpu_req.append((sum(after) - sum(before)) / max(d[2], 1) * 1e6)
            sys_share["routerd"].append((after[1] - before[1]) / max(d[2], 1) * 1e6)
            relay.append(r)
            routed.append(d)
            ratios.append(d[0] / r[0] if r[0] else float("nan"))
        total2, stolen2 = steal_ticks()
        steal = 100 * (stolen2 - stolen) / max(total2 - total, 1)
        med = statistics.median
        cpu = med(cpu_req)
        print(
            f"{conc:>2} in flight: relay {med(x[0] for x in relay):6.0f} rps p50 {med(x[1] for x in relay):5.2f} ms"
            f" ({med(relay_cpu):4.0f} us CPU/req, {med(sys_share['relay']):3.0f} system)"
            f" | routerd {med(x[0] for x in routed):6.0f} rps"
            f" p50 {med(x[1] for x in routed):5.2f} ms | ratio {med(ratios):4.2f}"
            f" (rounds {' '.join(f'{x:.2f}' for x in ratios)}) | routerd CPU {cpu:4.0f} us/req"
            f" ({med(sys_share['routerd']):3.0f} system),"
            f" {cpu / CHUNKS_PER_ANSWER:4.1f} us/chunk | errors {sum(x[3] for x in routed)} | steal {steal:.0f}%"
        )
    marginal_per_chunk(args, scripts, routerd_port, routerd_pid)
    added = [
        ttft_ms(routerd_port, "bench-stream") - ttft_ms(relay_port, "bench-stream")
        for _ in range(args.rounds)
    ]
    print(
        f"added TTFT at 1 in flight: {statistics.median(added):.3f} ms (rounds {' '.join(f'{a:.3f}' for a in added)})"
    )
    if args.translated:
        for model in ("bench-anthropic", "bench-gemini"):
            wrk(scripts[model], routerd_port, 8, 1)
            for conc in args.conc:
                before = cpu_seconds(routerd_pid)
                d = wrk(scripts[model], routerd_port, conc, args.seconds)
                cpu = (cpu_seconds(routerd_pid) - before) / max(d[2], 1) * 1e6
                print(
                    f"{model} {conc:>2} in flight: routerd {d[0]:6.0f} rps p50 {d[1]:5.2f} ms | CPU {cpu:4.0f} us/req | errors {d[3]}"
                )
    print(f"routerd RSS after the bench: {rss_mb(routerd_pid):.1f} MB")


def marginal_per_chunk(
    args: argparse.Namespace, scripts: dict[str, Path], routerd_port: int, routerd_pid: int
) -> None:
    """routerd's CPU per request on the 402- and the 42-chunk answers, alternately, at 32 in flight;
    their difference over the 360 extra chunks is the marginal CPU per chunk."""
    short, long = [], []
    wrk(scripts["bench-stream-long"], routerd_port, 8, 1)
    for _ in range(args.rounds):
        for script, out in ((scripts["bench-stream"], short), (scripts["bench-stream-long"], long)):
            before = cpu_seconds(routerd_pid)
            result = wrk(script, routerd_port, 32, args.seconds)
            out.append((cpu_seconds(routerd_pid) - before) / max(result[2], 1) * 1e6)
    extra = len(LONG_WORDS) - len(WORDS)
    per_chunk = [(b - a) / extra for a, b in zip(short, long, strict=True)]
    print(
        f"marginal routerd CPU per chunk (402- vs 42-chunk answers, 32 in flight): "
        f"{statistics.median(per_chunk):.2f} us (rounds {' '.join(f'{x:.2f}' for x in per_chunk)};"
        f" CPU/req {statistics.median(short):.0f} vs {statistics.median(long):.0f} us)"
    )


if __name__ == "__main__":
    main()
