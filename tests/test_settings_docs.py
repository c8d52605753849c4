"""Every documented setting has a test that fails if the setting has no effect, or is listed as a gap.

The registry is tests/documented_settings.py. These tests keep it complete (every key routerd accepts,
every ``ROUTERD_*`` variable), consistent (each setting in exactly one table), true (every named test
exists and refers to the setting), and honest about the gaps.
"""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import pytest
from docs_pages import DOCS, doc_page
from documented_settings import BEHAVIOUR, EVIDENCE, KNOWN_GAPS, NO_EFFECT, UNTESTED
from pydantic import BaseModel

from routerd.config.models import (
    AliasSpec,
    AllowedFailsPolicySpec,
    Config,
    DeploymentSpec,
    GeneralSettings,
    LiteLLMParams,
    LiteLLMSettings,
    ModelInfoSpec,
    ProviderSettingsSpec,
    RetryPolicySpec,
    RouterSettings,
)
from routerd.guardrails.config import TYPE_KEYS, GuardrailParams, GuardrailSpec
from routerd.settings import Settings

REPO = Path(__file__).resolve().parents[1]

# How each model's keys are written in the registry; None: the key is a section whose own keys are listed.
SECTIONS: dict[type[BaseModel], str] = {
    Config: "",
    DeploymentSpec: "model_list[].",
    LiteLLMParams: "litellm_params.",
    ModelInfoSpec: "model_info.",
    RouterSettings: "router_settings.",
    RetryPolicySpec: "retry_policy.",
    AllowedFailsPolicySpec: "allowed_fails_policy.",
    AliasSpec: "model_group_alias.",
    LiteLLMSettings: "litellm_settings.",
    GeneralSettings: "general_settings.",
    ProviderSettingsSpec: "provider_settings.",
}
CONTAINERS = {
    "router_settings",
    "litellm_settings",
    "general_settings",
    "model_list[].litellm_params",
    "model_list[].model_info",
}
# ROUTERD_* variables read outside Settings (none: ROUTERD_HTTP_CLIENT is a field of it now).
EXTRA_VARIABLES: set[str] = set()


def guardrail_keys() -> set[str]:
    """The keys of a ``guardrails:`` entry and of its ``litellm_params`` (every type's own keys; a key
    two types share, such as ``timeout``, is one setting)."""
    params = set(GuardrailParams.model_fields).union(*TYPE_KEYS.values())
    entry = set(GuardrailSpec.model_fields) - {"litellm_params"}
    return {f"guardrails[].{name}" for name in entry} | {f"guardrails[].litellm_params.{k}" for k in params}


def accepted_settings() -> set[str]:
    """Every key of the routing file (as the registry writes it) and every ROUTERD_* variable."""
    keys = {prefix + name for model, prefix in SECTIONS.items() for name in model.model_fields}
    keys |= guardrail_keys()
    variables = {f"ROUTERD_{name.upper()}" for name in Settings.model_fields} | EXTRA_VARIABLES
    return (keys - CONTAINERS) | variables


TABLES = {"BEHAVIOUR": BEHAVIOUR, "NO_EFFECT": NO_EFFECT, "UNTESTED": UNTESTED, "KNOWN_GAPS": KNOWN_GAPS}


def test_every_accepted_setting_is_in_the_registry() -> None:
    listed = set().union(*TABLES.values())
    assert sorted(accepted_settings() - listed) == [], "add these to tests/documented_settings.py"
    assert sorted(listed - accepted_settings()) == [], "the registry lists settings routerd does not accept"


def test_each_setting_is_in_exactly_one_table() -> None:
    names = list(TABLES)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            assert set(TABLES[first]) & set(TABLES[second]) == set(), (first, second)


def test_the_known_gaps_are_exactly_the_settings_without_an_effect_today() -> None:
    # enable_pre_call_checks and max_retries were the last two (issue 19); issue 16 gave them LiteLLM's
    # meaning. A setting documented to act must have a test of its effect (BEHAVIOUR), not sit here.
    assert set(KNOWN_GAPS) == set()
    configuration = doc_page("configuration.md")
    for key in KNOWN_GAPS:
        row = next(
            line for line in configuration.splitlines() if line.startswith(f"| `{key.split('.')[-1]}`")
        )
        assert "not acted on" in row, f"docs/configuration.md must say {key} has no effect yet: {row}"


def test_every_variable_is_documented() -> None:
    pages = "".join(page.read_text(encoding="utf-8") for page in sorted(DOCS.rglob("*.md")))
    variables = {key for key in accepted_settings() if key.startswith("ROUTERD_")}
    assert sorted(name for name in variables if f"`{name}`" not in pages) == []


@functools.cache
def _tests_in(path: str) -> tuple[str, dict[str, str]]:
    """The source of a test module, of its directory's conftest.py and of the test modules it imports
    (``from .support import``, where shared configs live), and the source of each of its functions."""
    file = REPO / path
    source = file.read_text(encoding="utf-8")
    tree = ast.parse(source)
    functions = {
        node.name: ast.get_source_segment(source, node) or ""
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    siblings = [file.parent / "conftest.py"]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 1:
            siblings.append(file.parent / f"{node.module}.py")
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tests."):
            siblings.append(REPO / (node.module.replace(".", "/") + ".py"))
    context = "\n".join([source, *(s.read_text(encoding="utf-8") for s in siblings if s.is_file())])
    return context, functions


BEHAVIOUR_TESTS = sorted({(key, test) for key, tests in BEHAVIOUR.items() for test in tests})


@pytest.mark.parametrize(("key", "test"), BEHAVIOUR_TESTS, ids=[f"{k}->{t}" for k, t in BEHAVIOUR_TESTS])
def test_each_named_test_exists_and_refers_to_its_setting(key: str, test: str) -> None:
    path, _, name = test.partition("::")
    assert (REPO / path).is_file(), f"{key}: no test module {path}"
    module, functions = _tests_in(path)
    assert name in functions, f"{key}: {path} has no test {name}"
    evidence = EVIDENCE.get(key) or re.escape(key.rsplit(".", 1)[-1].removeprefix("ROUTERD_").lower())
    pattern = re.compile(evidence, re.IGNORECASE)
    assert pattern.search(functions[name]) or pattern.search(module), (
        f"{test} never mentions {key} ({evidence!r}): is it really the test of this setting?"
    )


def test_every_setting_with_an_effect_names_at_least_one_test() -> None:
    assert [key for key, tests in BEHAVIOUR.items() if not tests] == []
