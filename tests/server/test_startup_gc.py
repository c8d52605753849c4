"""``routerd serve`` pauses the cyclic garbage collector while it starts and freezes what start-up made.

Start-up makes tens of thousands of long-lived objects; collecting them while they are made cost about
an eighth of start-up's CPU (docs/performance.md). Observed in a fresh interpreter, with uvicorn's
``Server.run`` replaced by a recorder so that nothing listens.
"""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

_SCRIPT = """
import gc, sys

import uvicorn

import routerd.config

seen = {}
real_load = routerd.config.load_config


def load_config(*args, **kwargs):
    seen["collecting while loading"] = gc.isenabled()
    return real_load(*args, **kwargs)


def run(self, sockets=None):
    seen["collecting when uvicorn starts"] = gc.isenabled()
    seen["frozen when uvicorn starts"] = gc.get_freeze_count()


routerd.config.load_config = load_config
uvicorn.Server.run = run
from routerd.cli import main

status = main(["serve", "--config", sys.argv[1], "--port", "0", "--no-watch"])
broken = main(["serve", "--config", sys.argv[2], "--port", "0", "--no-watch"])
print(status, broken, seen["collecting while loading"], seen["collecting when uvicorn starts"],
      seen["frozen when uvicorn starts"] > 10_000, gc.isenabled())
"""


def test_the_collector_is_paused_while_starting_and_resumed_with_start_up_frozen(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("model_list:\n  - model_name: m\n    litellm_params: {model: mock/m, rpm: -1}\n")
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_SCRIPT), str(ROOT / "configs" / "example.yaml"), str(broken)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=ROOT,  # the checkout under test ("-c" puts the working directory first)
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # served (0); the broken file refused (1) with the collector back on; paused while the file was
    # loaded; running, with start-up's objects frozen, when uvicorn took over
    assert result.stdout.split() == ["0", "1", "False", "True", "True", "True"]


def test_check_pauses_the_collector_and_restores_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import routerd.config
    from routerd.cli import main

    seen: list[bool] = []
    real = routerd.config.check_config

    def check_config(*args: Any, **kwargs: Any) -> Any:
        seen.append(gc.isenabled())
        return real(*args, **kwargs)

    monkeypatch.setattr(routerd.config, "check_config", check_config)
    assert gc.isenabled()
    assert main(["check", str(ROOT / "configs" / "example.yaml")]) == 0
    assert seen == [False]
    assert gc.isenabled()
