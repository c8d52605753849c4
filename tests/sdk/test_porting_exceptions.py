"""Porting suite: LiteLLM's exception tree. ``APIError`` is the generic error, a sibling of the others;
``openai.APIError`` catches them all (routerd's own code catches ``routerd.errors.OpenAIError``)."""

from __future__ import annotations

import sys
from typing import Any

import openai
import pytest

import routerd
from routerd import errors as core
from routerd.testing.openai_fake import Reply

HI = [{"role": "user", "content": "hi"}]

SIBLINGS = [
    "RateLimitError",
    "BadRequestError",
    "AuthenticationError",
    "PermissionDeniedError",
    "NotFoundError",
    "ContextWindowExceededError",
    "InternalServerError",
    "ServiceUnavailableError",
    "APIConnectionError",
    "Timeout",
]


def _handled_by(mock: Any) -> str:
    """Which handler of a LiteLLM-style chain catches the call's error (generic APIError first)."""
    try:
        routerd.completion(model="gpt-4o", messages=HI, mock_response=mock)
    except routerd.APIError:
        return "APIError"
    except routerd.RateLimitError:
        return "RateLimitError"
    except openai.APIError as exc:
        return f"openai.APIError:{type(exc).__name__}"
    return "none"


@pytest.mark.parametrize("name", SIBLINGS)
def test_except_api_error_placed_first_does_not_catch_the_specific_errors(name: str) -> None:
    handled = _handled_by(f"routerd.{name}")
    assert handled != "APIError"
    assert handled == ("RateLimitError" if name == "RateLimitError" else f"openai.APIError:{name}")


def test_a_generic_error_is_caught_by_except_api_error() -> None:
    assert _handled_by(ValueError("boom")) == "APIError"
    assert _handled_by("routerd.APIError") == "APIError"


def test_an_upstream_429_is_a_rate_limit_error_not_an_api_error(openai_env: Any) -> None:
    openai_env.enqueue(Reply.error(429, "Rate limit reached", code="rate_limit_exceeded"))
    with pytest.raises(routerd.RateLimitError) as info:
        routerd.completion(model="gpt-4o", messages=HI, num_retries=0)
    assert not isinstance(info.value, routerd.APIError)
    assert isinstance(info.value, openai.RateLimitError) and isinstance(info.value, openai.APIError)
    assert isinstance(info.value, routerd.OpenAIError) and isinstance(info.value, core.OpenAIError)


@pytest.mark.parametrize("name", [*SIBLINGS, "APIError"])
def test_openai_api_error_and_the_common_base_catch_every_error(name: str) -> None:
    with pytest.raises(openai.APIError) as info:
        routerd.completion(model="gpt-4o", messages=HI, mock_response=f"routerd.{name}")
    assert isinstance(info.value, routerd.OpenAIError)
    assert isinstance(info.value, core.OpenAIError)
    assert type(info.value).__name__ == name


def test_the_core_tree_has_the_same_shape() -> None:
    for name in SIBLINGS:
        cls = getattr(core, name)
        assert issubclass(cls, core.OpenAIError) and not issubclass(cls, core.APIError)
    assert issubclass(core.APIError, core.OpenAIError)
    assert core.APIError("x").status_code == 500 and core.APIError("x").type == "api_error"


def test_openai_attributes_use_the_http_library_of_the_installed_openai(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import types

    import httpx
    import httpx2

    error = routerd.RateLimitError("limited")
    installed = httpx2 if int(openai.__version__.split(".")[0]) >= 3 else httpx
    assert isinstance(error.response, installed.Response) and error.response.status_code == 429
    # openai < 3 (the range litellm 1.100 needs) carries httpx objects on its exceptions
    monkeypatch.setitem(sys.modules, "openai", types.SimpleNamespace(__version__="2.54.0"))
    older = core.RateLimitError("limited")
    assert isinstance(older.request, httpx.Request) and isinstance(older.response, httpx.Response)
    assert older.response.status_code == 429
