"""What ``routerd serve`` imports before it is ready, checked through ``sys.modules`` (never by timing).

Start-up time is mostly imports (docs/performance.md). A fresh interpreter takes serve's path on
configs/example.yaml -- the settings, the routing file loaded and compiled, the app made, its lifespan
started, a readiness probe answered -- and lists what it imported. Code only some gateways use (the
front doors, Files/fine-tuning/Batch/media routes, provider adapters the file does not name, httpx,
the SDK and its ``openai`` dependency, guardrail and key validators, the guardrail engine, the cache's
code, shared spend, SQLite for an in-memory spend ledger, anyio's asyncio backend) must not be in that list; the first request that needs it imports it
(tests/server/test_lazy_routes.py). A file that declares guardrails, keys and a cache gets the gate's
parts for them loaded before it is ready.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "configs" / "example.yaml"

# serve's own path, as routerd.cli.run_serve and routerd.server.run.serve take it, up to a ready
# server; then one request to a lazily mounted route, to show the check can see an import happen
_SERVE_PATH = """
import asyncio, json, sys

from routerd.settings import Settings
import routerd.cli, routerd.server.run
from routerd.config import load_config
from routerd.server.app import create_app

settings = Settings(config=sys.argv[1], watch=False)
table = load_config(settings.config, limits=settings.config_limits())
app = create_app(table, settings=settings, config_path=settings.config)


async def call(scope, messages):
    inbox, outbox = asyncio.Queue(), []
    for message in messages:
        inbox.put_nowait(message)

    async def send(message):
        outbox.append(message)

    task = asyncio.ensure_future(app(scope, inbox.get, send))
    return task, outbox


def http(method, path):
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
            "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
            "query_string": b"", "headers": [], "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 4000)}


async def main():
    life = asyncio.Queue()
    life.put_nowait({"type": "lifespan.startup"})
    sent = []

    async def lifespan_send(message):
        sent.append(message)

    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    lifespan = asyncio.ensure_future(app(scope, life.get, lifespan_send))
    for _ in range(1000):
        if sent:
            break
        await asyncio.sleep(0.01)
    assert sent and sent[0]["type"] == "lifespan.startup.complete", sent
    task, out = await call(http("GET", "/health/readiness"), [{"type": "http.request", "body": b""}])
    await task
    status = out[0]["status"]
    ready = sorted(sys.modules)
    task, out = await call(http("POST", "/v1/batches"), [{"type": "http.request", "body": b"{}"}])
    await task
    after = sorted(sys.modules)
    life.put_nowait({"type": "lifespan.shutdown"})
    await lifespan
    print(json.dumps({"status": status, "ready": ready, "after_batches": after}))


asyncio.run(main())
"""

#: modules (and packages, with everything under them) serve must not import for the example file
NOT_AT_START = (
    "openai",
    "anthropic",
    "botocore",
    "google.auth",
    "httpx",
    "routerd.sdk",
    "routerd.testing",
    "routerd.finetune",
    "routerd.frontdoors.anthropic_messages",
    "routerd.frontdoors.responses",
    "routerd.frontdoors.azure_routes",
    "routerd.server.frontdoor_routes",
    "routerd.server.files",
    "routerd.server.fine_tuning",
    "routerd.server.batches",
    "routerd.server.media_routes",
    "routerd.config.schema",
    "routerd.providers.builtin",
    "routerd.providers.openai",
    "routerd.providers.azure",
    "routerd.providers.anthropic",
    "routerd.providers.gemini",
    "routerd.providers.vertex",
    "routerd.providers.bedrock",
    "routerd.providers.cohere",
    "routerd.providers.sagemaker",
    "routerd.providers.presets",
    # the gate's optional parts: loaded only for a file with guardrails, a cache, or shared spend
    "routerd.guardrails.engine",
    "routerd.guardrails.network",
    "routerd.guardrails.content_filter",
    "routerd.guardrails.filter_spec",
    "routerd.guardrails.patterns",
    "routerd.guardrails.texts",
    "routerd.cache.key",
    "routerd.cache.redis_cache",
    "routerd.cache.replay",
    "routerd.access.shared",
    # the in-memory spend ledger of a file without keys opens with its first spend
    "sqlite3",
    # anyio's asyncio backend: the lifespans use asyncio's task groups and events
    "anyio._backends",
    # PyYAML: a file as small as the example is parsed by ruamel alone (loader.FAST_PARSE_MIN_CHARS)
    "yaml",
    # ROUTERD_* variables are read by routerd.settings itself (pydantic-settings is not a dependency)
    "pydantic_settings",
    "dotenv",
    # prometheus_client: the lean metric families wait for the first scrape (metrics.lean.PendingRegistry)
    "prometheus_client",
)

#: a file with guardrails, client keys in a team with limits and budgets, and a cache
GATED = """
model_list:
  - model_name: m
    litellm_params: {model: mock/m, mock_response: "hi"}
litellm_settings:
  cache: true
guardrails:
  - guardrail_name: pii
    litellm_params:
      guardrail: litellm_content_filter
      mode: [pre_call]
      default_on: true
      patterns: [{pattern_type: prebuilt, pattern_name: email, action: MASK}]
teams:
  - {team_id: t, rpm_limit: 100}
keys:
  - {key_alias: k, key: sk-startup-imports-test, team_id: t, max_budget: 1, budget_duration: 1d}
"""

#: what the gated file needs loaded by the time the server is ready
GATED_AT_START = (
    "routerd.guardrails.engine",
    "routerd.guardrails.content_filter",
    "routerd.guardrails.filter_spec",
    "routerd.guardrails.patterns",
    "routerd.cache.key",
    "routerd.cache.replay",
    "routerd.access.limits",
    "routerd.access.ledger",
    "sqlite3",  # a file with keys keeps its spend in a database beside it, opened at start-up
)


def _under(module: str, name: str) -> bool:
    return module == name or module.startswith(name + ".")


def _serve(config: Path) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_SERVE_PATH), str(config)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=EXAMPLE.parents[1],  # the checkout under test ("-c" puts the working directory first)
    )
    assert result.returncode == 0, result.stderr[-3000:]
    data: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return data


@pytest.fixture(scope="module")
def imported() -> dict[str, object]:
    return _serve(EXAMPLE)


@pytest.fixture(scope="module")
def imported_gated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    config = tmp_path_factory.mktemp("gated") / "gated.yaml"
    config.write_text(GATED)
    return _serve(config)


def test_the_example_server_became_ready(imported: dict[str, object]) -> None:
    assert imported["status"] == 200


@pytest.mark.parametrize("name", NOT_AT_START)
def test_serve_does_not_import_it_for_the_example_config(imported: dict[str, object], name: str) -> None:
    ready = imported["ready"]
    assert isinstance(ready, list)
    assert [m for m in ready if _under(m, name)] == []


def test_serve_imports_the_adapter_its_file_names_and_no_other(imported: dict[str, object]) -> None:
    ready = imported["ready"]
    assert isinstance(ready, list)
    assert "routerd.providers.mock" in ready
    assert "routerd.server.app" in ready


def test_the_check_sees_a_lazy_route_module_arrive(imported: dict[str, object]) -> None:
    after = imported["after_batches"]
    assert isinstance(after, list)
    assert "routerd.server.batches" in after
    assert "routerd.finetune.serving" in after


def test_the_gated_server_became_ready(imported_gated: dict[str, object]) -> None:
    assert imported_gated["status"] == 200


@pytest.mark.parametrize("name", GATED_AT_START)
def test_serve_loads_the_gate_parts_a_file_declares(imported_gated: dict[str, object], name: str) -> None:
    ready = imported_gated["ready"]
    assert isinstance(ready, list)
    assert name in ready
