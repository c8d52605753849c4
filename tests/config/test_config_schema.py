"""The committed JSON Schema is generated from the models and must be current."""

from __future__ import annotations

import json
from pathlib import Path

from routerd.config import keys
from routerd.config.schema import config_json_schema, render_schema

COMMITTED = Path(__file__).resolve().parents[2] / "schemas" / "config.schema.json"


def test_committed_schema_is_current() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == render_schema(), (
        "schemas/config.schema.json is stale: run `routerd schema` and commit the result"
    )


def test_schema_describes_the_file_as_routerd_reads_it() -> None:
    schema = config_json_schema()
    defs = schema["$defs"]
    assert set(schema["properties"]) >= {"model_list", "router_settings", "litellm_settings", "include"}
    assert schema["additionalProperties"] is False and "^x-" in schema["patternProperties"]
    assert defs["DeploymentSpec"]["required"] == ["model_name", "litellm_params"]
    # numbers may be os.environ/ references
    rpm = json.dumps(defs["LiteLLMParams"]["properties"]["rpm"])
    assert '"#/$defs/EnvReference"' in rpm and defs["EnvReference"]["pattern"] == "^os\\.environ/.+"
    # LiteLLM's accepted-but-ignored keys are known to editors, and say so
    assert set(keys.IGNORED_ROUTER_SETTINGS) <= set(defs["RouterSettings"]["properties"])
    assert "not acted on" in defs["LiteLLMSettings"]["properties"]["set_verbose"]["description"]
    strategies = json.dumps(defs["RouterSettings"]["properties"]["routing_strategy"])
    assert all(s in strategies for s in keys.ROUTING_STRATEGIES)
