"""The documentation pages under docs/, for the tests that keep them true to the code."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
README = REPO / "README.md"

_HEADING = re.compile(r"^(#{1,6}) (.+)$")


def doc_page(name: str) -> str:
    """The text of ``docs/{name}`` (e.g. ``"configuration.md"``, ``"operations/metrics.md"``)."""
    return (DOCS / name).read_text(encoding="utf-8")


def _headings(text: str) -> list[tuple[int, int, str]]:
    """(line index, level, title) of every Markdown heading outside fenced code blocks."""
    found, fenced = [], False
    for index, line in enumerate(text.split("\n")):
        if line.startswith("```"):
            fenced = not fenced
            continue
        match = None if fenced else _HEADING.match(line)
        if match:
            found.append((index, len(match.group(1)), match.group(2).strip()))
    return found


def section(text: str, title: str) -> str | None:
    """The part of ``text`` under the heading ``title``, up to the next heading of the same or a higher
    level; None when there is no such heading."""
    lines = text.split("\n")
    headings = _headings(text)
    for position, (start, level, name) in enumerate(headings):
        if name == title:
            end = next((i for i, lvl, _ in headings[position + 1 :] if lvl <= level), len(lines))
            return "\n".join(lines[start:end])
    return None


def doc_section(title: str) -> str:
    """The section titled ``title`` (at any heading level) in whichever docs/ page has it."""
    for page in sorted(DOCS.rglob("*.md")):
        found = section(page.read_text(encoding="utf-8"), title)
        if found is not None:
            return found
    raise LookupError(f"no docs/ page has a section titled {title!r}")
