"""Pass 1 of validation: sort every key of the raw tree before the schema sees it.

The rule (docs/configuration.md, "Compatibility with LiteLLM"): every file LiteLLM serves, routerd
serves, with warnings; a problem that would make a request fail or misroute is an error. So:

* a key that looks like a typo of a known key *of the same section* stays an error (left in place for
  the schema pass, which reports it with a did-you-mean);
* a LiteLLM key routerd accepts but does not act on is a warning ("accepted but not acted on");
* any other unknown key is a warning and is removed; when it is a known key of another section, the
  warning says where it belongs (LiteLLM ignores it where it is, and so does routerd);
* LiteLLM's own normalisations are applied: deployment-level ``tpm``/``rpm`` move into
  ``litellm_params``; ``drop_params`` given as a list is ignored with a warning.

``routerd check --strict`` turns every warning into a failure, for CI.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from routerd.config import keys
from routerd.config.issues import Issue, YamlPath, closest_typo
from routerd.config.loader import LoadedConfig
from routerd.config.models import (
    Config,
    DeploymentSpec,
    GeneralSettings,
    LiteLLMParams,
    LiteLLMSettings,
    ModelInfoSpec,
    ProviderSettingsSpec,
    RouterSettings,
)

# deployment-level keys LiteLLM itself moves into litellm_params (and then enforces)
_MOVED_INTO_PARAMS = ("tpm", "rpm")

_SECTION_MODELS: dict[str, type[BaseModel]] = {
    "": Config,
    "router_settings": RouterSettings,
    "litellm_settings": LiteLLMSettings,
    "general_settings": GeneralSettings,
}


def _known(section: str) -> frozenset[str]:
    return frozenset(_SECTION_MODELS[section].model_fields) | frozenset(keys.IGNORED_BY_SECTION[section])


def _homes() -> dict[str, tuple[str, ...]]:
    """Every known key -> the places it belongs, for "belongs under ..." hints."""
    places: dict[str, list[str]] = {}
    for section in _SECTION_MODELS:
        for key in _known(section):
            places.setdefault(key, []).append(section or "the top level")
    for key in LiteLLMParams.model_fields:
        places.setdefault(key, []).append("litellm_params")
    for key in ModelInfoSpec.model_fields:
        places.setdefault(key, []).append("model_info")
    return {key: tuple(dict.fromkeys(where)) for key, where in places.items()}


HOMES = _homes()


@dataclass
class Triage:
    """Pass 1 over a deep copy of the loaded tree; ``issues`` collects what it found."""

    loaded: LoadedConfig
    issues: list[Issue] = field(default_factory=list)

    def run(self, data: dict[str, Any]) -> dict[str, Any]:
        for key in [k for k in data if k.startswith("x-")]:
            del data[key]  # a place for YAML anchors, as in docker compose files
        for path, message in keys.REJECTED_SETTINGS.items():
            section = data.get(path[0])
            if isinstance(section, dict) and path[1] in section:
                self.issues.append(self.loaded.marks.issue(path, message, at_key=True))
                del section[path[1]]
        custom = self._custom_provider_map(data.get("litellm_settings"))
        self._section(data, "", ())
        for name in ("router_settings", "litellm_settings", "general_settings"):
            section = data.get(name)
            if isinstance(section, dict):
                self._section(section, name, (name,))
        self._drop_params_list(data)
        for index, entry in _dict_items(data.get("model_list")):
            self._deployment(entry, ("model_list", index))
            self._unsupported(entry, ("model_list", index), custom)
        for name in ("files_settings", "finetune_settings"):
            for index, entry in _dict_items(data.get(name)):
                self._reject_typos(entry, (name, index), ProviderSettingsSpec, frozenset())
        return data

    # -- sections ----------------------------------------------------------------------------------

    def _section(self, mapping: dict[str, Any], name: str, path: YamlPath) -> None:
        fields = _SECTION_MODELS[name].model_fields
        ignored = keys.IGNORED_BY_SECTION[name]
        lookalikes = keys.LOOKALIKES.get(name, {})
        for key in list(mapping):
            if key in fields:
                continue
            where = (*path, key)
            if key in ignored:
                self._warn(where, f"accepted but not acted on ({ignored[key]})")
            elif key in lookalikes:
                self._warn(where, lookalikes[key])
            elif closest_typo(key, fields) is not None:
                continue  # left for the schema pass: an error with a did-you-mean
            else:
                self._warn(where, _unknown_note(key, name, ignored))
            del mapping[key]

    def _deployment(self, entry: dict[str, Any], base: YamlPath) -> None:
        params = entry.get("litellm_params")
        for key in _MOVED_INTO_PARAMS:
            if key in entry and isinstance(params, dict):
                value = entry.pop(key)
                if key in params:
                    self._warn((*base, key), f"{key} is also set in litellm_params, which wins; ignored here")
                else:
                    params[key] = value
                    self._warn(
                        (*base, key), f"moved into litellm_params.{key} (as LiteLLM does) and enforced there"
                    )
        fields = DeploymentSpec.model_fields
        for key in list(entry):
            if key in fields or key in LiteLLMParams.model_fields or closest_typo(key, fields) is not None:
                continue  # known, misplaced litellm_params key (an error: it would misroute), or a typo
            self._warn((*base, key), _unknown_note(key, "deployment", {}))
            del entry[key]
        if isinstance(params, dict):
            self._reject_typos(
                params, (*base, "litellm_params"), LiteLLMParams, keys.PASSTHROUGH_PARAMS, self._params_note
            )
        info = entry.get("model_info")
        if isinstance(info, dict):
            self._reject_typos(info, (*base, "model_info"), ModelInfoSpec, keys.MODEL_INFO_KEYS)

    def _custom_provider_map(self, section: Any) -> frozenset[str]:
        """Provider names a file registers with Python handlers; routerd cannot run those handlers."""
        if not isinstance(section, dict) or "custom_provider_map" not in section:
            return frozenset()
        raw = section.pop("custom_provider_map")
        items = raw if isinstance(raw, list) else []
        names = frozenset(
            str(item["provider"]) for item in items if isinstance(item, dict) and item.get("provider")
        )
        listed = ", ".join(sorted(names)) or "none"
        self._warn(
            ("litellm_settings", "custom_provider_map"),
            f"custom provider handlers are Python code routerd does not run; deployments of {listed} "
            "load but answer every call with a 400",
        )
        return names

    def _unsupported(self, entry: dict[str, Any], path: YamlPath, custom: frozenset[str]) -> None:
        """A deployment of a LiteLLM feature routerd does not serve: a warning now, a clear 400 when
        called (its group still loads, so the rest of the file is served as LiteLLM serves it)."""
        params = entry.get("litellm_params")
        if not isinstance(params, dict) or not isinstance(params.get("model"), str):
            return
        reason = _unsupported_reason(params, entry.get("model_info"), custom)
        if reason is None:
            return
        name = entry.get("model_name")
        message = f"model group {name!r}: {reason}; routerd does not serve it yet"
        self._warn(
            (*path, "litellm_params", "model"), f"{reason}; this deployment answers every call with a 400"
        )
        kept = {k: params[k] for k in ("rpm", "tpm", "weight", "order") if k in params}
        entry["litellm_params"] = {
            "model": "mock/" + params["model"].replace("*", "_"),
            "mock_error_status": 400,
            "mock_error_code": keys.UNSUPPORTED_CODE,
            "mock_error_message": message,
            **kept,
        }
        info = entry.get("model_info")
        if isinstance(info, dict):
            info.pop("mode", None)

    def _params_note(self, mapping: dict[str, Any], path: YamlPath, key: str) -> bool:
        """``drop_params`` as a list: LiteLLM warns and ignores it. True when the key was handled."""
        if key == "drop_params" and isinstance(mapping.get(key), list):
            self._warn((*path, key), _DROP_PARAMS_LIST)
            del mapping[key]
            return True
        return False

    def _drop_params_list(self, data: dict[str, Any]) -> None:
        for section in ("litellm_settings", "router_settings"):
            mapping = data.get(section)
            if isinstance(mapping, dict) and isinstance(mapping.get("drop_params"), list):
                self._warn((section, "drop_params"), _DROP_PARAMS_LIST)
                del mapping["drop_params"]

    def _reject_typos(
        self,
        mapping: dict[str, Any],
        path: YamlPath,
        model: type[BaseModel],
        passthrough: frozenset[str],
        special: Callable[[dict[str, Any], YamlPath, str], bool] | None = None,
    ) -> None:
        known = [*model.model_fields, *passthrough]
        for key in list(mapping):
            if special is not None and special(mapping, path, key):
                continue
            if key in model.model_fields or key in passthrough:
                continue
            near = closest_typo(key, known)
            if near is not None:
                self.issues.append(
                    self.loaded.marks.issue((*path, key), f"unknown key; did you mean {near!r}?", at_key=True)
                )
                del mapping[key]

    def _warn(self, path: YamlPath, message: str) -> None:
        self.issues.append(self.loaded.marks.issue(path, message, severity="warning", at_key=True))


_DROP_PARAMS_LIST = (
    "drop_params is true or false; a list is ignored (as LiteLLM does) -- "
    "to drop particular parameters, list them in litellm_params.additional_drop_params"
)


def _unsupported_reason(params: dict[str, Any], info: Any, custom: frozenset[str]) -> str | None:
    """Why a deployment names a LiteLLM feature routerd does not serve, or None."""
    model: str = params["model"]
    provider = params.get("custom_llm_provider")
    prefix, slash, rest = model.partition("/")
    named = provider if isinstance(provider, str) else prefix if slash else None
    if named in custom:
        return (
            f"provider {named!r} is registered through litellm_settings.custom_provider_map "
            "(a Python handler)"
        )
    mode = info.get("mode") if isinstance(info, dict) else None
    if isinstance(mode, str) and mode in keys.UNSUPPORTED_MODES:
        return f"mode: {mode} ({keys.UNSUPPORTED_MODES[mode]})"
    if named in keys.AUDIO_PROVIDERS:
        return f"{named!r} serves audio models"
    bare = rest if slash else model
    for start, what in keys.AUDIO_IMAGE_MODEL_PREFIXES:
        if bare.startswith(start):
            return f"{bare!r} is a model for {what}"
    return None


def _unknown_note(key: str, section: str, ignored: Mapping[str, str]) -> str:
    """The warning for a key that is neither known here nor a typo of a key known here."""
    if key in _SECTION_MODELS and key:
        return f"{key} is a section of its own at the top level of the file; ignored here"
    homes = [h for h in HOMES.get(key, ()) if h != (section or "the top level")]
    if homes:
        return f"{key} belongs under {' or '.join(homes)}; ignored here (as LiteLLM does)"
    near = closest_typo(key, ignored)
    if near is not None:
        return f"not a setting routerd knows; did you mean {near!r}? (ignored either way)"
    return "not a setting routerd knows; ignored"


def _dict_items(value: Any) -> list[tuple[int, dict[str, Any]]]:
    if not isinstance(value, list):
        return []
    return [(i, v) for i, v in enumerate(value) if isinstance(v, dict)]
