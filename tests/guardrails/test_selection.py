"""The guardrails a request names (routerd.guardrails.selection): read as the chat path's gate reads
them, and taken out of a front door's body before it is translated or sent natively."""

from __future__ import annotations

from typing import Any

import pytest

from routerd.errors import BadRequestError
from routerd.frontdoors.anthropic_errors import AnthropicRequestError
from routerd.guardrails.selection import (
    MAX_REQUESTED_GUARDRAILS,
    check_selection,
    selection_of,
    take_selection,
)


def test_the_body_field_wins_over_the_metadata_one() -> None:
    assert selection_of({"guardrails": ["a"], "metadata": {"guardrails": ["b"]}}) == ["a"]
    assert selection_of({"guardrails": None, "metadata": {"guardrails": ["b"]}}) == ["b"]
    assert selection_of({"metadata": {"user_id": "u"}}) is None
    assert selection_of({"metadata": "not an object"}) is None


def test_a_body_without_a_selection_is_returned_as_it_is() -> None:
    body = {"model": "m", "metadata": {"user_id": "u"}}
    assert take_selection(body) == (body, None)
    assert take_selection(body)[0] is body  # no copy on the common path
    assert take_selection(["not", "an", "object"]) == (["not", "an", "object"], None)


@pytest.mark.parametrize(
    ("body", "rest", "names"),
    [
        ({"model": "m", "guardrails": ["a"]}, {"model": "m"}, ["a"]),
        ({"model": "m", "metadata": {"guardrails": ["a"]}}, {"model": "m"}, ["a"]),
        (
            {"model": "m", "metadata": {"user_id": "u", "guardrails": ["a"]}},
            {"model": "m", "metadata": {"user_id": "u"}},
            ["a"],
        ),
        (
            {"guardrails": ["a"], "metadata": {"guardrails": ["b"], "team": "t"}},
            {"metadata": {"team": "t"}},
            ["a"],
        ),
        ({"model": "m", "guardrails": None}, {"model": "m"}, None),
        ({"model": "m", "guardrails": []}, {"model": "m"}, []),
    ],
)
def test_the_selection_is_taken_out_of_the_body_and_its_metadata(
    body: dict[str, Any], rest: dict[str, Any], names: list[str] | None
) -> None:
    original = {k: dict(v) if isinstance(v, dict) else v for k, v in body.items()}
    assert take_selection(body) == (rest, names)
    assert body == original  # the client's body is not changed in place


@pytest.mark.parametrize(
    "names",
    ["a", {"a": True}, [1], ["a", None], ["a"] * (MAX_REQUESTED_GUARDRAILS + 1)],
    ids=["string", "object", "number", "null", "too-many"],
)
def test_a_bad_selection_is_the_doors_400(names: Any) -> None:
    with pytest.raises(AnthropicRequestError) as refused:
        take_selection({"metadata": {"guardrails": names}}, AnthropicRequestError)
    assert refused.value.status_code == 400 and refused.value.param == "guardrails"
    with pytest.raises(BadRequestError):
        check_selection(names)


def test_the_most_names_a_request_may_give() -> None:
    names = [f"g{i}" for i in range(MAX_REQUESTED_GUARDRAILS)]
    assert check_selection(names) == names
    with pytest.raises(BadRequestError, match=f"at most {MAX_REQUESTED_GUARDRAILS} guardrails"):
        check_selection([*names, "one-more"])
