"""``routerd serve --workers 2``: whichever worker answers the scrape, /metrics counts every worker's requests.

Needs routerd/server/run.py to call ``routerd.metrics.prepare_multiprocess_dir()`` before starting
more than one worker, and create_app to wire the metrics.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from routerd.testing.server import free_port

from .test_server import CONFIG, KEY

SERVE = "import sys; from routerd.server.run import serve; from routerd.settings import Settings; serve(Settings())"
REQUESTS = 24


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[str]:
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k != "PROMETHEUS_MULTIPROC_DIR" and not k.startswith("ROUTERD_")
    }
    env.update(ROUTERD_CONFIG=str(config), ROUTERD_PORT=str(port), ROUTERD_WORKERS="2", ROUTERD_WATCH="false")
    log_path = tmp_path / "routerd.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", SERVE], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise AssertionError(f"routerd exited ({process.returncode}):\n{log_path.read_text()}")
            try:
                if httpx.get(f"{base_url}/health/readiness", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"routerd did not start:\n{log_path.read_text()}")
            time.sleep(0.2)
        yield base_url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


def test_every_scrape_sums_all_workers(two_workers: str) -> None:
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
    for _ in range(REQUESTS):  # a new connection each time, so the kernel spreads them over the workers
        with httpx.Client(timeout=30) as client:
            assert (
                client.post(f"{two_workers}/v1/chat/completions", json=body, headers=KEY).status_code == 200
            )
    labels = {
        "model_group": "chat",
        "deployment": "good",
        "provider": "mock",
        "endpoint": "chat",
        "status": "200",
    }
    for _ in range(6):  # each scrape may land on either worker
        with httpx.Client(timeout=30) as client:
            text = client.get(f"{two_workers}/metrics", headers=KEY).text
        families = {family.name: family for family in text_string_to_metric_families(text)}
        (count,) = [s.value for s in families["routerd_requests"].samples if s.labels == labels]
        assert count == REQUESTS
        # multiprocess mode is on: per-process collectors are left out of the merged view
        assert "process_resident_memory_bytes" not in families
        assert "routerd_build_info" in families
