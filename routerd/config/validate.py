"""Stage 2: check the loaded tree against the schema and report every problem at once.

Three passes, each adding :class:`Issue` records located through the loader's source map:

1. *Key triage* on the raw tree (:mod:`routerd.config.triage`): typos of known keys stay errors;
   LiteLLM keys routerd does not act on, and other unknown or misplaced keys, become warnings.
2. *Schema*: each section and each ``model_list`` entry is validated on its own by the pydantic models,
   so one bad deployment does not hide the problems of the others. pydantic errors are mapped back
   to the file: ``file:line:col: yaml.path: message``, with a did-you-mean for unknown keys and values.
3. *Cross-checks* (:mod:`routerd.config.checks`): providers, weights, ids, aliases, fallbacks.

A config with any error never reaches the compiler.
"""

from __future__ import annotations

import copy
import functools
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError, create_model

from routerd.access.spec import KeySpec, TeamSpec
from routerd.config import keys
from routerd.config.checks import Parts, cross_check
from routerd.config.frozen import is_secret_key
from routerd.config.issues import Issue, YamlPath, did_you_mean, format_path, suggestion
from routerd.config.loader import LoadedConfig
from routerd.config.models import (
    SECTIONS,
    Config,
    DeploymentSpec,
    GeneralSettings,
    LiteLLMParams,
    LiteLLMSettings,
    ProviderSettingsSpec,
    RouterSettings,
)
from routerd.config.triage import Triage
from routerd.guardrails.config import GuardrailSpec

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Validated:
    """The result of stage 2: the validated :class:`Config` (None when there are errors) and every issue."""

    config: Config | None
    loaded: LoadedConfig
    errors: tuple[Issue, ...] = ()
    warnings: tuple[Issue, ...] = ()

    @property
    def ok(self) -> bool:
        return self.config is not None and not self.errors


def validate(loaded: LoadedConfig) -> Validated:
    """Validate a loaded tree. Never raises for problems in the file; they are in the result."""
    if not loaded.usable:
        return Validated(None, loaded, tuple(loaded.errors), tuple(loaded.warnings))
    run = _Run(loaded)
    triage = Triage(loaded)
    data = triage.run(copy.deepcopy(loaded.data))
    run.issues.extend(triage.issues)
    parts = run.schema(data)
    run.issues.extend(cross_check(parts))
    errors = [*loaded.errors, *(i for i in run.issues if i.severity == "error")]
    warnings = [*loaded.warnings, *(i for i in run.issues if i.severity == "warning")]
    config = None if errors or run.salvaged else _assemble(parts)
    return Validated(config, loaded, _in_file_order(errors, loaded), _in_file_order(warnings, loaded))


def _in_file_order(issues: Iterable[Issue], loaded: LoadedConfig) -> tuple[Issue, ...]:
    """Issues by file (in the order the files were read), then by position."""
    rank = {name: index for index, name in enumerate(loaded.files)}
    return tuple(sorted(issues, key=lambda i: (rank.get(i.file, len(rank)), i.line, i.col)))


def _assemble(parts: Parts) -> Config:
    # every part was validated by its own model (schema() below): assembled as it is, not revalidated
    return Config.model_construct(
        model_list=tuple(spec for _, spec in parts.deployments),
        router_settings=parts.router or RouterSettings(),
        litellm_settings=parts.litellm or LiteLLMSettings(),
        general_settings=parts.general or GeneralSettings(),
        environment_variables=dict(parts.loaded.file_env),
        finetune_settings=tuple(spec for _, spec in parts.finetune),
        files_settings=tuple(spec for _, spec in parts.files),
        guardrails=tuple(spec for _, spec in parts.guardrails),
        keys=tuple(spec for _, spec in parts.keys),
        teams=tuple(spec for _, spec in parts.teams),
    )


@dataclass
class _Run:
    loaded: LoadedConfig
    issues: list[Issue] = field(default_factory=list)
    salvaged: bool = False  # some part was validated with its bad keys removed: no config may be built

    # -- pass 2: schema -----------------------------------------------------------------------------

    def schema(self, data: dict[str, Any]) -> Parts:
        top = {k: v for k, v in data.items() if k not in _PART_KEYS and not (v is None and k in SECTIONS)}
        self._check(top_level_model(), top, ())
        parts = Parts(loaded=self.loaded, raw=data)
        parts.router = self._section(RouterSettings, data, "router_settings")
        parts.litellm = self._section(LiteLLMSettings, data, "litellm_settings")
        parts.general = self._section(GeneralSettings, data, "general_settings")
        parts.deployments = self._entries(DeploymentSpec, data, "model_list")
        parts.files = self._entries(ProviderSettingsSpec, data, "files_settings")
        parts.finetune = self._entries(ProviderSettingsSpec, data, "finetune_settings")
        parts.guardrails = self._entries(GuardrailSpec, data, "guardrails")
        parts.keys = self._entries(KeySpec, data, "keys")
        parts.teams = self._entries(TeamSpec, data, "teams")
        raw_list = data.get("model_list")
        if isinstance(raw_list, list):
            parts.raw_group_names = [
                e["model_name"]
                for e in raw_list
                if isinstance(e, dict) and isinstance(e.get("model_name"), str)
            ]
        return parts

    def _section(self, model: type[M], data: dict[str, Any], name: str) -> M | None:
        value = data.get(name)
        if value is None:
            return model()
        return self._check(model, value, (name,))

    def _entries(self, model: type[M], data: dict[str, Any], name: str) -> list[tuple[int, M]]:
        value = data.get(name)
        if value is None:
            return []
        if not isinstance(value, list):
            self.issues.append(self.loaded.marks.issue((name,), f"expected a list, got {_kind(value)}"))
            return []
        out = []
        for index, entry in enumerate(value):
            checked = self._check(model, entry, (name, index))
            if checked is not None:
                out.append((index, checked))
        return out

    def _check(self, model: type[M], value: Any, prefix: YamlPath) -> M | None:
        """``value`` validated as ``model``; on errors, reports them and returns a *salvaged* instance
        (the offending keys removed) when one can be built, so cross-checks still see the rest."""
        try:
            return model.model_validate(value)
        except ValidationError as exc:
            self.issues.extend(self._map_errors(exc, prefix))
            self.salvaged = True
            trimmed = _without_error_keys(value, exc)
        if trimmed is None:
            return None
        try:
            return model.model_validate(trimmed)
        except ValidationError:
            return None

    def _map_errors(self, exc: ValidationError, prefix: YamlPath) -> list[Issue]:
        marks = self.loaded.marks
        found: dict[str, Issue] = {}
        for error in exc.errors(include_url=False):
            loc = (*prefix, *error["loc"])
            path, rest = _existing_path(self.loaded.data, loc)
            if any(_starts_with(path, u) for u in self.loaded.unresolved_paths):
                continue  # the unset variable was reported; its placeholder is not worth a second error
            kind = error["type"]
            if kind == "missing" and rest and isinstance(rest[0], str):
                shown, where = (*path, rest[0]), marks.value(path)
            elif kind == "extra_forbidden":
                shown, where = path, marks.key(path)
            else:
                shown, where = path, marks.value(path)
            rendered = format_path(shown)
            if rendered in found:
                continue  # the members of a union each report; the first one is enough
            message = self._message(error, loc, path)
            found[rendered] = Issue.at(where, rendered, message)
        return list(found.values())

    def _message(self, error: Any, loc: YamlPath, path: YamlPath) -> str:
        kind: str = error["type"]
        ctx = error.get("ctx") or {}
        value = error.get("input")
        secret = path in self.loaded.secret_paths or any(
            is_secret_key(p) or p == "environment_variables" for p in path
        )
        got = _describe(value, secret)
        if kind == "missing":
            return "required key is missing"
        if kind == "extra_forbidden":
            key = str(loc[-1])
            if len(loc) == 3 and loc[0] == "model_list" and key in LiteLLMParams.model_fields:
                return f"unknown key; {key} belongs under litellm_params"
            return "unknown key" + suggestion(key, _candidates_at(loc[:-1]))
        if kind == "literal_error":
            allowed = _literal_values_at(loc)
            what = _LITERAL_NOUNS.get(str(loc[-1]), "value")
            text = f"unknown {what} {got}"
            near = did_you_mean(str(value), allowed) if isinstance(value, str) and not secret else None
            if near:
                return f"{text}; did you mean {near!r}?"
            return f"{text}; expected one of: {', '.join(allowed)}"
        if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
            op = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}[
                kind
            ]
            bound = next(iter(ctx.values()), "?")
            shown = f"{bound:g}" if isinstance(bound, float) else bound
            return f"must be {op} {shown}, got {got}"
        if kind == "string_too_short":
            return "must not be empty"
        if kind == "value_error":
            return str(error["msg"]).removeprefix("Value error, ")
        expected = _EXPECTED.get(kind)
        if expected:
            return f"expected {expected}, got {got}"
        return str(error["msg"])


@functools.cache
def top_level_model() -> type[BaseModel]:
    """:class:`Config` without its sections (``_PART_KEYS``): what the file's other top-level keys
    (``environment_variables``, ``include``, unknown keys) are checked with, with Config's own fields
    and settings. Checking them with Config itself would build the validators of every section's
    models (guardrails, keys, teams...) for a file that has none of them."""
    fields: dict[str, Any] = {
        name: (info.annotation, info) for name, info in Config.model_fields.items() if name not in _PART_KEYS
    }
    config = Config.model_config.copy()
    config.pop("defer_build", None)  # built here, on first use
    return create_model("ConfigTopLevel", __config__=config, **fields)


_PART_KEYS = frozenset(
    {
        "model_list",
        "router_settings",
        "litellm_settings",
        "general_settings",
        "files_settings",
        "finetune_settings",
        "guardrails",
        "keys",
        "teams",
    }
)

_LITERAL_NOUNS = {"routing_strategy": "routing strategy", "custom_llm_provider": "provider"}

_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
    "tuple_type": "a list",
}


def _without_error_keys(value: Any, exc: ValidationError) -> Any:
    """A copy of ``value`` without the mapping keys pydantic complained about, or None when an error
    is not one a removal can fix (a missing required key, a wrong type at the top)."""
    if not isinstance(value, dict):
        return None
    trimmed = copy.deepcopy(value)
    for error in exc.errors(include_url=False):
        if error["type"] == "missing":
            return None
        parent: Any = trimmed
        target: tuple[dict[str, Any], str] | None = None
        for part in error["loc"]:
            if isinstance(parent, dict) and isinstance(part, str) and part in parent:
                target = (parent, part)
                parent = parent[part]
            elif isinstance(parent, list) and isinstance(part, int) and 0 <= part < len(parent):
                parent = parent[part]
            else:
                break
        if target is None:
            return None
        target[0].pop(target[1], None)
    return trimmed


def _dict_items(value: Any) -> list[tuple[int, dict[str, Any]]]:
    if not isinstance(value, list):
        return []
    return [(i, v) for i, v in enumerate(value) if isinstance(v, dict)]


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _describe(value: Any, secret: bool) -> str:
    """A short rendering of an offending value; only its kind when it may be a secret."""
    if secret or isinstance(value, dict | list) or value is None:
        return _kind(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    return repr(value)


def _starts_with(path: YamlPath, prefix: YamlPath) -> bool:
    return path[: len(prefix)] == prefix


def _existing_path(root: Any, loc: YamlPath) -> tuple[YamlPath, YamlPath]:
    """The longest prefix of pydantic's ``loc`` that exists in the file's tree, and the rest.

    pydantic's locations follow the *validated* shape; two places differ from the file: union
    members add a type tag (dropped, as it is not in the tree), and fallbacks written as a list of
    one-key mappings are validated as one mapping (the list item holding the key is found again).
    """
    node = root
    path: list[str | int] = []
    for index, part in enumerate(loc):
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_dict or in_list:
            node = node[part]
            path.append(part)
        elif isinstance(node, list) and isinstance(part, str):
            holder = next((i for i, item in enumerate(node) if isinstance(item, dict) and part in item), None)
            if holder is None:
                return tuple(path), loc[index:]
            node = node[holder][part]
            path.extend((holder, part))
        else:
            return tuple(path), loc[index:]
    return tuple(path), ()


def _unwrap(tp: Any) -> Any:
    """``Annotated[X, ...]`` and ``X | None`` -> ``X``."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(members) != 1:
                return tp
            tp = members[0]
        else:
            return tp


def _type_at(loc: YamlPath) -> Any:
    """The declared type at a pydantic location, walking from :class:`Config`; None if unknown."""
    tp: Any = Config
    for part in loc:
        tp = _unwrap(tp)
        origin = typing.get_origin(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel) and isinstance(part, str):
            field_info = tp.model_fields.get(part)
            if field_info is None:
                return None
            tp = field_info.annotation
        elif origin in (tuple, list) and isinstance(part, int):
            tp = typing.get_args(tp)[0]
        elif origin is dict and isinstance(part, str):
            tp = typing.get_args(tp)[1]
        else:
            return None
    return _unwrap(tp)


def _candidates_at(loc: YamlPath) -> list[str]:
    """Valid keys of the mapping at ``loc`` (for did-you-mean), LiteLLM's accepted keys included."""
    tp = _type_at(loc)
    names = list(tp.model_fields) if isinstance(tp, type) and issubclass(tp, BaseModel) else []
    section = str(loc[0]) if len(loc) == 1 else "" if not loc else None
    if section is not None and section in keys.IGNORED_BY_SECTION:
        names.extend(keys.IGNORED_BY_SECTION[section])
    return names


def _literal_values_at(loc: YamlPath) -> list[str]:
    tp = _type_at(loc)
    if typing.get_origin(tp) is typing.Literal:
        return [str(v) for v in typing.get_args(tp)]
    return []
