"""Master-key checks on both headers OpenAI clients send."""

from __future__ import annotations

import pytest
from starlette.datastructures import Headers
from starlette.requests import Request

from routerd.errors import AuthenticationError
from routerd.server.auth import presented_key, require_key


def _request(headers: dict[str, str]) -> Headers:
    """The headers as Starlette's routes see them (the inference fast path passes a plain dict)."""
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    return Request({"type": "http", "method": "GET", "path": "/", "headers": raw}).headers


@pytest.mark.parametrize(
    ("headers", "key"),
    [
        ({"Authorization": "Bearer sk-abc"}, "sk-abc"),
        ({"authorization": "bearer  sk-abc "}, "sk-abc"),
        ({"api-key": "sk-abc"}, "sk-abc"),
        ({"x-api-key": "sk-abc"}, "sk-abc"),
        ({"Authorization": "Basic Zm9v"}, None),
        ({}, None),
    ],
)
def test_presented_key(headers: dict[str, str], key: str | None) -> None:
    assert presented_key(_request(headers)) == key


def test_no_master_key_means_open() -> None:
    require_key(_request({}), None)


def test_right_key_passes_and_wrong_key_is_401() -> None:
    require_key(_request({"Authorization": "Bearer sk-right"}), "sk-right")
    with pytest.raises(AuthenticationError) as caught:
        require_key(_request({"Authorization": "Bearer sk-wrong"}), "sk-right")
    assert caught.value.status_code == 401
    assert "sk-wrong" not in caught.value.message
    assert "sk-right" not in caught.value.message
    with pytest.raises(AuthenticationError):
        require_key(_request({}), "sk-right")


def test_plain_dict_of_lower_case_headers_works_too() -> None:
    require_key({"authorization": "Bearer sk-right"}, "sk-right")
    with pytest.raises(AuthenticationError):
        require_key({"api-key": "sk-wrong"}, "sk-right")
