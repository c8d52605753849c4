"""OpenAI's Responses API (``POST /v1/responses``) for the fake OpenAI upstream: answers and streams.

The default answer echoes the last user text of ``input`` (``"echo: <text>"``). When the request
has function tools and its input does not end with a ``function_call_output``, the model "calls" the
first tool with ``{}`` as its arguments, so tool round trips can be tested without a script. Like the
real API, a ``previous_response_id`` the fake never stored is refused (a 400) -- it stores nothing.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping
from typing import Any

import orjson

from routerd.tokens import estimate_tokens

JSON = dict[str, Any]


def _last_user_text(items: Any) -> str:
    if isinstance(items, str):
        return items
    for item in reversed(items if isinstance(items, list) else []):
        if not isinstance(item, Mapping) or item.get("role") != "user":
            continue
        content = item.get("content")
        if isinstance(content, str):
            return content
        texts = [p.get("text", "") for p in content or [] if isinstance(p, Mapping) and "text" in p]
        return " ".join(texts)
    return ""


def _tool_call(body: Mapping[str, Any]) -> str | None:
    """The name of the tool the fake model calls, if it calls one."""
    tools = [t for t in body.get("tools") or [] if isinstance(t, Mapping) and t.get("type") == "function"]
    items = body.get("input")
    last = items[-1] if isinstance(items, list) and items else None
    if not tools or (isinstance(last, Mapping) and last.get("type") == "function_call_output"):
        return None
    return str(tools[0].get("name") or "")


def response_error(message: str, param: str | None = None, status: int = 400) -> tuple[int, JSON]:
    return status, {
        "error": {"message": message, "type": "invalid_request_error", "param": param, "code": None}
    }


def check_request(body: Any) -> tuple[int, JSON] | None:
    """A 400 for a body the real API would refuse; None when it is fine."""
    if not isinstance(body, Mapping) or not isinstance(body.get("model"), str):
        return response_error("model is required", "model")
    if body.get("previous_response_id") is not None:
        return response_error(
            f"Previous response with id '{body['previous_response_id']}' not found.", "previous_response_id"
        )
    if body.get("input") is None:
        return response_error("input is required", "input")
    return None


def answer(body: Mapping[str, Any], text: str | None = None) -> JSON:
    """The Response object for ``body`` (completed)."""
    response_id = "resp_fake" + secrets.token_hex(12)
    tool = _tool_call(body)
    if tool is not None:
        output: list[JSON] = [
            {
                "id": "fc_" + secrets.token_hex(8),
                "type": "function_call",
                "status": "completed",
                "call_id": "call_" + secrets.token_hex(8),
                "name": tool,
                "arguments": "{}",
            }
        ]
        out_text = "{}"
    else:
        out_text = text if text is not None else "echo: " + _last_user_text(body.get("input"))
        output = [_message(out_text)]
    input_tokens = estimate_tokens(orjson.dumps(body.get("input")).decode())
    output_tokens = estimate_tokens(out_text)
    return {
        "id": response_id,
        "object": "response",
        "created_at": 1_700_000_000,
        "status": "completed",
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": body["model"],
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": body.get("store", True),
        "temperature": body.get("temperature"),
        "text": {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": list(body.get("tools") or []),
        "top_p": body.get("top_p"),
        "truncation": "disabled",
        "usage": {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens,
        },
        "user": body.get("user"),
        "metadata": dict(body.get("metadata") or {}),
    }


def _message(text: str) -> JSON:
    return {
        "id": "msg_" + secrets.token_hex(8),
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def events(final: JSON) -> Iterator[JSON]:
    """The typed events of a stream that ends with ``final`` (text split in two deltas)."""
    skeleton = {**final, "status": "in_progress", "output": [], "usage": None}
    sequence = iter(range(1_000_000))

    def event(kind: str, **fields: Any) -> JSON:
        return {"type": kind, "sequence_number": next(sequence), **fields}

    yield event("response.created", response=skeleton)
    yield event("response.in_progress", response=skeleton)
    for index, item in enumerate(final["output"]):
        yield event("response.output_item.added", output_index=index, item={**item, "status": "in_progress"})
        if item["type"] == "message":
            text = item["content"][0]["text"]
            part = {"type": "output_text", "text": "", "annotations": []}
            common = {"item_id": item["id"], "output_index": index, "content_index": 0}
            yield event("response.content_part.added", **common, part=part)
            half = len(text) // 2
            for piece in (text[:half], text[half:]):
                yield event("response.output_text.delta", **common, delta=piece, logprobs=[])
            yield event("response.output_text.done", **common, text=text, logprobs=[])
            yield event("response.content_part.done", **common, part={**part, "text": text})
        elif item["type"] == "function_call":
            common = {"item_id": item["id"], "output_index": index}
            yield event("response.function_call_arguments.delta", **common, delta=item["arguments"])
            yield event("response.function_call_arguments.done", **common, arguments=item["arguments"])
        yield event("response.output_item.done", output_index=index, item=item)
    yield event("response.completed", response=final)


def encode(event: Mapping[str, Any]) -> bytes:
    """One event as the API writes it: ``event: <type>`` then its JSON."""
    return b"event: " + str(event["type"]).encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"
