"""Helpers for config pipeline tests: YAML written to a temp dir, checked with a controlled environment."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from routerd.config import CheckResult, check_config

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "configs"

WriteYaml = Callable[..., Path]
Check = Callable[..., CheckResult]


@pytest.fixture
def write_yaml(tmp_path: Path) -> WriteYaml:
    """``write_yaml(text, name="config.yaml")``: the dedented text as a file in a temp dir."""

    def write(text: str, name: str = "config.yaml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


@pytest.fixture
def check(write_yaml: WriteYaml) -> Check:
    """``check(text, env=None)``: the whole pipeline on YAML text, with an empty environment by default
    (so results never depend on the machine's variables)."""

    def run(text: str, env: Mapping[str, str] | None = None, name: str = "config.yaml") -> CheckResult:
        return check_config(write_yaml(text, name), env=dict(env or {}))

    return run


def messages(issues: object) -> list[str]:
    """``path: message`` of each issue (no file/line), for assertions that are not about location."""
    return [f"{i.path}: {i.message}" for i in issues]  # type: ignore[attr-defined]
