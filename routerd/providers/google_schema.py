"""JSON Schema (as OpenAI clients write it) -> the OpenAPI subset Gemini's ``Schema`` accepts.

Function parameters and ``responseSchema`` are ``Schema`` objects: ``type`` (an enum), ``format``,
``title``, ``description``, ``nullable``, ``enum``, ``items``, ``properties``, ``required``,
``anyOf``, ``propertyOrdering``, bounds and ``default``/``example``. Requests carrying JSON Schema
keywords outside that set (``additionalProperties``, ``$schema``, ``$ref``...) are refused upstream,
so they are translated where a translation exists and removed where none does:

* ``$ref`` into ``$defs`` / ``definitions`` is inlined (recursive schemas cannot be, and are refused);
* ``"type": ["string", "null"]`` and ``anyOf: [..., {"type": "null"}]`` become ``nullable: true``;
* ``const`` becomes a one-value ``enum``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from routerd.errors import BadRequestError

JSON = dict[str, Any]

_KEPT = frozenset(
    {
        "format",
        "title",
        "description",
        "nullable",
        "enum",
        "maxItems",
        "minItems",
        "minProperties",
        "maxProperties",
        "minLength",
        "maxLength",
        "pattern",
        "example",
        "propertyOrdering",
        "default",
        "minimum",
        "maximum",
    }
)
_MAX_DEPTH = 32


def to_gemini_schema(schema: Mapping[str, Any]) -> JSON:
    """``schema`` in the form Gemini's ``Schema`` accepts."""
    definitions = {**(schema.get("definitions") or {}), **(schema.get("$defs") or {})}
    return _convert(schema, definitions, 0, ())


def _convert(
    schema: Mapping[str, Any], definitions: Mapping[str, Any], depth: int, refs: tuple[str, ...]
) -> JSON:
    if depth > _MAX_DEPTH:
        raise BadRequestError("JSON schema nests too deeply for Gemini", param="tools")
    ref = schema.get("$ref")
    if isinstance(ref, str):
        name = ref.rsplit("/", 1)[-1]
        if name in refs:
            raise BadRequestError(f"Gemini does not accept recursive schemas ($ref {ref})", param="tools")
        if name not in definitions:
            raise BadRequestError(f"unresolvable $ref {ref} in JSON schema", param="tools")
        merged = {**definitions[name], **{k: v for k, v in schema.items() if k != "$ref"}}
        return _convert(merged, definitions, depth + 1, (*refs, name))

    out: JSON = {k: v for k, v in schema.items() if k in _KEPT}
    if "const" in schema:
        out["enum"] = [schema["const"]]
    kind = schema.get("type")
    if isinstance(kind, list):
        non_null = [k for k in kind if k != "null"]
        if len(non_null) < len(kind):
            out["nullable"] = True
        kind = non_null[0] if len(non_null) == 1 else None
        if len(non_null) > 1:
            out["anyOf"] = [{"type": str(k).upper()} for k in non_null]
    if isinstance(kind, str):
        out["type"] = kind.upper()
    if "enum" in out and "type" not in out:
        out["type"] = "STRING"  # Gemini enums are string enums
    if "enum" in out:
        out["enum"] = [str(v) for v in out["enum"]]

    properties = schema.get("properties")
    if isinstance(properties, Mapping):
        out["properties"] = {
            name: _convert(value, definitions, depth + 1, refs) for name, value in properties.items()
        }
        out.setdefault("type", "OBJECT")
        required = [name for name in schema.get("required") or [] if name in properties]
        if required:
            out["required"] = required
    items = schema.get("items")
    if isinstance(items, Mapping):
        out["items"] = _convert(items, definitions, depth + 1, refs)
        out.setdefault("type", "ARRAY")
    variants = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(variants, list):
        non_null = [v for v in variants if not (isinstance(v, Mapping) and v.get("type") == "null")]
        if len(non_null) < len(variants):
            out["nullable"] = True
        converted = [_convert(v, definitions, depth + 1, refs) for v in non_null if isinstance(v, Mapping)]
        if len(converted) == 1:
            out.update({k: v for k, v in converted[0].items() if k not in out or k == "type"})
        elif converted:
            out["anyOf"] = converted
    return out
