"""End-to-end helpers: the real daemon (uvicorn on a free loopback port) in front of fake upstreams
that speak the providers' wire formats, driven by the official ``openai`` client.

Fakes run in background threads with their own event loops, so synchronous tests (the ``openai``
client, httpx) can call the daemon, which calls the fakes, without sharing a loop with either.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import openai
from clients import tracked

from routerd.testing import run_in_thread
from routerd.testing.server import RouterdServer, free_port
from routerd.testing.wait import wait_for  # noqa: F401 - tests import it from here

MASTER_KEY = "sk-e2e-master-key-0001"
# Upstream credentials: they must never come back to a client or reach a log line.
OPENAI_KEY = "sk-e2e-upstream-openai-7f3a9c2d"
ANTHROPIC_KEY = "sk-ant-e2e-upstream-41b2d8e0"
GEMINI_KEY = "e2e-upstream-gemini-93c1aa07"
WRONG_OPENAI_KEY = "sk-e2e-wrong-upstream-key-5e5e5e"  # a deployment misconfigured with it
UPSTREAM_KEYS = (OPENAI_KEY, ANTHROPIC_KEY, GEMINI_KEY, WRONG_OPENAI_KEY)

REPO = Path(__file__).resolve().parents[2]


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def client_for(server: RouterdServer, api_key: str = MASTER_KEY, **kwargs: Any) -> openai.OpenAI:
    """The official client pointed at the daemon; no client-side retries, so every error surfaces."""
    client = openai.OpenAI(base_url=server.base_url + "/v1", api_key=api_key, max_retries=0, **kwargs)
    return tracked(client)  # closed when the test ends


def write_config(directory: Path, text: str, name: str = "config.yaml") -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


@contextmanager
def running_fake(fake: Any) -> Iterator[Any]:
    """Any loopback fake (OpenAI, Anthropic, Gemini) served from a background thread."""
    with run_in_thread(fake) as started:
        yield started


def reset(fake: Any) -> None:
    """Forget a shared fake's history and script between tests."""
    fake.requests.clear()
    fake.replies.clear()
    fake.disconnects = 0


class LogCapture(logging.Handler):
    """Every record any logger emits (message, structured fields, traceback), as raw text.

    Raw means before routerd's redacting filter: a key must not reach a log record at all.
    """

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        parts = [record.getMessage(), repr(getattr(record, "fields", ""))]
        if record.exc_info:
            parts.append(logging.Formatter().formatException(record.exc_info))
        self.lines.append(" ".join(parts))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    @property
    def gateway_text(self) -> str:
        """:attr:`text` without the test's own openai client, which logs what it sends at DEBUG
        (openai 1.80 includes uploaded files' contents)."""
        names = (record.name for record in self.records)
        return "\n".join(
            line for line, name in zip(self.lines, names, strict=True) if not name.startswith("openai")
        )


@contextmanager
def capture_logs() -> Iterator[LogCapture]:
    handler = LogCapture()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


# -- the daemon as a separate process (routerd serve) ------------------------------------------------


class DaemonProcess:
    """``python -m routerd.cli serve`` on a free port, its output in a file for failure messages."""

    def __init__(self, config: Path, log_path: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        clean_env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("ROUTERD_") and k != "PROMETHEUS_MULTIPROC_DIR"
        }
        clean_env.update(env or {})
        command = [sys.executable, "-m", "routerd.cli", "serve", "--config", str(config)]
        command += ["--port", str(self.port), "--no-watch", "--log-format", "text", *args]
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command, cwd=REPO, env=clean_env, stdout=log, stderr=subprocess.STDOUT
            )

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"routerd exited ({self.process.returncode}):\n{self.output}")
            try:
                if httpx.get(f"{self.base_url}/health/readiness", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"routerd did not become ready within {timeout} s:\n{self.output}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


# -- the gateway most tests share ----------------------------------------------------------------------

OPENAI_KEY_ENV = "E2E_UPSTREAM_OPENAI_KEY"
BODY_LIMIT_MB = 0.05  # about 52 KB: small enough to test 413 cheaply


def gateway_config(openai_base: str) -> str:
    """Groups on a fake OpenAI upstream and on the built-in mock provider.

    No retries and no cooldowns: every upstream error reaches the client as it happened, and one
    test's failures never take a deployment away from the next test.
    """
    upstream = f"api_base: {openai_base}\n      api_key: os.environ/{OPENAI_KEY_ENV}"
    return f"""
model_list:
  - model_name: gpt-4o-mini
    litellm_params:
      model: openai/gpt-4o-mini
      {upstream}
    model_info: {{id: openai-chat}}
  - model_name: instruct
    litellm_params:
      model: openai/gpt-3.5-turbo-instruct
      {upstream}
    model_info: {{id: openai-instruct}}
  - model_name: embed
    litellm_params:
      model: openai/text-embedding-3-small
      {upstream}
    model_info: {{id: openai-embed}}
  - model_name: slow-upstream
    litellm_params:
      model: openai/gpt-4o-mini
      {upstream}
      timeout: 0.5
    model_info: {{id: openai-slow}}
  - model_name: wrong-key
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: {openai_base}
      api_key: {WRONG_OPENAI_KEY}
    model_info: {{id: openai-wrong-key}}
  - model_name: mock-chat
    litellm_params:
      model: mock/gpt-4o-mini
      mock_response: "Hello from the mock deployment."
    model_info: {{id: mock-chat}}
  - model_name: mock-embed
    litellm_params:
      model: mock/text-embedding-3-small
      mock_embedding_dim: 16
    model_info: {{id: mock-embed}}
router_settings:
  num_retries: 0
  disable_cooldowns: true
general_settings:
  master_key: {MASTER_KEY}
  max_request_size_mb: {BODY_LIMIT_MB}
"""


def guardrail_counts(server: RouterdServer) -> dict[tuple[str, str, str], float]:
    """``routerd_guardrail_actions_total`` scraped from the daemon's /metrics, by (guardrail, action,
    mode)."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(server.base_url + "/metrics", headers={"authorization": f"Bearer {MASTER_KEY}"}).text
    counts: dict[tuple[str, str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "routerd_guardrail_actions_total":
                labels = sample.labels
                counts[(labels["guardrail"], labels["action"], labels["mode"])] = sample.value
    return counts
