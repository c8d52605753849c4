"""The adapter registry loads each built-in adapter module when one of its adapters is first asked for."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from routerd.providers import base
from routerd.providers.base import BUILTIN_MODULES, canonical_provider, get_adapter, provider_names
from routerd.providers.infer import PROVIDER_PREFIXES


@pytest.mark.parametrize("prefix", sorted(PROVIDER_PREFIXES))
def test_every_prefix_is_served_by_the_module_listed_for_it(prefix: str) -> None:
    canonical = PROVIDER_PREFIXES[prefix]
    assert canonical_provider(prefix) == canonical
    adapter = get_adapter(prefix)
    assert adapter.name == canonical
    assert type(adapter).__module__ == BUILTIN_MODULES[canonical]


def test_the_listed_names_are_exactly_the_built_in_adapters() -> None:
    assert set(BUILTIN_MODULES) == set(PROVIDER_PREFIXES.values())
    assert set(provider_names()) >= set(PROVIDER_PREFIXES)


def _run(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],  # the checkout under test
    )
    return result.stdout.strip()


def test_asking_for_one_adapter_imports_only_its_module() -> None:
    out = _run(
        """
        import sys
        from routerd.providers.base import get_adapter
        get_adapter("mock")
        mock = "routerd.providers.mock" in sys.modules
        others = sorted(m for m in ("routerd.providers.bedrock", "routerd.providers.vertex",
                        "routerd.providers.anthropic", "routerd.providers.builtin") if m in sys.modules)
        get_adapter("groq")
        print(mock, others, "routerd.providers.openai" in sys.modules, "routerd.providers.bedrock" in sys.modules)
        """
    )
    assert out == "True [] True False"


def test_an_unknown_name_loads_every_module_and_is_still_unknown() -> None:
    out = _run(
        """
        import sys
        from routerd.providers.base import canonical_provider
        print(canonical_provider("no-such-provider"), "routerd.providers.bedrock" in sys.modules)
        """
    )
    assert out == "None True"


def test_an_adapter_registered_before_its_built_in_module_loads_keeps_the_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(base, "_REGISTRY", {})
    monkeypatch.setattr(base, "_ALIASES", {})
    monkeypatch.delitem(sys.modules, "routerd.providers.cohere", raising=False)

    class Mine(base.BaseAdapter):
        name = "cohere"

    mine = Mine()
    base.register(mine)  # type: ignore[arg-type]
    assert get_adapter("cohere_chat") is mine  # the alias comes from the module, the adapter stays ours
    assert "routerd.providers.cohere" in sys.modules
