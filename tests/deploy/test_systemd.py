"""deploy/systemd/routerd.service: reload sends SIGHUP, stop outlasts the drain, its documentation is
installed where it says, the unit verifies."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from routerd.settings import Settings

from .conftest import DEPLOY, ROOT

UNIT = DEPLOY / "systemd" / "routerd.service"


def directives() -> dict[str, dict[str, list[str]]]:
    """section -> key -> values (systemd allows repeated keys, e.g. Environment=)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key, []).append(value)
    return sections


def test_reload_sends_sighup_to_the_main_process() -> None:
    (reload,) = directives()["Service"]["ExecReload"]
    assert reload.split()[-2:] == ["-HUP", "$MAINPID"]
    assert reload.split()[0].endswith("kill")


def test_starts_routerd_serve_with_its_config() -> None:
    service = directives()["Service"]
    (start,) = service["ExecStart"]
    assert start.split()[-2:] == ["routerd", "serve"] or start.endswith("/routerd serve")
    environment = dict(item.split("=", 1) for item in service["Environment"])
    assert environment["ROUTERD_CONFIG"].endswith(".yaml")


def test_stopping_waits_for_the_drain() -> None:
    service = directives()["Service"]
    (timeout,) = service["TimeoutStopSec"]
    environment = dict(item.split("=", 1) for item in service["Environment"])
    drain = float(environment.get("ROUTERD_DRAIN_TIMEOUT", Settings().drain_timeout))
    assert float(timeout) > drain
    assert service["KillSignal"] == ["SIGTERM"]


def test_runs_unprivileged() -> None:
    service = directives()["Service"]
    assert service.get("DynamicUser") == ["yes"] or "User" in service
    assert service["NoNewPrivileges"] == ["yes"]


def test_documentation_names_a_page_the_install_steps_put_there() -> None:
    (documentation,) = directives()["Unit"]["Documentation"]
    assert documentation.startswith("file:///")
    target = documentation.removeprefix("file://")
    # the unit's header (and the docs page) say how to install it: one of the steps puts a page there
    steps = [
        line.lstrip("# ").split("#")[0].split()
        for text in (UNIT.read_text(), (ROOT / "docs/operations/deploy.md").read_text())
        for line in text.splitlines()
        if target in line and line.lstrip("# ").startswith("install ")
    ]
    assert len(steps) == 2, steps
    for step in steps:
        assert step[-1] == target
        source = ROOT / step[-2]
        assert source.is_file() and source.suffix == ".md", source
        assert source.relative_to(ROOT).parts[0] == "docs"  # a page of the docs, kept current with them


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not installed")
    # verify checks that ExecStart exists: point it at an executable that does
    unit = tmp_path / "routerd.service"
    unit.write_text(UNIT.read_text().replace("/opt/routerd/bin/routerd", sys.executable))
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    problems = [line for line in (result.stdout + result.stderr).splitlines() if "routerd.service" in line]
    assert result.returncode == 0 and not problems, result.stdout + result.stderr
