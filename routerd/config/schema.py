"""The JSON Schema of the routing file, generated from the pydantic models (``routerd schema``).

Editors load it through the ``# yaml-language-server: $schema=...`` modeline for completion and
checking as you type. Two adjustments over pydantic's output make it describe the file as routerd
reads it:

* every number or boolean may also be an ``os.environ/NAME`` reference;
* LiteLLM keys that routerd accepts but ignores are listed (so editors do not flag them), each marked
  as ignored in its description.
"""

from __future__ import annotations

import json
from typing import Any

from routerd.config import keys
from routerd.config.models import Config

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

_ENV_REF = {
    "type": "string",
    "pattern": "^os\\.environ/.+",
    "description": "The value of an environment variable, read when the file is loaded.",
}

# (the $defs entry, the ignored keys of its section)
_IGNORED = {
    "Config": keys.IGNORED_TOP_LEVEL,
    "RouterSettings": keys.IGNORED_ROUTER_SETTINGS,
    "LiteLLMSettings": keys.IGNORED_LITELLM_SETTINGS,
    "GeneralSettings": keys.IGNORED_GENERAL_SETTINGS,
}


def config_json_schema() -> dict[str, Any]:
    """The schema as a dict."""
    schema = Config.model_json_schema(mode="validation")
    defs: dict[str, Any] = schema.setdefault("$defs", {})
    for name, ignored in _IGNORED.items():
        target = schema if name == "Config" else defs[name]
        properties = target.setdefault("properties", {})
        for key, note in sorted(ignored.items()):
            properties.setdefault(
                key, {"description": f"LiteLLM setting accepted but not acted on ({note})."}
            )
    _allow_env_refs(schema)
    defs["EnvReference"] = _ENV_REF
    return {"$schema": SCHEMA_DIALECT, **schema}


def render_schema() -> str:
    """The schema as the text of ``schemas/config.schema.json`` (stable key order, final newline)."""
    return json.dumps(config_json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _allow_env_refs(node: Any) -> None:
    """Let every integer, number and boolean also be written as ``os.environ/NAME``."""
    if isinstance(node, list):
        for item in node:
            _allow_env_refs(item)
        return
    if not isinstance(node, dict):
        return
    for key, value in list(node.items()):
        if isinstance(value, dict) and value.get("type") in ("integer", "number", "boolean"):
            node[key] = {"anyOf": [value, {"$ref": "#/$defs/EnvReference"}]}
        elif isinstance(value, list) and key in ("anyOf", "oneOf"):
            replaced = []
            for item in value:
                if isinstance(item, dict) and item.get("type") in ("integer", "number", "boolean"):
                    replaced.extend([item, {"$ref": "#/$defs/EnvReference"}])
                else:
                    _allow_env_refs(item)
                    replaced.append(item)
            node[key] = replaced
        else:
            _allow_env_refs(value)
