"""Config problems as data: where they are (file:line:col and YAML path), what they are, how bad.

Every stage of the pipeline (load, validate, compile) reports :class:`Issue` records instead of raising
on the first problem, so ``routerd check`` can list everything that is wrong with a file at once. An
issue renders as ``file:line:col: yaml.path: message``, the shape editors and CI annotators understand.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from routerd.config.frozen import REDACTED

#: A path into the YAML tree: mapping keys and sequence indexes, e.g. ``("model_list", 2, "litellm_params")``.
YamlPath = tuple[str | int, ...]
Severity = Literal["error", "warning"]

_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


@dataclass(frozen=True, slots=True)
class Location:
    """A position in a file; ``line`` and ``col`` are 1-based, 0 when unknown (a missing file)."""

    file: str
    line: int = 0
    col: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}" if self.line else self.file


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem in a config file.

    ``path`` is the rendered YAML path (``model_list[2].litellm_params.api_bse``); ``snippet`` holds the
    offending source line and a caret for syntax errors, and is empty otherwise. Messages never contain
    secret values (API keys, values read from the environment).
    """

    file: str
    line: int
    col: int
    path: str
    message: str
    severity: Severity = "error"
    snippet: str = ""

    @classmethod
    def at(
        cls,
        where: Location,
        path: YamlPath | str,
        message: str,
        severity: Severity = "error",
        snippet: str = "",
    ) -> Issue:
        rendered = path if isinstance(path, str) else format_path(path)
        return cls(where.file, where.line, where.col, rendered, message, severity, snippet)

    @property
    def location(self) -> Location:
        return Location(self.file, self.line, self.col)

    def __str__(self) -> str:
        head = str(self.location)
        text = f"{head}: {self.path}: {self.message}" if self.path else f"{head}: {self.message}"
        if self.snippet:
            text += "\n" + self.snippet
        return text

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (``routerd check --json``)."""
        return {
            "file": self.file,
            "line": self.line,
            "col": self.col,
            "path": self.path,
            "message": self.message,
            "severity": self.severity,
        }


def format_path(path: YamlPath) -> str:
    """``("model_list", 2, "litellm_params", "api_bse")`` -> ``model_list[2].litellm_params.api_bse``.

    Keys that are not plain identifiers (group names such as ``gpt-3.5-turbo``) are quoted in brackets,
    so the rendered path stays unambiguous: ``router_settings.fallbacks[0]["gpt-3.5-turbo"]``.
    """
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.match(part):
            out += f".{part}" if out else part
        else:
            out += '["' + part.replace("\\", "\\\\").replace('"', '\\"') + '"]'
    return out


def snippet_for(text: str, line: int, col: int) -> str:
    """The source line ``line`` (1-based) with a caret under ``col``, indented for display."""
    lines = text.splitlines()
    if not 1 <= line <= len(lines):
        return ""
    source = lines[line - 1].rstrip()
    caret = " " * max(col - 1, 0) + "^"
    return f"    {source}\n    {caret}"


# One token of a line of YAML: a mapping key with its colon (plain or quoted), structure (brackets,
# commas, a sequence dash, blanks), or anything else -- a value, or part of one.
_SNIPPET_TOKEN = re.compile(
    r"""(?P<key>(?:"[^"\n]*"|'[^'\n]*'|[\w.\-]+)\s*:)(?=\s|$|[{}\[\],"'])"""
    r"""|(?P<blank>\s+)|(?P<structure>[{}\[\],]|-(?=\s|$))"""
    r"""|(?P<value>[^\s{}\[\],]+)"""
)


def mask_values(line: str, col: int) -> tuple[str, int]:
    """``line`` with every value replaced by ``***`` (keys and structure kept), and where ``col``
    (1-based) moved to.

    Snippets of broken files show the line of the error; whatever a value holds there (a key written
    inline in a block or flow mapping, a sequence item, the rest of a broken quoted string) may be a
    secret, and a broken line cannot be parsed well enough to tell, so no value is ever shown. A key
    counts as one only where a key can start (line start, after ``{``, ``[``, ``,`` or ``-``); the
    words of one value become a single ``***``.
    """
    out: list[str] = []
    length, new_col = 0, 0
    key_may_start, in_value = True, False
    for match in _SNIPPET_TOKEN.finditer(line):
        kind, text = match.lastgroup, match.group()
        start, end = match.span()
        if kind == "key" and not key_may_start:
            kind = "value"
        if kind == "value":
            piece = "" if in_value else REDACTED
            in_value, key_may_start = True, False
        elif kind == "blank":
            piece = text
        else:
            piece, in_value = text, False
            key_may_start = kind == "structure"
        if kind == "blank" and in_value:
            piece = ""  # blanks inside a value vanish with it; _respace puts one back before a key
        if not new_col and start <= col - 1 < end:
            new_col = length + 1 + (col - 1 - start if kind in ("key", "structure") else 0)
        out.append(piece)
        length += len(piece)
    masked = _respace("".join(out))
    if not new_col:
        new_col = len(masked) + 1 + max(col - 1 - len(line), 0)
    return masked, min(new_col, len(masked) + 1)


def _respace(text: str) -> str:
    # blanks inside masked values were dropped: put one back where a masked value meets a key
    return re.sub(r"\*\*\*(?=[^\s,}\]])", "*** ", text)


def did_you_mean(word: str, candidates: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The candidate closest to ``word``, if any is close enough to be worth suggesting."""
    pool = list(dict.fromkeys(candidates))
    lowered = {c.lower().replace("-", "_"): c for c in pool}
    normal = word.lower().replace("-", "_")
    if normal in lowered:
        return lowered[normal]
    best = difflib.get_close_matches(word, pool, n=1, cutoff=cutoff)
    if best:
        return best[0]
    typo = closest_typo(word, pool)
    return typo


def suggestion(word: str, candidates: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` or ``""``: the tail of an unknown-name message."""
    best = did_you_mean(word, candidates)
    return f"; did you mean {best!r}?" if best else ""


def closest_typo(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate that ``word`` is most likely a misspelling of, or None.

    Stricter than :func:`did_you_mean`: used where an unknown key is otherwise legitimate (provider
    specific ``litellm_params`` pass through to the provider), so only near-certain typos count: a
    similarity ratio of at least 0.85, one edit/transposition away, or a difference in case/dashes.
    """
    best: tuple[float, str] | None = None
    for candidate in candidates:
        if candidate == word:
            return None
        if is_probable_typo(word, candidate):
            ratio = difflib.SequenceMatcher(None, word, candidate).ratio()
            if best is None or ratio > best[0]:
                best = (ratio, candidate)
    return best[1] if best else None


def is_probable_typo(word: str, candidate: str) -> bool:
    """True when ``word`` is almost certainly ``candidate`` misspelt."""
    if word == candidate:
        return False
    if word.lower().replace("-", "_") == candidate.lower().replace("-", "_"):
        return True
    if difflib.SequenceMatcher(None, word, candidate).ratio() >= 0.85:
        return True
    return min(len(word), len(candidate)) >= 3 and edit_distance(word, candidate) <= 1


def edit_distance(a: str, b: str) -> int:
    """Optimal string alignment distance: insertions, deletions, substitutions, adjacent swaps."""
    if abs(len(a) - len(b)) > 2:
        return abs(len(a) - len(b))
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[len(b)]


def errors_of(issues: Iterable[Issue]) -> list[Issue]:
    return [issue for issue in issues if issue.severity == "error"]


def warnings_of(issues: Iterable[Issue]) -> list[Issue]:
    return [issue for issue in issues if issue.severity == "warning"]
