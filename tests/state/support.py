"""Helpers of the shared-state tests: routers on one Redis, and bounded waits."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from routerd.config import load_config
from routerd.config.table import RoutingTable
from routerd.errors import OpenAIError
from routerd.routing.executor import CallRouter as Router
from routerd.state.redis import RedisHealthStore


def table_of(directory: Path, text: str) -> RoutingTable:
    path = directory / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, env={})


def mock_config(rpm: int | None = None, tpm: int | None = None, dep_id: str = "m1") -> str:
    limits = "".join(f", {k}: {v}" for k, v in (("rpm", rpm), ("tpm", tpm)) if v is not None)
    return (
        "model_list:\n"
        f"  - model_name: chat\n    litellm_params: {{model: mock/m{limits}}}\n"
        f"    model_info: {{id: {dep_id}}}\n"
    )


def redis_store(url: str, **settings: Any) -> RedisHealthStore:
    """A store built as ``routerd serve`` builds it: from ``ROUTERD_*`` settings (``state_*`` overridable)."""
    from routerd.config.table import ServerSettings
    from routerd.settings import Settings
    from routerd.state.connect import make_store

    merged: dict[str, Any] = {
        "state_timeout_ms": 2000,  # tests of sharing, not of the timeout: room for a loaded CI machine
        "state_sync_interval": 0.05,
        "state_reconnect_interval": 0.1,
    }
    merged.update(settings)
    store = make_store(Settings(redis_url=url, **merged), ServerSettings())
    assert isinstance(store, RedisHealthStore)
    return store


async def call(router: Router, **body: Any) -> OpenAIError | None:
    """One chat call; the error it raised, or None when it succeeded."""
    try:
        await router.call("chat", {"model": "chat", "messages": [{"role": "user", "content": "hi"}], **body})
    except OpenAIError as exc:
        return exc
    return None


async def eventually(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Wait (bounded) for an effect another task or process produces."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


# --- `routerd serve` processes -----------------------------------------------------------------------

SERVE = "from routerd.server.run import serve; from routerd.settings import Settings; serve(Settings())"
MASTER_KEY = "sk-state-test-master"
AUTH = {"authorization": f"Bearer {MASTER_KEY}"}


class ServeProcess:
    """``routerd serve`` in a child process on a free loopback port; stopped with SIGTERM."""

    def __init__(self, config: Path, log: Path, **env: str) -> None:
        import os

        from routerd.testing.server import free_port

        self.port = free_port()
        self.log = log
        self.env = {
            k: v
            for k, v in os.environ.items()
            if k != "PROMETHEUS_MULTIPROC_DIR" and not k.startswith("ROUTERD_")
        }
        self.env.update(
            ROUTERD_CONFIG=str(config),
            ROUTERD_PORT=str(self.port),
            ROUTERD_WATCH="false",
            ROUTERD_LOG_REQUESTS="false",
            **env,
        )
        self.process: Any = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def spawn(self) -> None:
        import subprocess
        import sys

        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-c", SERVE], env=self.env, stdout=out, stderr=subprocess.STDOUT
            )

    def wait_ready(self, timeout: float = 120.0) -> None:
        import time

        import httpx

        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"routerd exited ({self.process.returncode}):\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.base_url}/health/readiness", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"routerd did not start:\n{self.log.read_text()}")
            time.sleep(0.1)

    def health(self) -> dict[str, Any]:
        import httpx

        body: dict[str, Any] = httpx.get(f"{self.base_url}/health", headers=AUTH, timeout=10).json()
        return body

    def stop(self) -> None:
        import signal
        import subprocess

        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)


def start_all(processes: list[ServeProcess]) -> None:
    """Spawn every process first, then wait for each: they start in parallel."""
    try:
        for process in processes:
            process.spawn()
        for process in processes:
            process.wait_ready()
    except BaseException:
        for process in processes:
            process.stop()
        raise


def chat(base_url: str, model: str, client: Any = None) -> Any:
    """POST one chat completion; the httpx response."""
    import httpx

    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    if client is not None:
        return client.post(f"{base_url}/v1/chat/completions", json=body, headers=AUTH)
    return httpx.post(f"{base_url}/v1/chat/completions", json=body, headers=AUTH, timeout=30)
