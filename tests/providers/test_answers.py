"""The shape check of upstream 200 answers (routerd.providers.answers.malformed), from a table."""

from __future__ import annotations

from typing import Any

import pytest

from routerd.providers.answers import malformed

CHAT_OK = {
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}]
}
TEXT_OK = {"choices": [{"index": 0, "text": "hi", "finish_reason": "stop"}]}
USAGE = {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}

CASES: list[tuple[str, str, Any, str | None]] = [
    ("chat answer", "chat", {**CHAT_OK, "usage": USAGE}, None),
    ("chat answer, usage null", "chat", {**CHAT_OK, "usage": None}, None),
    ("chat answer, content null (tool calls)", "chat", {"choices": [{"message": {"content": None}}]}, None),
    ("text answer", "completions", TEXT_OK, None),
    ("text answer, text null", "completions", {"choices": [{"text": None}]}, None),
    ("embeddings", "embeddings", {"data": [{"embedding": [0.1]}], "usage": USAGE}, None),
    ("empty object", "chat", {}, "'choices' is missing"),
    ("choices a string", "chat", {"choices": "nope"}, "'choices' is missing"),
    ("no choices", "chat", {"choices": []}, "'choices' is missing"),
    ("choice not an object", "chat", {"choices": [1]}, "non-object"),
    ("chat choice without message", "chat", {"choices": [{"text": "x"}]}, "'message'"),
    ("text choice text a number", "completions", {"choices": [{"text": 3}]}, "'text'"),
    ("usage a string", "chat", {**CHAT_OK, "usage": "x"}, "'usage' is not an object"),
    ("prompt_tokens a string", "chat", {**CHAT_OK, "usage": {"prompt_tokens": "x"}}, "usage.prompt_tokens"),
    (
        "completion_tokens a bool",
        "chat",
        {**CHAT_OK, "usage": {"completion_tokens": True}},
        "usage.completion_tokens",
    ),
    ("a list", "chat", [CHAT_OK], "not a JSON object"),
    ("embeddings without data", "embeddings", {"object": "list"}, "'data'"),
    ("embeddings data of numbers", "embeddings", {"data": [0.1]}, "non-object"),
]


@pytest.mark.parametrize(("endpoint", "body", "problem"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed(endpoint: str, body: Any, problem: str | None) -> None:
    found = malformed(endpoint, body)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found
