"""Small routing files skip the fast parse (loader.FAST_PARSE_MIN_CHARS): importing PyYAML costs more
than ruamel's round trip of them. Checked in fresh interpreters through ``sys.modules``."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from routerd.config import load_text
from routerd.config import loader as loader_module
from routerd.config.fastparse import available

ROOT = Path(__file__).resolve().parents[2]

_LOAD = """
import json, sys
from routerd.config import load_text
from routerd.config import loader

loaded = load_text(sys.stdin.read(), "config.yaml", env={})
print(json.dumps({"yaml": "yaml" in sys.modules, "data": loaded.data, "issues": len(loaded.issues),
                  "threshold": loader.FAST_PARSE_MIN_CHARS}))
"""


def _document(deployments: int) -> str:
    entries = "".join(
        f"  - model_name: m{i}\n    litellm_params: {{model: mock/m{i}, mock_response: 'hi {i}'}}\n"
        for i in range(deployments)
    )
    return "model_list:\n" + entries


def _load_fresh(text: str) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_LOAD)],
        input=text,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
        cwd=ROOT,
    )
    data: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return data


def test_a_small_file_is_loaded_without_pyyaml() -> None:
    text = _document(3)
    assert len(text) < loader_module.FAST_PARSE_MIN_CHARS
    seen = _load_fresh(text)
    assert seen["yaml"] is False
    assert seen["data"] == load_text(text, "config.yaml", env={}).data
    assert seen["issues"] == 0


@pytest.mark.skipif(not available(), reason="PyYAML's C extension (libyaml) is not installed")
def test_a_file_at_the_threshold_takes_the_fast_parse() -> None:
    text = _document(200)
    assert len(text) >= loader_module.FAST_PARSE_MIN_CHARS
    seen = _load_fresh(text)
    assert seen["yaml"] is True
    assert seen["data"] == load_text(text, "config.yaml", env={}).data
