"""The former README sections, now pages under docs/ (kept for tests written before the move).

``readme_section(title)`` finds the section with that title in whichever docs/ page holds it; new
tests use :mod:`docs_pages` directly.
"""

from __future__ import annotations

from docs_pages import doc_section


def readme_section(title: str) -> str:
    """The documentation section titled ``title`` (formerly ``## {title}`` in README.md)."""
    return doc_section(title)
