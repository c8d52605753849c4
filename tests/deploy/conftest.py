"""Helpers for the deploy/ tests: paths, YAML loading, and the metric names routerd really exports."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from ruamel.yaml import YAML

from routerd.metrics import RouterdMetrics

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"

_METRIC = re.compile(r"\brouterd_[a-z0-9_]+\b")


def load_yaml(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text())


def load_yaml_all(path: Path) -> list[Any]:
    return [doc for doc in YAML(typ="safe").load_all(path.read_text()) if doc is not None]


def exported_sample_names() -> set[str]:
    """Every sample name routerd's metric families can produce (``_total``, ``_bucket``, ...)."""
    names: set[str] = set()
    for family in RouterdMetrics(CollectorRegistry()).registry.collect():
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names.update(f"{family.name}_{suffix}" for suffix in ("bucket", "sum", "count"))
        else:
            names.add(family.name)
    return names


def metric_names(expression: str) -> set[str]:
    """The ``routerd_*`` names a PromQL expression (or template) mentions."""
    return set(_METRIC.findall(expression))


def require_binary(name: str) -> str:
    """The path of ``name``; skipped only when it is missing outside CI (in CI a missing tool fails)."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is required in CI (Debian package 'prometheus'; .ci/run installs it)")
        pytest.skip(f"{name} not installed (apt-get install prometheus)")
    return path
