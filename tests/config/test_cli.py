"""``routerd check`` and ``routerd schema``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from routerd.cli import main

from .conftest import FIXTURES, WriteYaml

ROOT = FIXTURES.parent.parent.parent


def test_check_reports_api_bse_of_the_third_deployment(capsys: pytest.CaptureFixture[str]) -> None:
    path = FIXTURES / "api_bse_third.yaml"
    assert main(["check", str(path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        f"error: {path}:16:7: model_list[2].litellm_params.api_bse: unknown key; did you mean 'api_base'?",
        f"{path}: invalid: 1 error, 0 warnings",
    ]


def test_check_of_a_valid_file_prints_a_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(ROOT / "configs" / "example.yaml")]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{ROOT / 'configs' / 'example.yaml'}: OK: 2 groups, 3 deployments, 1 alias, 0 warnings"
    ]


def test_check_shows_warnings_of_a_valid_file(
    write_yaml: WriteYaml, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_yaml(
        "model_list:\n  - {model_name: a, litellm_params: {model: mock/a}}\nlitellm_settings:\n  json_logs: true\n"
    )
    assert main(["check", str(path)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"warning: {path}:4:3: litellm_settings.json_logs: accepted but not acted on (use ROUTERD_LOG_FORMAT)",
        f"{path}: OK: 1 group, 1 deployment, 0 aliases, 1 warning",
    ]


def test_check_reports_errors_in_included_files(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    main_file = FIXTURES / "include" / "main.yaml"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert main(["check", str(main_file)]) == 1
    out = capsys.readouterr().out
    included = os.path.join(str(FIXTURES / "include"), "models", "openai.yaml")
    assert (
        f"error: {included}:6:7: model_list[1].litellm_params.api_bse: unknown key; did you mean 'api_base'?"
        in out
    )


def test_check_json(capsys: pytest.CaptureFixture[str]) -> None:
    path = FIXTURES / "api_bse_third.yaml"
    assert main(["check", str(path), "--json"]) == 1
    body = orjson.loads(capsys.readouterr().out)
    assert body["valid"] is False and body["summary"] is None and body["warnings"] == []
    assert body["errors"] == [
        {
            "file": str(path),
            "line": 16,
            "col": 7,
            "path": "model_list[2].litellm_params.api_bse",
            "message": "unknown key; did you mean 'api_base'?",
            "severity": "error",
        }
    ]
    assert main(["check", str(ROOT / "configs" / "example.yaml"), "--json"]) == 0
    body = orjson.loads(capsys.readouterr().out)
    assert body["valid"] is True
    assert {k: body["summary"][k] for k in ("groups", "deployments", "aliases", "warnings")} == {
        "groups": 2,
        "deployments": 3,
        "aliases": 1,
        "warnings": 0,
    }
    assert len(body["summary"]["content_hash"]) == 64


def test_check_of_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(tmp_path / "missing.yaml")]) == 1
    assert "cannot read the file" in capsys.readouterr().out


def test_schema_writes_the_committed_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "out" / "schema.json"
    assert main(["schema", "--output", str(target)]) == 0
    assert capsys.readouterr().out == f"wrote {target}\n"
    assert target.read_text() == (ROOT / "schemas" / "config.schema.json").read_text()
    assert main(["schema", "--output", "-"]) == 0
    assert capsys.readouterr().out == target.read_text()


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([])
    assert exited.value.code == 2
    assert "COMMAND" in capsys.readouterr().err


def test_module_entry_point_exits_with_the_status() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "routerd.cli", "check", str(FIXTURES / "api_bse_third.yaml")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "did you mean 'api_base'?" in done.stdout
