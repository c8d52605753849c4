"""Issue 21, the routing file as an attacker could write it: alias bombs, huge or endless files, FIFOs,
secrets inside broken flow mappings; plus the reload counters and the unchanged-reload shortcut.

Every test here reproduces a finding of the probe and asserts the bound that fixes it.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from routerd.cli import run_check
from routerd.config import LoadLimits, check_config, load, load_config
from routerd.config.files import DEFAULT_MAX_ALIAS_NODES, MAX_DEPTH, read_config_bytes
from routerd.config.table import RoutingTable
from routerd.config.watcher import fingerprint
from routerd.server.app import create_app
from routerd.server.reload import Reloader
from routerd.settings import Settings
from routerd.testing.server import RouterdServer

KEY = "sk-routerd-hostile-config"
SECRET = "sk-live-0123456789abcdef"

CONFIG = f"""\
model_list:
  - model_name: m
    litellm_params:
      model: mock/m
      mock_response: hi
general_settings:
  master_key: {KEY}
"""


def alias_bomb(levels: int = 9) -> str:
    """The probe's file: nine aliases nested nine deep, ~550 bytes, 9**9 nodes once expanded."""
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    lines.append(f"model_list: *a{levels - 1}")
    return "\n".join(lines) + "\n"


T = TypeVar("T")


def finishes(work: Callable[[], T], limit: float = 20.0) -> T:
    """Run ``work`` in a thread and return its result; fail (instead of hanging the suite) if it blocks."""
    box: list[T] = []
    thread = threading.Thread(target=lambda: box.append(work()), daemon=True)
    thread.start()
    thread.join(limit)
    assert not thread.is_alive(), "blocked: the call never returned"
    return box[0]


# -- M4: alias bombs ------------------------------------------------------------------------------


def test_an_alias_bomb_is_refused_at_its_location(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb())
    assert path.stat().st_size < 600
    result = check_config(path, env={})
    [error] = result.errors
    assert error.file == str(path)
    # the YAML path is where the alias that crosses the bound is used; line:col is its anchor
    # (ruamel records an alias's position as its anchor's)
    assert error.path == "a5[0]"
    assert path.read_text().splitlines()[error.line - 1][error.col - 1 :].startswith("&a4 [")
    assert f"more than {DEFAULT_MAX_ALIAS_NODES} nodes" in error.message
    assert "config_max_alias_nodes" in error.message
    assert str(error).startswith(f"{path}:{error.line}:{error.col}: ")


def anchored(deployments: int) -> str:
    """A valid file whose deployments share one anchored ``litellm_params`` (3 nodes per alias)."""
    return (
        "model_list:\n  - model_name: m0\n    litellm_params: &p\n      model: mock/m\n      mock_response: hi\n"
        + "".join(f"  - model_name: m{i}\n    litellm_params: *p\n" for i in range(1, deployments))
    )


def test_the_alias_budget_is_a_setting_that_acts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # 20 deployments: 19 aliases of a 3-node mapping expand to 57 nodes; fine by default, not under 50
    path = tmp_path / "small.yaml"
    path.write_text(anchored(20))
    assert check_config(path, env={}).ok
    refused = check_config(path, env={}, limits=LoadLimits(max_alias_nodes=50))
    assert "more than 50 nodes" in refused.errors[0].message

    monkeypatch.setenv("ROUTERD_CONFIG_MAX_ALIAS_NODES", "50")
    out = io.StringIO()
    assert run_check(argparse.Namespace(config=str(path), json=False), out) == 1
    assert "more than 50 nodes" in out.getvalue() and f"{path}:" in out.getvalue()


def test_ordinary_anchors_and_merge_keys_still_load(tmp_path: Path) -> None:
    path = tmp_path / "anchors.yaml"
    path.write_text(
        "defaults: &defaults\n  model: mock/m\n  mock_response: hi\n"
        "model_list:\n"
        + "".join(f"  - model_name: m{i}\n    litellm_params: *defaults\n" for i in range(50))
        + "  - model_name: merged\n    litellm_params:\n      <<: *defaults\n      mock_response: other\n"
    )
    loaded = load(path, env={})
    assert loaded.usable, loaded.errors
    assert loaded.data["model_list"][49]["litellm_params"] == {"model": "mock/m", "mock_response": "hi"}
    assert loaded.data["model_list"][50]["litellm_params"]["mock_response"] == "other"


@pytest.mark.parametrize(
    "text",
    [
        # nesting that exhausts the parser's stack; over ~10 s
        pytest.param("a: " + "[" * 5000 + "]" * 5000 + "\n", id="5000-deep", marks=pytest.mark.slow),
        pytest.param("a: " + "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5) + "\n", id="past-max-depth"),
    ],
)
def test_endless_or_deep_trees_are_errors_not_crashes(tmp_path: Path, text: str) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text(text)
    [error] = check_config(path, env={}).errors
    assert f"nested deeper than {MAX_DEPTH} levels" in error.message
    assert error.file == str(path)


def test_an_alias_inside_its_own_anchor_loads_finitely(tmp_path: Path) -> None:
    path = tmp_path / "self.yaml"
    path.write_text("model_list: &a [*a]\n")
    result = check_config(path, env={})  # returns: no RecursionError, no endless copy
    assert not result.ok and result.errors


# -- file size --------------------------------------------------------------------------------------


def test_a_file_over_the_size_bound_is_refused_before_parsing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "big.yaml"
    path.write_text(CONFIG + "# padding\n" * 200)
    assert check_config(path, env={}).ok
    result = check_config(path, env={}, limits=LoadLimits(max_bytes=1000))
    [error] = result.errors
    assert "larger than 1000 bytes" in error.message and "config_max_bytes" in error.message

    include = tmp_path / "inc.yaml"
    include.write_text("model_list:\n" + "  # padding\n" * 200)
    main = tmp_path / "main.yaml"
    main.write_text(CONFIG + "include: inc.yaml\n")
    [error] = check_config(main, env={}, limits=LoadLimits(max_bytes=1000)).errors
    assert "larger than 1000 bytes" in error.message and "inc.yaml" in str(error)

    monkeypatch.setenv("ROUTERD_CONFIG_MAX_BYTES", "1000")
    assert Settings().config_limits().max_bytes == 1000
    out = io.StringIO()
    assert run_check(argparse.Namespace(config=str(path), json=False), out) == 1
    assert "larger than 1000 bytes" in out.getvalue()


# -- L9: FIFOs and other non-regular files -----------------------------------------------------------


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "fifo.yaml"
    os.mkfifo(path)
    return path


def test_a_fifo_is_refused_without_blocking(fifo: Path, tmp_path: Path) -> None:
    [error] = finishes(lambda: check_config(fifo, env={})).errors
    assert error.message == "cannot read the file: not a regular file"

    main = tmp_path / "main.yaml"
    main.write_text(CONFIG + "include: fifo.yaml\n")
    [error] = finishes(lambda: check_config(main, env={})).errors
    assert "fifo.yaml" in str(error) and "not a regular file" in str(error)

    digest = finishes(lambda: fingerprint([fifo]))
    assert isinstance(digest, str) and digest != fingerprint([tmp_path / "missing.yaml"])


def test_read_config_bytes_refuses_devices_and_directories(tmp_path: Path) -> None:
    for path in (Path("/dev/zero"), tmp_path):
        with pytest.raises(OSError, match=r"not a regular file|Is a directory"):
            read_config_bytes(path, 1000)


async def wait_until(check: Callable[[], Awaitable[bool]], what: str, attempts: int = 1000) -> None:
    for _ in range(attempts):  # bounded: 1000 x 10 ms
        if await check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[RouterdServer, Path]]:
    path = tmp_path / "routerd.yaml"
    path.write_text(CONFIG)
    with RouterdServer.from_file(path, watch=True, reload_debounce_ms=20, log_requests=False) as server:
        yield server, path


async def test_a_fifo_swapped_in_for_the_config_does_not_freeze_the_daemon(
    served: tuple[RouterdServer, Path],
) -> None:
    server, path = served
    auth = {"authorization": f"Bearer {KEY}"}
    path.unlink()
    os.mkfifo(path)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:

        async def failed() -> bool:
            health = (await client.get("/health", headers=auth)).json()
            return "not a regular file" in str(health["config"]["last_error"])

        await wait_until(failed, "the watcher reports the FIFO as a failed reload")
        assert (await client.get("/health/liveness")).status_code == 200
        models = (await client.get("/v1/models", headers=auth)).json()
        assert [card["id"] for card in models["data"]] == ["m"]
        metrics = (await client.get("/metrics", headers=auth)).text
        assert 'routerd_config_reloads_total{result="failure"} 1.0' in metrics


# -- L8: secrets in snippets of broken flow mappings ------------------------------------------------


BROKEN_FLOW = f"""\
model_list:
  - model_name: m
    litellm_params: {{model: openai/gpt-4o, api_key: {SECRET}, api_base: http://x: y}}
"""


def test_a_broken_flow_mapping_never_shows_its_values(tmp_path: Path) -> None:
    path = tmp_path / "flow.yaml"
    path.write_text(BROKEN_FLOW)
    out = io.StringIO()
    assert run_check(argparse.Namespace(config=str(path), json=False), out) == 1
    [error] = check_config(path, env={}).errors
    assert error.snippet, "the snippet is still shown"
    assert "api_key: ***" in error.snippet
    for text in (out.getvalue(), str(error)):
        assert SECRET not in text and "sk-live" not in text and "gpt-4o" not in text


@pytest.mark.parametrize(
    "line",
    [
        f"  master_key: {SECRET}: oops",
        f"  x: {{api_key: {SECRET}, b: [",
        f'  x: {{"api_key":"{SECRET}", b: c d',
        f"  - [{SECRET}, {{a: b",
        f"  x: 'unterminated {SECRET}",
    ],
)
def test_no_value_survives_in_any_broken_line(tmp_path: Path, line: str) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(f"general_settings:\n{line}\n  y: [\n")
    errors = check_config(path, env={}).errors
    assert errors
    assert all(SECRET not in str(error) for error in errors)


async def test_health_last_error_masks_a_broken_flow_mapping(served: tuple[RouterdServer, Path]) -> None:
    server, path = served
    auth = {"authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
        path.write_text(BROKEN_FLOW)
        response = await client.post("/admin/reload", headers=auth)
        assert response.status_code == 422
        health = (await client.get("/health", headers=auth)).json()
        error = health["config"]["last_error"]
        assert "invalid YAML" in error and "api_key: ***" in error
        assert SECRET not in error and SECRET not in response.text


# -- reload counters exist from the start ------------------------------------------------------------


async def test_reload_counters_exist_at_zero_before_any_reload(tmp_path: Path) -> None:
    path = tmp_path / "routerd.yaml"
    path.write_text(CONFIG)
    app = create_app(load_config(path), settings=Settings(config=path, watch=False), config_path=path)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://routerd") as client:
            text = (await client.get("/metrics", headers={"authorization": f"Bearer {KEY}"})).text
    assert 'routerd_config_reloads_total{result="success"} 0.0' in text
    assert 'routerd_config_reloads_total{result="failure"} 0.0' in text


# -- an unchanged reload does not compile --------------------------------------------------------------


async def test_an_unchanged_reload_is_recognised_without_loading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "routerd.yaml"
    include = tmp_path / "more.yaml"
    include.write_text("model_list:\n  - model_name: n\n    litellm_params:\n      model: mock/n\n")
    monkeypatch.setenv("ROUTERD_TEST_RESPONSE", "one")
    uses_env = CONFIG.replace("mock_response: hi", "mock_response: os.environ/ROUTERD_TEST_RESPONSE")
    path.write_text(uses_env + "include: more.yaml\n")
    app = create_app(load_config(path), settings=Settings(config=path, watch=False), config_path=path)
    reloader = Reloader(app.state.routerd)
    loads: list[Path] = []
    load_file = reloader.loader

    def counting_loader(where: Path) -> RoutingTable:
        loads.append(where)
        return load_file(where)

    reloader.loader = counting_loader
    assert (await reloader.reload("test")).result == "unchanged"
    assert loads == []  # recognised from the fingerprint alone: nothing loaded, nothing compiled

    include.write_text(include.read_text() + "# a comment changes the bytes, not the table\n")
    assert (await reloader.reload("test")).result == "unchanged"
    assert len(loads) == 1  # the bytes changed: loaded and compiled, then found equal

    monkeypatch.setenv("ROUTERD_TEST_RESPONSE", "two")  # an environment value the file uses
    outcome = await reloader.reload("test")
    assert outcome.result == "success" and len(loads) == 2
    assert (await reloader.reload("test")).result == "unchanged" and len(loads) == 2


def test_loading_records_a_fingerprint_of_files_and_environment(tmp_path: Path) -> None:
    path = tmp_path / "routerd.yaml"
    path.write_text(CONFIG)
    first = load_config(path, env={"A": "1"})
    assert first.source_fingerprint and first.sources == (str(path),)
    assert load_config(path, env={"A": "1"}).source_fingerprint == first.source_fingerprint
    assert load_config(path, env={"A": "2"}).source_fingerprint != first.source_fingerprint
    path.write_text(CONFIG + "\n")
    assert load_config(path, env={"A": "1"}).source_fingerprint != first.source_fingerprint


async def test_a_changed_guardrail_list_is_not_skipped_as_unchanged(tmp_path: Path) -> None:
    # the table depends on files besides the routing file and its includes: a word list
    (tmp_path / "words.yaml").write_text("blocked_words:\n  - {keyword: alpha, action: BLOCK}\n")
    path = tmp_path / "routerd.yaml"
    path.write_text(
        CONFIG
        + "guardrails:\n  - guardrail_name: words\n    litellm_params:\n"
        + "      guardrail: litellm_content_filter\n      mode: pre_call\n"
        + "      blocked_words_file: words.yaml\n"
    )
    table = load_config(path)
    assert [name for name, _ in table.data_files] == [str(tmp_path / "words.yaml")]
    app = create_app(table, settings=Settings(config=path, watch=False), config_path=path)
    reloader = Reloader(app.state.routerd)
    assert (await reloader.reload("test")).result == "unchanged"
    (tmp_path / "words.yaml").write_text("blocked_words:\n  - {keyword: beta, action: BLOCK}\n")
    assert (await reloader.reload("test")).result == "success"
