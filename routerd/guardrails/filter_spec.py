"""The ``litellm_content_filter`` configuration, in LiteLLM's documented shape, compiled into rules.

```yaml
guardrails:
  - guardrail_name: pii
    litellm_params:
      guardrail: litellm_content_filter
      mode: [pre_call, post_call]
      patterns:
        - {pattern_type: prebuilt, pattern_name: email, action: MASK}
        - {pattern_type: regex, name: employee_id, pattern: '\\bEMP-\\d{6}\\b', action: BLOCK}
      blocked_words: [{keyword: project-titan, action: BLOCK}]
      blocked_words_file: words.yaml          # {blocked_words: [...]} in the same shape
      categories:
        - {category: internal_codenames, category_file: codenames.yaml, severity_threshold: medium}
        - {category: harmful_self_harm}      # a built-in starter list (BUILTIN_CATEGORIES)
```

Files are read here, when the routing file is compiled (paths relative to the routing file), never
while a request is served. A category without ``category_file`` is one of routerd's own starter lists,
shipped as ``routerd/data/categories/NAME.yaml`` (:data:`BUILTIN_CATEGORIES`). Every problem is a :class:`ValueError` naming the field, which the config
validator turns into ``file:line:col``.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from routerd.guardrails.content_filter import Action, ContentFilter, Rule
from routerd.guardrails.patterns import PREBUILT

__all__ = ["BUILTIN_CATEGORIES", "MAX_FILTER_FILE_BYTES", "ContentFilterParams", "compile_content_filter"]

#: Largest keyword or category file read (a routing file must not be able to make routerd load a
#: multi-gigabyte word list into every worker).
MAX_FILTER_FILE_BYTES = 4 * 1024 * 1024
_SEVERITIES = ("low", "medium", "high")
#: The category names of LiteLLM's content filter for which routerd ships a starter list of its own
#: (routerd/data/categories/NAME.yaml, in the category file format), used when an entry names one
#: without a ``category_file``.
BUILTIN_CATEGORIES = (
    "harmful_self_harm",
    "harmful_violence",
    "harmful_illegal_weapons",
    "denied_financial_advice",
    "denied_medical_advice",
    "denied_legal_advice",
)
#: LiteLLM's other built-in category names: routerd has no list for them (rule-based lists of biased
#: language are not something routerd writes for its users), so they need a ``category_file``.
_WITHOUT_BUILTIN = ("bias_gender", "bias_sexual_orientation", "bias_racial", "bias_religious")


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


ActionField = Annotated[Action, BeforeValidator(_upper)]
Severity = Annotated[Literal["low", "medium", "high"], BeforeValidator(_lower)]
# defer_build: these validators are built with the first content filter, not at import (start-up cost)
_CONFIG = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True, defer_build=True)


class PatternSpec(BaseModel):
    """A prebuilt pattern by name, or a custom regular expression."""

    model_config = _CONFIG
    pattern_type: Literal["prebuilt", "regex"] = "prebuilt"
    pattern_name: str | None = Field(default=None, description="A prebuilt pattern's name.")
    pattern: str | None = Field(default=None, description="A custom regular expression (Python syntax).")
    name: str | None = Field(default=None, description="The name a custom regex is reported under.")
    action: ActionField = Action.BLOCK

    @model_validator(mode="after")
    def _complete(self) -> PatternSpec:
        if self.pattern_type == "prebuilt":
            if self.pattern_name not in PREBUILT:
                known = ", ".join(sorted(PREBUILT))
                raise ValueError(f"unknown prebuilt pattern {self.pattern_name!r}; known: {known}")
        else:
            if not self.pattern:
                raise ValueError("a regex pattern needs `pattern`")
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"`pattern` is not a valid regular expression: {exc}") from None
        return self

    @property
    def label(self) -> str:
        return (self.pattern_name if self.pattern_type == "prebuilt" else self.name or "custom_regex") or ""


class BlockedWord(BaseModel):
    """A keyword (or phrase), matched case-insensitively on word boundaries."""

    model_config = _CONFIG
    keyword: Annotated[str, Field(min_length=1)]
    action: ActionField = Action.BLOCK
    description: str | None = None


class CategorySpec(BaseModel):
    """A category of keywords and phrases from a file, with a severity threshold."""

    model_config = _CONFIG
    category: Annotated[str, Field(min_length=1)]
    enabled: bool = True
    action: ActionField = Action.BLOCK
    severity_threshold: Severity = "medium"
    category_file: str | None = None

    @model_validator(mode="after")
    def _list_exists(self) -> CategorySpec:
        if self.category_file is not None or self.category in BUILTIN_CATEGORIES:
            return self
        if self.category in _WITHOUT_BUILTIN:
            raise ValueError(
                f"routerd ships no built-in list for category {self.category!r}: give a `category_file`"
            )
        from routerd.config.issues import did_you_mean

        near = did_you_mean(self.category, BUILTIN_CATEGORIES)
        hint = f"did you mean {near!r}? " if near else ""
        raise ValueError(
            f"category {self.category!r} is not a built-in category; {hint}built-in: "
            f"{', '.join(BUILTIN_CATEGORIES)} (or give a `category_file`)"
        )


class ContentFilterParams(BaseModel):
    """The content filter's keys inside a guardrail's ``litellm_params``."""

    model_config = ConfigDict(frozen=True, extra="ignore", hide_input_in_errors=True, defer_build=True)
    patterns: list[PatternSpec] = []
    blocked_words: list[BlockedWord] = []
    blocked_words_file: str | None = None
    categories: list[CategorySpec] = []
    pattern_redaction_format: str | None = None
    keyword_redaction_tag: str | None = None

    @field_validator("pattern_redaction_format")
    @classmethod
    def _has_placeholder(cls, value: str | None) -> str | None:
        if value is not None and "{pattern_name}" not in value:
            raise ValueError("pattern_redaction_format must contain {pattern_name}")
        return value


class _Phrase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)
    phrase: Annotated[str, Field(min_length=1)]
    severity: Severity = "medium"
    match_type: Literal["exact", "fuzzy", "proximity"] = "exact"
    max_distance: Annotated[int, Field(ge=0, le=50)] = 3


class _Keyword(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)
    keyword: Annotated[str, Field(min_length=1)]
    severity: Severity = "medium"


class _CategoryFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)
    keywords: list[_Keyword] = []
    phrases: list[_Phrase] = []
    exceptions: list[str] = []


class _WordsFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)
    blocked_words: list[BlockedWord] = []


Reader = Callable[[str], Any]
"""Loads a YAML file named in the config (relative to the routing file) into plain data."""


def compile_content_filter(params: ContentFilterParams, read_yaml: Reader) -> ContentFilter:
    """Build the filter: patterns, then keywords, then categories, each in configuration order."""
    rules: list[Rule] = []
    redaction = params.pattern_redaction_format or "[{pattern_name}_REDACTED]"
    for spec in params.patterns:
        rules.append(_pattern_rule(spec, redaction))
    words = list(params.blocked_words)
    if params.blocked_words_file:
        words.extend(_WordsFile.model_validate(read_yaml(params.blocked_words_file)).blocked_words)
    keyword_tag = params.keyword_redaction_tag or "[KEYWORD_REDACTED]"
    for action in (Action.BLOCK, Action.MASK):
        chosen = [w.keyword for w in words if w.action is action]
        if chosen:
            rules.append(Rule("keyword", "keyword", _alternation(chosen, _exact), action, keyword_tag))
    for category in params.categories:
        if category.enabled:
            rules.extend(_category_rules(category, read_yaml))
    return ContentFilter(rules)


def _pattern_rule(spec: PatternSpec, redaction: str) -> Rule:
    tag = redaction.replace("{pattern_name}", spec.label.upper())
    if spec.pattern_type == "prebuilt":
        prebuilt = PREBUILT[spec.label]
        return Rule(
            spec.label,
            "pattern",
            re.compile(prebuilt.regex, prebuilt.flags),
            spec.action,
            tag,
            prebuilt.check,
            not_after=re.compile(prebuilt.not_after) if prebuilt.not_after else None,
            hints=prebuilt.hints,
            requires=_requirement(prebuilt.requires) if prebuilt.requires else None,
            digits=prebuilt.digits,
            shape=prebuilt.shape.encode("ascii"),
        )
    return Rule(spec.label, "pattern", re.compile(spec.pattern or ""), spec.action, tag)


@functools.cache
def _requirement(regex: str) -> re.Pattern[str]:
    # one compiled object per pre-check, so the rules that share it search for it once per text
    return re.compile(regex)


def _category_rules(spec: CategorySpec, read_yaml: Reader) -> list[Rule]:
    raw = read_yaml(spec.category_file) if spec.category_file else _builtin_category(spec.category)
    data = _CategoryFile.model_validate(raw)
    exceptions = _alternation(data.exceptions, _exact) if data.exceptions else None
    threshold = _SEVERITIES.index(spec.severity_threshold)
    rules: list[Rule] = []
    for severity in reversed(_SEVERITIES[threshold:]):
        alternatives = [_exact(k.keyword) for k in data.keywords if k.severity == severity]
        alternatives += [_phrase(p) for p in data.phrases if p.severity == severity]
        if alternatives:
            regex = re.compile("|".join(alternatives), re.IGNORECASE)
            rules.append(
                Rule(
                    spec.category,
                    "category",
                    regex,
                    spec.action,
                    "[CATEGORY_REDACTED]",
                    None,
                    severity,
                    exceptions,
                )
            )
    return rules


@functools.cache
def _builtin_category(name: str) -> Any:
    """One of routerd's starter lists (validated names only: see :class:`CategorySpec`)."""
    from importlib import resources

    from ruamel.yaml import YAML

    text = resources.files("routerd").joinpath(f"data/categories/{name}.yaml").read_text(encoding="utf-8")
    return YAML(typ="safe", pure=True).load(text)


def _words(text: str) -> list[str]:
    return [re.escape(word) for word in text.split()]


def _exact(text: str) -> str:
    """Whole words, any run of whitespace between them."""
    return r"(?<!\w)" + r"\s+".join(_words(text)) + r"(?!\w)"


def _phrase(phrase: _Phrase) -> str:
    words = _words(phrase.phrase)
    if phrase.match_type == "exact":
        return _exact(phrase.phrase)
    if phrase.match_type == "fuzzy":
        # each word as a stem ("plan" matches "planned"), up to two filler words between them
        return r"(?<!\w)" + r"\w*(?:\W+\w+){0,2}?\W+".join(words) + r"\w*"
    gap = rf"(?:\W+\w+){{0,{phrase.max_distance}}}?\W+"
    return r"(?<!\w)" + (r"\w*" + gap).join(words) + r"\w*"


def _alternation(items: Sequence[str], to_regex: Callable[[str], str]) -> re.Pattern[str]:
    # longest first, so "secret project" wins over "secret" where both match at one place
    ordered = sorted(set(items), key=len, reverse=True)
    return re.compile("|".join(to_regex(item) for item in ordered), re.IGNORECASE)


def read_yaml_file(base: Path, seen: dict[str, str] | None = None) -> Reader:
    """A :data:`Reader` for files relative to ``base`` (the routing file's directory), size-capped.
    ``seen`` collects each file's path and SHA-256, so a change to a word list changes the table's hash."""

    def read(name: str) -> Any:
        from ruamel.yaml import YAML

        path = (base / name).expanduser()
        if not path.is_file():
            raise ValueError(f"{name}: not a readable file")
        if path.stat().st_size > MAX_FILTER_FILE_BYTES:
            raise ValueError(f"{name}: larger than {MAX_FILTER_FILE_BYTES} bytes")
        raw = path.read_bytes()[: MAX_FILTER_FILE_BYTES + 1]
        if len(raw) > MAX_FILTER_FILE_BYTES:
            raise ValueError(f"{name}: larger than {MAX_FILTER_FILE_BYTES} bytes")
        if seen is not None:
            seen[str(path)] = hashlib.sha256(raw).hexdigest()
        data = YAML(typ="safe", pure=True).load(raw.decode("utf-8"))
        if not isinstance(data, Mapping):
            raise ValueError(f"{name}: expected a mapping at the top level")
        return data

    return read
