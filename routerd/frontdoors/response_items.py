"""Input items of stored responses: stable ids, and the ``GET /v1/responses/{id}/input_items`` page.

Clients may send input items without ids; each gets one when the request is translated, so the
stored conversation can be listed and paged by id later, as OpenAI's API does.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from routerd.errors import BadRequestError
from routerd.frontdoors.response_store import StoredResponse

JSON = dict[str, Any]

#: id prefix of each input item type (others get ``item_``)
ITEM_PREFIXES: Mapping[str, str] = {
    "message": "msg",
    "function_call": "fc",
    "function_call_output": "fco",
    "reasoning": "rs",
}
#: items per page of ``input_items`` when the client names no limit, and at most (OpenAI's values)
LIST_DEFAULT_LIMIT = 20
LIST_MAX_LIMIT = 100


def with_ids(items: list[JSON]) -> list[JSON]:
    """Copies of ``items`` with a ``type`` (``message`` when only a role says so) and an ``id`` each."""
    out = []
    for item in items:
        item = dict(item)
        kind = str(item.setdefault("type", "message"))
        if not isinstance(item.get("id"), str) or not item["id"]:
            item["id"] = f"{ITEM_PREFIXES.get(kind, 'item')}_{secrets.token_hex(12)}"
        out.append(item)
    return out


def input_items_page(
    stored: StoredResponse, *, after: str | None = None, limit: int | None = None, order: str = "desc"
) -> JSON:
    """One page of a stored response's input items, in OpenAI's list shape.

    ``order`` is ``asc`` (oldest first) or ``desc`` (newest first, OpenAI's default); ``after`` is
    the id of the last item of the previous page.
    """
    if order not in ("asc", "desc"):
        raise BadRequestError("order must be asc or desc", param="order")
    limit = LIST_DEFAULT_LIMIT if limit is None else limit
    if not 1 <= limit <= LIST_MAX_LIMIT:
        raise BadRequestError(f"limit must be between 1 and {LIST_MAX_LIMIT}", param="limit")
    items = [listed_item(item) for item in stored.input_items]
    if order == "desc":
        items.reverse()
    start = 0
    if after is not None:
        ids = [item["id"] for item in items]
        if after not in ids:
            raise BadRequestError(f"no input item {after!r} in this response", param="after")
        start = ids.index(after) + 1
    page = items[start : start + limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else "",
        "last_id": page[-1]["id"] if page else "",
        "has_more": start + limit < len(items),
    }


def listed_item(item: Mapping[str, Any]) -> JSON:
    """An input item as the list endpoint shows it: content as parts, a status where one is due."""
    out = dict(item)
    kind = out.get("type")
    if kind == "message":
        assistant = out.get("role") == "assistant"
        content = out.get("content")
        if isinstance(content, str):
            content = [{"type": "output_text" if assistant else "input_text", "text": content}]
        if assistant:
            content = [_output_part(part) for part in content or []]
        out["content"] = content
        out.setdefault("status", "completed")
    elif kind in ("function_call", "function_call_output"):
        out.setdefault("status", "completed")
    elif kind == "reasoning":
        out.setdefault("summary", [])
    return out


def _output_part(part: Mapping[str, Any]) -> JSON:
    if part.get("type") == "input_text":  # an assistant turn written by the client with input parts
        return {"type": "output_text", "text": part.get("text", ""), "annotations": []}
    if part.get("type") == "output_text":
        return {"annotations": [], **part}
    return dict(part)
