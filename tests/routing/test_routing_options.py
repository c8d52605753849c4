from __future__ import annotations

import pytest

from routerd.errors import BadRequestError
from routerd.routing.options import DEFAULT_OPTIONS, split_request


def test_a_plain_body_is_passed_through_without_a_copy() -> None:
    body = {"model": "g", "messages": [], "mock_response": "hi", "stream": True}
    out, options = split_request(body)
    assert out is body and options is DEFAULT_OPTIONS


def test_router_keys_are_parsed_and_removed() -> None:
    body = {
        "model": "g",
        "messages": [],
        "mock_response": "kept",
        "num_retries": 4,
        "fallbacks": ["x", {"model": "y", "messages": []}],
        "context_window_fallbacks": ["big"],
        "content_policy_fallbacks": [],
        "disable_fallbacks": False,
        "timeout": 12,
        "metadata": {"user": "u"},
        "tags": ["paid"],
        "mock_testing_fallbacks": True,
    }
    out, options = split_request(body)
    assert out == {"model": "g", "messages": [], "mock_response": "kept"}
    assert "num_retries" in body  # the caller's dict is not modified
    assert options.num_retries == 4
    assert options.fallbacks == ("x", "y")
    assert options.context_window_fallbacks == ("big",)
    assert options.content_policy_fallbacks == ()
    assert options.timeout == 12.0 and options.tags == ("paid",)
    assert options.mock_failure == "InternalServerError"
    assert options.fallback_bodies == {}  # an empty messages list replaces nothing
    replaced = split_request({"model": "g", "fallbacks": [{"model": "y", "messages": [{"role": "user"}]}]})[1]
    assert replaced.body_for("y", {"messages": [], "n": 1}) == {"messages": [{"role": "user"}], "n": 1}
    assert replaced.body_for("x", out) is out


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("num_retries", -1),
        ("num_retries", "3"),
        ("num_retries", True),
        ("fallbacks", "gpt-4"),
        ("fallbacks", [3]),
        ("disable_fallbacks", "yes"),
        ("timeout", 0),
        ("timeout", "10"),
        ("tags", "paid"),
    ],
)
def test_invalid_router_keys_are_client_errors_naming_the_param(key: str, value: object) -> None:
    with pytest.raises(BadRequestError) as info:
        split_request({"model": "g", key: value})
    assert info.value.param == key
