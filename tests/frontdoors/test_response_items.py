"""Listing a stored response's input items, validated as the openai package's ResponseItemList."""

from __future__ import annotations

import pytest
from openai.types.responses import ResponseItemList

from routerd.errors import BadRequestError
from routerd.frontdoors.response_items import LIST_DEFAULT_LIMIT, LIST_MAX_LIMIT, input_items_page
from routerd.frontdoors.response_store import StoredResponse
from routerd.frontdoors.responses import to_chat_request
from tests.frontdoors.conftest import load


def stored() -> StoredResponse:
    call = to_chat_request(load("responses/request_full.json"))
    return StoredResponse({"output": []}, call.input_items)


def test_items_list_in_openai_shape_newest_first() -> None:
    record = stored()
    page = input_items_page(record)
    parsed = ResponseItemList.model_validate(page)
    assert [item.type for item in parsed.data] == [
        "message",
        "function_call_output",
        "function_call_output",
        "function_call",
        "function_call",
        "message",
        "message",
    ]
    assert parsed.first_id == record.input_items[-1]["id"] and not parsed.has_more
    assert parsed.data[-2].content[0].text == "Checking."  # type: ignore[union-attr]


def test_paging_ascending() -> None:
    record = stored()
    ids = [item["id"] for item in record.input_items]
    first = input_items_page(record, order="asc", limit=3)
    assert [item["id"] for item in first["data"]] == ids[:3] and first["has_more"]
    second = input_items_page(record, order="asc", limit=3, after=first["last_id"])
    assert [item["id"] for item in second["data"]] == ids[3:6] and second["has_more"]
    last = input_items_page(record, order="asc", limit=3, after=second["last_id"])
    assert [item["id"] for item in last["data"]] == ids[6:] and not last["has_more"]
    ResponseItemList.model_validate(last)


@pytest.mark.parametrize(
    ("options", "param"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": LIST_MAX_LIMIT + 1}, "limit"),
        ({"order": "up"}, "order"),
        ({"after": "nope"}, "after"),
    ],
)
def test_bad_list_parameters(options: dict[str, object], param: str) -> None:
    with pytest.raises(BadRequestError) as caught:
        input_items_page(stored(), **options)  # type: ignore[arg-type]
    assert caught.value.param == param


def test_default_limit() -> None:
    items = [
        {"type": "message", "id": f"msg_{i}", "role": "user", "content": "x"}
        for i in range(LIST_DEFAULT_LIMIT + 5)
    ]
    page = input_items_page(StoredResponse({"output": []}, items))
    assert len(page["data"]) == LIST_DEFAULT_LIMIT and page["has_more"]
