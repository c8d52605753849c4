"""Arguments -> body, options, timeout, headers, response_format."""

from __future__ import annotations

import httpx
import pytest
from pydantic import BaseModel

import routerd.errors
from routerd.sdk.calls import split_call_args
from routerd.sdk.params import headers_param, mock_exception, response_format_param, timeout_seconds


class Person(BaseModel):
    name: str
    age: int
    occupation: str | None = None


class Team(BaseModel):
    lead: Person
    members: list[Person]


def test_timeout_accepts_numbers_strings_and_httpx_timeouts() -> None:
    assert timeout_seconds(None) is None
    assert timeout_seconds(30) == 30.0
    assert timeout_seconds("2.5") == 2.5
    assert timeout_seconds(httpx.Timeout(10.0, read=42.0)) == 42.0
    assert timeout_seconds(httpx.Timeout(None, connect=3.0)) == 3.0
    assert timeout_seconds(httpx.Timeout(None)) is None
    for bad in (0, -1, "soon", float("inf"), True):
        with pytest.raises(routerd.errors.BadRequestError):
            timeout_seconds(bad)


def test_pydantic_response_format_becomes_a_strict_json_schema() -> None:
    param = response_format_param(Person)
    assert param["type"] == "json_schema"
    spec = param["json_schema"]
    assert spec["name"] == "Person" and spec["strict"] is True
    schema = spec["schema"]
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["name", "age", "occupation"]  # strict: every property required
    assert "default" not in schema["properties"]["occupation"]


def test_nested_models_are_closed_too() -> None:
    schema = response_format_param(Team)["json_schema"]["schema"]
    person = schema["$defs"]["Person"]
    assert person["additionalProperties"] is False
    assert set(person["required"]) == {"name", "age", "occupation"}


def test_dict_response_format_passes_unchanged() -> None:
    fmt = {"type": "json_object"}
    assert response_format_param(fmt) is fmt
    with pytest.raises(routerd.errors.BadRequestError):
        response_format_param(int)


def test_headers_merge_with_extra_headers_winning() -> None:
    assert headers_param(None, None) is None
    assert headers_param({"x-a": "1"}, {"x-a": "0", "x-b": 2}) == {"x-a": "1", "x-b": "2"}
    with pytest.raises(routerd.errors.BadRequestError):
        headers_param(["x-a"], None)


def test_mock_exception_from_instance_or_name() -> None:
    error = routerd.errors.RateLimitError("slow down")
    assert mock_exception(error, "gpt-4") is error
    named = mock_exception("litellm.RateLimitError", "gpt-4")
    assert isinstance(named, routerd.errors.RateLimitError) and named.model == "gpt-4"
    assert isinstance(mock_exception("routerd.AuthenticationError", "m"), routerd.errors.AuthenticationError)
    assert mock_exception("just an answer", "m") is None
    assert mock_exception("routerd.NotAClass", "m") is None


def test_split_call_args_sorts_body_from_options() -> None:
    body, options = split_call_args(
        {
            "messages": [{"role": "user", "content": "hi"}],
            "temperature": 0.2,
            "top_p": None,  # None is "not given"
            "api_key": "sk-secret",
            "base_url": "http://x",
            "timeout": 5,
            "extra_headers": {"x-trace": "1"},
            "vertex_project": "p",  # a deployment setting
            "verbose": False,  # LiteLLM bookkeeping, dropped
            "num_retries": 1,  # the router reads it from the body
            "mock_response": "hi",
            "custom_param": {"a": 1},  # provider specific: passes through
            "extra_body": {"top_k": 3},
            "response_format": Person,
        }
    )
    assert body["temperature"] == 0.2 and "top_p" not in body
    assert body["custom_param"] == {"a": 1} and body["top_k"] == 3
    assert body["num_retries"] == 1 and body["mock_response"] == "hi"
    assert body["response_format"]["type"] == "json_schema"
    assert "verbose" not in body and "verbose" not in options
    assert options == {
        "api_key": "sk-secret",
        "base_url": "http://x",
        "timeout": 5,
        "extra_headers": {"x-trace": "1"},
        "vertex_project": "p",
    }
