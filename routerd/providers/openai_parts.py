"""Reading the parts of an OpenAI chat request, for adapters that translate it to another API.

Shared by the Anthropic and Google translations: ``data:`` URLs of images and files, assistant
tool-call arguments, ``stop``, text content, and the upstream headers worth keeping.
"""

from __future__ import annotations

import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from routerd.errors import BadRequestError


def keep_headers(headers: Mapping[str, str], names: Mapping[str, str]) -> dict[str, str]:
    """Upstream headers worth keeping, renamed: ``names`` maps upstream name -> routerd name."""
    kept = {}
    for upstream_name, our_name in names.items():
        value = headers.get(upstream_name)
        if value is not None:
            kept[our_name] = value
    return kept


@dataclass(frozen=True, slots=True)
class DataURL:
    """A ``data:<media type>;base64,<data>`` URL, split; ``data`` stays base64 text."""

    media_type: str
    data: str


def parse_data_url(url: str) -> DataURL | None:
    """The parts of a base64 ``data:`` URL; None when ``url`` is not one (an http URL, say)."""
    if not url.startswith("data:"):
        return None
    header, sep, data = url[5:].partition(",")
    if not sep or not header.endswith(";base64"):
        raise BadRequestError("image data URLs must be base64 encoded (data:<type>;base64,<data>)")
    media_type = header[: -len(";base64")] or "application/octet-stream"
    try:  # cheap validation of the alphabet only; the upstream checks the image itself
        binascii.a2b_base64(data[:64] + "=" * (-len(data[:64]) % 4))
    except binascii.Error as exc:
        raise BadRequestError("image data URL holds invalid base64") from exc
    return DataURL(media_type.split(";", 1)[0].strip().lower(), data)


def parse_tool_arguments(arguments: Any, *, param: str = "messages") -> Any:
    """An assistant tool call's ``arguments`` (a JSON string in OpenAI's format) as a value."""
    if arguments is None or arguments == "":
        return {}
    if not isinstance(arguments, str):
        return arguments  # already an object: some clients send it parsed
    try:
        return orjson.loads(arguments)
    except orjson.JSONDecodeError as exc:
        raise BadRequestError("tool call arguments must be a JSON string of an object", param=param) from exc


def content_text(content: Any) -> str:
    """The text of an OpenAI message ``content`` (a string or a list of parts), parts joined."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, Mapping) and part.get("type") == "text"
        )
    return str(content)


def stop_list(stop: Any) -> list[str]:
    """OpenAI ``stop`` (a string or a list of strings) as a list."""
    if stop is None:
        return []
    if isinstance(stop, str):
        return [stop]
    return [str(s) for s in stop]


@dataclass(frozen=True, slots=True)
class DeploymentParams:
    """What a deployment's provider-specific ``litellm_params`` add to every call (see
    docs/providers.md, "Provider-specific parameters"), for adapters that translate the body:

    * OpenAI-shaped defaults (``temperature``, ``max_tokens``, ``top_k``...) under the client's own
      values, before translation;
    * ``additional_drop_params``: keys removed from every request, before translation;
    * ``extra_body``: fields merged into the *translated* body (they are in the upstream's terms);
    * ``headers`` / ``extra_headers``: added to every upstream call (credentials always win).
    """

    defaults: Mapping[str, Any]
    drop_keys: frozenset[str]
    extra_body: Mapping[str, Any]
    headers: Mapping[str, str]

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any]) -> DeploymentParams:
        from routerd.providers.openai import body_defaults  # the one list of keys that are not body

        drop = extra.get("additional_drop_params")
        extra_body = extra.get("extra_body")
        headers: dict[str, str] = {}
        for key in ("headers", "extra_headers"):
            value = extra.get(key)
            if isinstance(value, Mapping):
                headers.update({str(k).lower(): str(v) for k, v in value.items() if v is not None})
        return cls(
            defaults=body_defaults({k: v for k, v in extra.items() if k != "extra_body"}),
            drop_keys=frozenset(drop) if isinstance(drop, list | tuple) else frozenset(),
            extra_body=dict(extra_body) if isinstance(extra_body, Mapping) else {},
            headers=headers,
        )

    def client_body(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The client's OpenAI body with the deployment's defaults and drops applied."""
        merged = {**self.defaults, **body} if self.defaults else dict(body)
        for key in self.drop_keys.intersection(merged):
            del merged[key]
        return merged

    def upstream_body(self, translated: dict[str, Any]) -> dict[str, Any]:
        """The translated body with ``extra_body`` merged in."""
        if self.extra_body:
            translated.update(self.extra_body)
        return translated
