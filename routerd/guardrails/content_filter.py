"""The ``litellm_content_filter`` guardrail: regex patterns, keywords and phrase categories, BLOCK or MASK.

Pure text in, verdict out; no I/O (category and keyword files are read when the config is compiled,
see :mod:`routerd.guardrails.filter_spec`). A :class:`ContentFilter` is built once per routing table and
shared by every request, so scanning allocates nothing but the result.

Rules are tried in two passes: every BLOCK rule first (the first hit, in configuration order, decides:
a request that would be blocked is never partly masked), then every MASK rule, whose spans are merged
(earliest first, the longer one wins an overlap) and replaced in one pass. Matching is
case-insensitive for keywords and phrases, as written for patterns (custom regexes choose their flags).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = ["Action", "ContentFilter", "Finding", "Rule", "ScanResult", "StreamScanner"]


class Action(StrEnum):
    """What a rule does when it matches."""

    BLOCK = "BLOCK"
    MASK = "MASK"


@dataclass(frozen=True, slots=True)
class Rule:
    """One compiled rule. ``kind`` is ``pattern``, ``keyword`` or ``category``; ``name`` is what is
    reported (a pattern's or category's name, or ``keyword``); never the matched text."""

    name: str
    kind: str
    regex: re.Pattern[str]
    action: Action
    tag: str
    check: Callable[[str], bool] | None = None
    severity: str | None = None
    exceptions: re.Pattern[str] | None = None
    # speed: the character before a match must not match ``not_after``; the text must contain one of
    # ``hints`` (and what ``requires`` looks for) for the rule to be tried at all
    not_after: re.Pattern[str] | None = None
    hints: tuple[str, ...] = ()
    requires: re.Pattern[str] | None = None  # a cheap pre-check searched once per text, shared by rules
    digits: int = 0  # the fewest ASCII digits a match holds (the text's digits are counted once)
    shape: bytes = b""  # a run of kinds every match holds (see :func:`_shape`), found in the text's kinds


@dataclass(frozen=True, slots=True)
class Finding:
    """Where a rule matched (offsets into the scanned text)."""

    rule: str
    kind: str
    action: Action
    start: int
    end: int
    severity: str | None = None
    tag: str = ""


@dataclass(frozen=True, slots=True)
class ScanResult:
    """The verdict on one text: ``blocked`` is the deciding finding, or None; ``text`` is the text with
    every MASK finding replaced (the input itself when nothing matched); ``masked`` lists them."""

    text: str
    blocked: Finding | None
    masked: tuple[Finding, ...]

    @property
    def changed(self) -> bool:
        return bool(self.masked)


_DIGITS = b"0123456789"
_DIGIT_COUNT = -1  # where scan()'s ``seen`` keeps the text's digit count (ids of regexes are never negative)
_SHAPE = -2  # where it keeps the text's kinds (see _shape)
#: Each byte to its kind: ``A`` for an ASCII capital, ``0`` for an ASCII digit, a space for anything else
#: (the bytes of a non-ASCII character included, so ASCII characters are next to each other in the kinds
#: exactly when they are in the text).
_KINDS = bytes(ord("A") if 65 <= b <= 90 else ord("0") if 48 <= b <= 57 else ord(" ") for b in range(256))


def _shape(text: str) -> bytes:
    """``text``'s kinds, one byte per UTF-8 byte: ``b"AA00" in _shape(t)`` exactly when ``[A-Z][A-Z][0-9][0-9]``
    matches somewhere in ``t``."""
    return text.encode("utf-8", "surrogatepass").translate(_KINDS)


def _digit_count(text: str) -> int:
    """ASCII digits in ``text``: in UTF-8 they are single bytes that never occur inside another character."""
    raw = text.encode("utf-8", "surrogatepass")
    return len(raw) - len(raw.translate(None, _DIGITS))


class _Prefilter:
    """The cheap necessary conditions of a list of rules (``(rule, its shortest match)``, in order),
    turned into bit masks once per filter so that a text is looked at once for all rules rather than
    rule by rule: each distinct hint is searched once (a rule needs one of its hints), the text's
    length and digit count each pick a precomputed mask of the rules they allow, and only the rules
    left are tried (a rule's ``requires`` pre-check, shared between rules, is searched at most once
    per text: ``seen``)."""

    __slots__ = ("_by_digits", "_by_size", "_hintless", "_hints", "_needs_digits", "_rules")

    def __init__(self, rules: Sequence[tuple[Rule, int]]) -> None:
        self._rules = tuple(rule for rule, _ in rules)
        hints: dict[str, int] = {}
        hintless = 0
        for index, (rule, _) in enumerate(rules):
            if not rule.hints:
                hintless |= 1 << index
            for hint in rule.hints:
                hints[hint] = hints.get(hint, 0) | 1 << index
        self._hintless = hintless
        # hints grouped under a character each holds (the one least likely in prose): a text without
        # that character holds none of them, and looking for one character is a memchr
        groups: dict[str, list[tuple[str, int]]] = {}
        for hint, bits in hints.items():
            groups.setdefault(_rarest(hint), []).append((hint, bits))
        self._hints = tuple((char, tuple(group)) for char, group in groups.items())
        # _by_size[n] (_by_digits[n]): the rules a text of n characters (with n ASCII digits) allows;
        # the last entry stands for every larger n
        self._by_size = _threshold_masks([shortest for _, shortest in rules])
        self._by_digits = _threshold_masks([rule.digits for rule, _ in rules])
        self._needs_digits = any(rule.digits for rule, _ in rules)

    def worth_trying(self, text: str, seen: dict[int, Any]) -> Iterator[Rule]:
        """The rules, in order, whose cheap necessary conditions hold for ``text``."""
        candidates = self._hintless
        for char, group in self._hints:
            if char in text:
                for hint, bits in group:
                    if hint in text:
                        candidates |= bits
        by_size = self._by_size
        candidates &= by_size[min(len(text), len(by_size) - 1)]
        if candidates and self._needs_digits:
            count = seen.get(_DIGIT_COUNT)
            if count is None:
                count = seen[_DIGIT_COUNT] = _digit_count(text)
            by_digits = self._by_digits
            candidates &= by_digits[min(count, len(by_digits) - 1)]
        rules = self._rules
        while candidates:
            lowest = candidates & -candidates
            candidates ^= lowest
            rule = rules[lowest.bit_length() - 1]
            if rule.shape:
                kinds = seen.get(_SHAPE)
                if kinds is None:
                    kinds = seen[_SHAPE] = _shape(text)
                if rule.shape not in kinds:
                    continue
            requires = rule.requires
            if requires is not None:
                found = seen.get(id(requires))
                if found is None:
                    found = seen[id(requires)] = requires.search(text) is not None
                if not found:
                    continue
            yield rule


#: Lower-case letters and the space, most frequent first in English prose; any other character (capitals,
#: digits, punctuation) counts as rarer than all of them.
_COMMON = " etaoinshrdlcumwfgypbvkjxqz"


def _rarest(hint: str) -> str:
    """The character of ``hint`` least likely to occur in a text (the first of equals)."""
    return max(hint, key=lambda char: _COMMON.find(char) if char in _COMMON else len(_COMMON))


#: The longest threshold table: a larger need (a custom regex matching thousands of characters at least)
#: counts as this many, a weaker condition that is still a necessary one.
_MAX_THRESHOLD = 4096


def _threshold_masks(needs: Sequence[int]) -> tuple[int, ...]:
    """Entry n: the bit mask of the positions whose need is at most n, for n up to the largest need."""
    needs = [min(need, _MAX_THRESHOLD) for need in needs]
    at = [0] * (max(needs, default=0) + 1)
    for index, need in enumerate(needs):
        at[need] |= 1 << index
    masks: list[int] = []
    mask = 0
    for bits in at:
        mask |= bits
        masks.append(mask)
    return tuple(masks)


def _shortest_match(regex: re.Pattern[str]) -> int:
    """The fewest characters any match of ``regex`` spans (0 when the parser cannot tell): a text shorter
    than that is not searched (a short answer such as "OK" skips the whole filter)."""
    try:
        from re import _parser  # type: ignore[attr-defined]

        low = _parser.parse(regex.pattern, regex.flags).getwidth()[0]
    except Exception:  # a private module of the standard library: never let it break a filter
        return 0
    return int(low)


def _matches(rule: Rule, text: str, start: int = 0) -> Iterable[tuple[int, int]]:
    not_after = rule.not_after
    named = "v" in rule.regex.groupindex
    for match in rule.regex.finditer(text, start):
        if not_after is not None and match.start() > 0 and not_after.match(text, match.start() - 1):
            continue
        span = match.span("v") if named and match.group("v") is not None else match.span()
        if span[0] == span[1]:
            continue
        if rule.check is not None and not rule.check(text[span[0] : span[1]]):
            continue
        if rule.exceptions is not None and _excepted(rule.exceptions, text, span):
            continue
        yield span


def _excepted(exceptions: re.Pattern[str], text: str, span: tuple[int, int]) -> bool:
    """A category hit inside an exception phrase ("suicide prevention" around "suicide") is not a hit."""
    return any(m.start() <= span[1] and span[0] <= m.end() for m in exceptions.finditer(text))


class ContentFilter:
    """A compiled content filter: rules in configuration order."""

    __slots__ = ("_block", "_mask", "_shortest", "rules")

    _block: _Prefilter
    _mask: _Prefilter

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = tuple(rules)
        widths = {id(r): _shortest_match(r.regex) for r in self.rules}
        self._block = _Prefilter([(r, widths[id(r)]) for r in self.rules if r.action is Action.BLOCK])
        self._mask = _Prefilter([(r, widths[id(r)]) for r in self.rules if r.action is Action.MASK])
        self._shortest = min(widths.values(), default=0)

    def scan(self, text: str, *, skip_before: int = 0) -> ScanResult:
        """Scan ``text``; findings that start before ``skip_before`` are ignored (they were already decided
        by an earlier scan: see :class:`StreamScanner`)."""
        if len(text) < self._shortest or not self.rules:
            return ScanResult(text, None, ())
        seen: dict[int, Any] = {}
        for rule in self._block.worth_trying(text, seen):
            for start, end in _matches(rule, text):
                if start >= skip_before:
                    finding = Finding(rule.name, rule.kind, rule.action, start, end, rule.severity)
                    return ScanResult(text, finding, ())
        spans: list[tuple[int, int, Rule]] = []
        for rule in self._mask.worth_trying(text, seen):
            spans.extend((s, e, rule) for s, e in _matches(rule, text) if s >= skip_before)
        if not spans:
            return ScanResult(text, None, ())
        return _apply_masks(text, spans)


def _apply_masks(text: str, spans: list[tuple[int, int, Rule]]) -> ScanResult:
    spans.sort(key=lambda item: (item[0], -item[1]))
    findings: list[Finding] = []
    position = 0
    for start, end, rule in spans:
        if start < position:
            continue  # overlaps a span already chosen
        findings.append(Finding(rule.name, rule.kind, rule.action, start, end, rule.severity, rule.tag))
        position = end
    return ScanResult(_replace(text, 0, len(text), findings), None, tuple(findings))


class StreamScanner:
    """Scans a text that arrives in pieces (a streamed answer) without letting a match slip through a
    chunk boundary: the last ``window`` characters are held back until more text (or the end) arrives,
    and a MASK match that straddles the release point holds back from its start.

    The release point never splits a run of non-space characters (an address, a key, a token) unless
    the run is longer than ``window``: such a value is held whole until it is complete.

    Bound: a match longer than ``window`` characters (or a space-free run longer than twice the window)
    that arrives split across chunks can be released in part before it is complete; every rule of the
    prebuilt set is shorter than the default window except ``private_key`` blocks.
    """

    __slots__ = ("_context", "_filter", "_pending", "blocked", "masked", "window")

    #: Characters of already-released text kept in front of the pending text, so look-behind
    #: assertions (``(?<!\d)``) see what came before.
    CONTEXT = 32

    def __init__(self, content_filter: ContentFilter, window: int = 256) -> None:
        self._filter = content_filter
        self.window = window
        self._pending = ""
        self._context = ""
        self.blocked: Finding | None = None
        self.masked: list[Finding] = []

    def feed(self, text: str) -> str:
        """Add ``text``; return what may be released now (masked). After a block, nothing more is released
        and :attr:`blocked` is set."""
        if self.blocked is not None:
            return ""
        self._pending += text
        return self._release(final=False)

    def finish(self) -> str:
        """The end of the text: release everything still held (masked), unless a block fires."""
        if self.blocked is not None:
            return ""
        return self._release(final=True)

    def _release(self, *, final: bool) -> str:
        offset = len(self._context)
        buffer = self._context + self._pending
        result = self._filter.scan(buffer, skip_before=offset)
        if result.blocked is not None:
            self.blocked = result.blocked
            self._pending = ""
            return ""
        cut = (
            len(buffer)
            if final
            else _word_start(buffer, max(offset, len(buffer) - self.window), offset, self.window)
        )
        for finding in result.masked:
            if finding.start < cut < finding.end:
                cut = finding.start
        released = _masked_slice(buffer, offset, cut, result.masked)
        self.masked.extend(f for f in result.masked if f.end <= cut)
        self._context = buffer[max(0, cut - self.CONTEXT) : cut]
        self._pending = buffer[cut:]
        return released


def _word_start(text: str, cut: int, floor: int, limit: int) -> int:
    """Move a release point back to the start of the whitespace-free run it falls in (an email, a key or
    a token is never released in part while its end may still be arriving), by at most ``limit``."""
    if cut <= floor or text[cut - 1].isspace():
        return cut
    lowest = max(floor, cut - limit)
    for index in range(cut - 1, lowest - 1, -1):
        if text[index].isspace():
            return index + 1
    return cut if lowest > floor else floor


def _masked_slice(text: str, start: int, stop: int, findings: Sequence[Finding]) -> str:
    """``text[start:stop]`` with the findings that lie inside it replaced by their rules' tags."""
    return _replace(text, start, stop, [f for f in findings if start <= f.start and f.end <= stop])


def _replace(text: str, start: int, stop: int, findings: Sequence[Finding]) -> str:
    pieces: list[str] = []
    position = start
    for finding in findings:
        pieces.append(text[position : finding.start])
        pieces.append(finding.tag)
        position = finding.end
    pieces.append(text[position:stop])
    return "".join(pieces)
