"""The config pipeline: load -> validate -> compile -> frozen :class:`RoutingTable`.

Most callers want one of two functions::

    table = load_config("config.yaml")      # RoutingTable, or ConfigError listing every problem
    result = check_config("config.yaml")    # CheckResult: the table or the errors, plus warnings

The stages are public too, each with its own tests: :func:`load` (YAML, includes, ``os.environ/``),
:func:`validate` (schema and cross-checks, problems as :class:`Issue` records located by
file:line:col and YAML path) and :func:`compile_config` (the frozen table).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from routerd.config.compiler import compile_config
from routerd.config.files import LoadLimits
from routerd.config.issues import Issue, Location, format_path
from routerd.config.loader import LoadedConfig, SourceMap, load, load_text
from routerd.config.models import Config
from routerd.config.table import RoutingTable
from routerd.config.validate import Validated, validate
from routerd.errors import ConfigError

__all__ = [
    "CheckResult",
    "Config",
    "ConfigError",
    "Issue",
    "LoadLimits",
    "LoadedConfig",
    "Location",
    "RoutingTable",
    "SourceMap",
    "Validated",
    "check_config",
    "check_text",
    "compile_config",
    "format_path",
    "load",
    "load_config",
    "load_text",
    "validate",
]


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What ``routerd check`` reports: the table when the file is valid, else the errors; warnings always."""

    source: str
    table: RoutingTable | None
    errors: tuple[Issue, ...]
    warnings: tuple[Issue, ...]

    @property
    def ok(self) -> bool:
        return self.table is not None

    def summary(self) -> dict[str, Any]:
        """Counts of what the table holds (empty when invalid)."""
        if self.table is None:
            return {}
        table = self.table
        return {
            "groups": len(table.groups) + len(table.wildcard_groups),
            "deployments": len(table.deployments),
            "aliases": len(table.aliases),
            "warnings": len(self.warnings),
            "content_hash": table.content_hash,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.source,
            "valid": self.ok,
            "summary": self.summary() or None,
            "errors": [issue.to_dict() for issue in self.errors],
            "warnings": [issue.to_dict() for issue in self.warnings],
        }


def check_config(
    path: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    limits: LoadLimits | None = None,
) -> CheckResult:
    """Run the whole pipeline on ``path`` and report, without raising for problems in the file.

    ``env`` replaces the process environment for ``os.environ/`` references and provider defaults;
    ``limits`` bounds what the file may cost to load (the defaults when None).
    """
    return _check(load(path, env, limits))


def check_text(
    text: str,
    filename: str = "<config>",
    env: Mapping[str, str] | None = None,
    base_dir: str | os.PathLike[str] | None = None,
    limits: LoadLimits | None = None,
) -> CheckResult:
    """:func:`check_config` for YAML held in a string (includes resolve against ``base_dir``)."""
    return _check(load_text(text, filename, env, base_dir, limits))


def load_config(
    path: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    limits: LoadLimits | None = None,
) -> RoutingTable:
    """The routing table of ``path``. Raises :class:`ConfigError` with every error found."""
    result = check_config(path, env, limits)
    if result.table is None:
        raise ConfigError(list(result.errors))
    return result.table


def _check(loaded: LoadedConfig) -> CheckResult:
    validated = validate(loaded)
    if not validated.ok:
        return CheckResult(loaded.source, None, validated.errors, validated.warnings)
    try:
        table = compile_config(validated)
    except ConfigError as exc:
        issues = [i if isinstance(i, Issue) else Issue(loaded.source, 0, 0, "", str(i)) for i in exc.issues]
        return CheckResult(loaded.source, None, tuple(issues), validated.warnings)
    return CheckResult(loaded.source, table, (), validated.warnings)
