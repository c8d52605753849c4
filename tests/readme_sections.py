"""Sections of README.md, for the tests that keep the documentation true to the code."""

from __future__ import annotations

from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_section(title: str) -> str:
    """The README section under ``## {title}``, up to the next section of the same level."""
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else len(text)]
