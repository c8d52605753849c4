"""Malformed client JSON in the Anthropic and Gemini request translators is a 400, never a 500 (issue 21, L7).

Every nested value of a rich, valid chat request is replaced, one at a time, by values of every other
JSON type; each translation must either succeed or raise BadRequestError.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest

from routerd.config.table import Deployment
from routerd.errors import BadRequestError
from routerd.providers.anthropic import AnthropicAdapter
from routerd.providers.anthropic_wire import chat_payload
from routerd.providers.base import UpstreamRequest, get_adapter
from routerd.providers.gemini import GeminiAdapter

VALID: dict[str, Any] = {
    "model": "m",
    "messages": [
        {"role": "system", "content": [{"type": "text", "text": "be brief"}]},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {"url": "https://example.test/a.png"}},
            ],
        },
        {
            "role": "assistant",
            "content": "calling",
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "42"}]},
    ],
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "f",
                "description": "d",
                "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}},
            },
        }
    ],
    "tool_choice": {"type": "function", "function": {"name": "f"}},
    "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
}
WRONG: tuple[Any, ...] = ("x", 5, [], {}, [1], ["s"], True)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*path, key)
            yield from _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield (*path, index)
            yield from _paths(item, (*path, index))


def _mutated(path: tuple[Any, ...], wrong: Any) -> dict[str, Any]:
    body = copy.deepcopy(VALID)
    target: Any = body
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = wrong
    return body


MUTATIONS = [(path, wrong) for path in _paths(VALID) if path != ("model",) for wrong in WRONG]


def _deployment(provider: str, model: str) -> Deployment:
    deployment = Deployment(
        provider=provider,
        model=model,
        id=f"{provider}-{model}",
        group="g",
        litellm_model=f"{provider}/{model}",
        api_key="sk-shape-test",
        api_base="http://127.0.0.1:9",
    )
    return replace(deployment, prepared=get_adapter(provider).prepare(deployment))


def _anthropic(body: dict[str, Any]) -> object:
    adapter = get_adapter("anthropic")
    assert isinstance(adapter, AnthropicAdapter)
    request = UpstreamRequest(deployment=_deployment("anthropic", "claude-sonnet-4-5"), body=body, timeout=5)
    target = request.deployment.prepared
    return chat_payload(request, target.params, target.errors, stream=False)


def _gemini(body: dict[str, Any]) -> object:
    adapter = get_adapter("gemini")
    assert isinstance(adapter, GeminiAdapter)
    request = UpstreamRequest(deployment=_deployment("gemini", "gemini-2.0-flash"), body=body, timeout=5)
    return adapter._payload(request)


TRANSLATE: dict[str, Callable[[dict[str, Any]], object]] = {"anthropic": _anthropic, "gemini": _gemini}


@pytest.mark.parametrize("provider", sorted(TRANSLATE))
def test_the_valid_request_translates(provider: str) -> None:
    assert TRANSLATE[provider](copy.deepcopy(VALID))


@pytest.mark.parametrize("provider", sorted(TRANSLATE))
def test_every_wrongly_typed_field_is_a_400_or_accepted(provider: str) -> None:
    refused = 0
    for path, wrong in MUTATIONS:
        try:
            TRANSLATE[provider](_mutated(path, wrong))
        except BadRequestError as exc:
            assert exc.status_code == 400
            refused += 1
        except Exception as exc:  # pragma: no cover - the failure this test exists for
            pytest.fail(f"{provider}: {path} = {wrong!r} raised {type(exc).__name__}: {exc}")
    assert refused > len(MUTATIONS) // 4  # the mutations do reach the checks


@pytest.mark.parametrize("provider", sorted(TRANSLATE))
@pytest.mark.parametrize(
    ("path", "wrong", "param"),
    [
        (("messages", 2, "tool_calls"), "nope", "messages[2].tool_calls"),
        (("messages", 2, "tool_calls", 0), "nope", "messages[2].tool_calls[0]"),
        (("messages", 2, "tool_calls", 0, "function"), 7, "messages[2].tool_calls[0].function"),
        (("messages", 1, "content", 0), "part", "messages[1].content[0]"),
        (("tools", 0, "function"), "f", "tools[0].function"),
    ],
)
def test_malformed_tool_calls_and_content_name_the_field(
    provider: str, path: tuple[Any, ...], wrong: Any, param: str
) -> None:
    with pytest.raises(BadRequestError) as caught:
        TRANSLATE[provider](_mutated(path, wrong))
    assert caught.value.param == param
