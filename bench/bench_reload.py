"""Time from writing the routing file to the new model answering, through a real `routerd serve`.

Starts routerd (one worker, file watcher on, default debounce) on a config served by the mock provider,
then N times: renames a new version of the file over the old one (what editors do) that adds a model,
and polls that model with chat requests until one answers 200. Prints p50 / p95 / max.

    .venv/bin/python bench/bench_reload.py [--rounds 40]

A benchmark, not a test: it prints numbers for the closing notes (target: p95 under 300 ms).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_proxy import REPO, free_port


def config_text(round_no: int) -> str:
    return f"""
model_list:
  - model_name: stable
    litellm_params: {{model: mock/stable, mock_response: "ok"}}
  - model_name: model-{round_no}
    litellm_params: {{model: mock/m{round_no}, mock_response: "round {round_no}"}}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="routerd-reload-bench-"))
    config = workdir / "routerd.yaml"
    config.write_text(config_text(0))
    port = free_port()
    env = {**os.environ, "ROUTERD_LOG_LEVEL": "warning", "ROUTERD_LOG_REQUESTS": "false"}
    daemon = subprocess.Popen(
        [sys.executable, "-m", "routerd.cli", "serve", "--config", str(config), "--port", str(port)],
        env=env,
        cwd=REPO,
    )
    samples: list[float] = []
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if client.get("/health/readiness").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("routerd did not start")
                time.sleep(0.05)
            for round_no in range(1, args.rounds + 1):
                body = {"model": f"model-{round_no}", "messages": [{"role": "user", "content": "hi"}]}
                tmp = workdir / f".routerd.yaml.{round_no}"
                tmp.write_text(config_text(round_no))
                written = time.perf_counter()
                os.replace(tmp, config)
                while client.post("/v1/chat/completions", json=body).status_code != 200:
                    if time.perf_counter() - written > 10:
                        raise RuntimeError(f"round {round_no}: the new model never answered")
                samples.append(time.perf_counter() - written)
                time.sleep(0.05)
    finally:
        daemon.terminate()
        daemon.wait(timeout=15)
    samples.sort()
    p95 = samples[max(0, int(len(samples) * 0.95) - 1)]
    print(
        f"reload: write -> new model answering over {len(samples)} rounds: "
        f"p50 {statistics.median(samples) * 1000:.0f} ms  p95 {p95 * 1000:.0f} ms  max {samples[-1] * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
