"""Request-body checks: required fields, types, and the 400s that name the field."""

from __future__ import annotations

import pytest

from routerd.errors import BadRequestError
from routerd.server.validation import validate_body

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


def _error(endpoint: str, body: object) -> BadRequestError:
    with pytest.raises(BadRequestError) as caught:
        validate_body(endpoint, body)
    return caught.value


def test_valid_chat_passes_through_unknown_fields_untouched() -> None:
    body = {**CHAT, "temperature": 0.2, "brand_new_openai_param": {"x": 1}, "stop": None}
    assert validate_body("chat", body) is body


@pytest.mark.parametrize(
    ("endpoint", "body", "param"),
    [
        ("chat", {"messages": CHAT["messages"]}, "model"),
        ("chat", {"model": "m"}, "messages"),
        ("completions", {"model": "m"}, "prompt"),
        ("embeddings", {"model": "m"}, "input"),
    ],
)
def test_missing_required_field_is_named(endpoint: str, body: dict[str, object], param: str) -> None:
    err = _error(endpoint, body)
    assert err.param == param
    assert err.status_code == 400
    assert f"'{param}'" in err.message


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("temperature", "hot", "'temperature' must be a number, got a string"),
        ("n", 0, "'n' must be an integer >= 1, got a number"),
        ("stream", "yes", "'stream' must be a boolean, got a string"),
        ("max_tokens", 1.5, "'max_tokens' must be an integer, got a number"),
        ("stop", [1, 2], "'stop' must be a string or an array of strings, got an array"),
        ("tools", {}, "'tools' must be an array, got an object"),
        ("seed", True, "'seed' must be an integer, got a boolean"),
    ],
)
def test_mistyped_field_is_named(field: str, value: object, expected: str) -> None:
    err = _error("chat", {**CHAT, field: value})
    assert err.message == expected
    assert err.param == field
    assert err.code == "invalid_type"


def test_body_must_be_an_object() -> None:
    assert _error("chat", [CHAT]).message == "request body must be a JSON object"


def test_messages_are_checked_one_by_one() -> None:
    assert _error("chat", {"model": "m", "messages": []}).param == "messages"
    assert _error("chat", {"model": "m", "messages": ["hi"]}).param == "messages[0]"
    err = _error("chat", {"model": "m", "messages": [{"role": "user", "content": "a"}, {"role": "robot"}]})
    assert err.param == "messages[1].role"
    err = _error("chat", {"model": "m", "messages": [{"role": "user", "content": 42}]})
    assert err.param == "messages[0].content"


@pytest.mark.parametrize("prompt", ["hi", ["a", "b"], [1, 2, 3], [[1, 2], [3]]])
def test_prompt_shapes_accepted(prompt: object) -> None:
    validate_body("completions", {"model": "m", "prompt": prompt})


@pytest.mark.parametrize("prompt", [{"text": "hi"}, ["a", 1], 5])
def test_prompt_shapes_rejected(prompt: object) -> None:
    assert _error("completions", {"model": "m", "prompt": prompt}).param == "prompt"


def test_empty_model_rejected() -> None:
    assert _error("embeddings", {"model": "", "input": "x"}).param == "model"
