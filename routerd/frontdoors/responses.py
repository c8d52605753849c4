"""OpenAI's Responses API as a front door: ``/v1/responses`` bodies -> chat bodies, and back.

Pure and tested on stored payloads; for providers without a native Responses API.

* :func:`to_chat_request`: a validated Responses request (plus the stored conversation it continues,
  for ``previous_response_id``) -> a :class:`ResponsesCall` holding the chat body.
* :func:`to_response`: a ``chat.completion`` -> a Response object (``resp_...``).
* :func:`previous_conversation`: the stored response a request continues, from a
  :class:`~routerd.frontdoors.response_store.ResponseStore`.
* Streams: :mod:`routerd.frontdoors.responses_stream`.

Errors are routerd's OpenAI-shaped ones (:class:`~routerd.errors.BadRequestError`, 404 for an
unknown ``previous_response_id``), since Responses clients expect OpenAI's error body.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from routerd.errors import BadRequestError, NotFoundError
from routerd.frontdoors.limits import (
    MAX_BLOCKS_PER_MESSAGE,
    MAX_MESSAGES,
    MAX_METADATA_ENTRIES,
    MAX_TOOLS,
)
from routerd.frontdoors.response_items import with_ids
from routerd.frontdoors.response_store import ResponseStore, StoredResponse
from routerd.frontdoors.shape import (
    check_depth,
    need_bool,
    need_int,
    need_list,
    need_mapping,
    need_number,
    need_short,
    need_str,
    reject_unknown,
)

JSON = dict[str, Any]
_ERR = BadRequestError

#: request fields of the Responses API routerd reads (others are refused with a 400 naming them)
KNOWN_FIELDS = frozenset(
    {
        "model",
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "temperature",
        "top_p",
        "max_output_tokens",
        "reasoning",
        "text",
        "stream",
        "stream_options",
        "store",
        "previous_response_id",
        "metadata",
        "user",
        "safety_identifier",
        "prompt_cache_key",
        "service_tier",
        "truncation",
        "include",
        "background",
        "max_tool_calls",
    }
)
# Fields the chat API has under the same name and meaning: passed on unchanged.
_SAME_NAME = (
    "temperature",
    "top_p",
    "parallel_tool_calls",
    "user",
    "safety_identifier",
    "prompt_cache_key",
    "service_tier",
)
_REASONING_EFFORTS = frozenset({"none", "minimal", "low", "medium", "high", "xhigh"})
_ROLES = frozenset({"user", "assistant", "system", "developer"})
_TOOL_CHOICES = frozenset({"auto", "none", "required"})


@dataclass(frozen=True, slots=True)
class ResponsesCall:
    """A translated Responses request.

    ``chat`` is the body for the router; ``request`` the validated client body (echoed in the
    Response object); ``input_items`` the whole conversation input (previous items, then this
    request's), which is what a stored response keeps.
    """

    chat: JSON
    request: Mapping[str, Any]
    input_items: list[JSON] = field(default_factory=list)


# --- request -------------------------------------------------------------------------------------


async def previous_conversation(
    body: Mapping[str, Any], store: ResponseStore, owner: str
) -> StoredResponse | None:
    """The stored response ``previous_response_id`` names, or None when the body names none.

    Raises a 404 when it is unknown, expired or stored by another key (indistinguishable on purpose).
    """
    previous_id = body.get("previous_response_id")
    if previous_id is None:
        return None
    previous_id = need_str(previous_id, "previous_response_id", _ERR, allow_empty=False)
    stored = await store.get(previous_id, owner)
    if stored is None:
        raise NotFoundError(
            f"previous response {previous_id!r} was not found (never stored, expired, or stored by another key)",
            param="previous_response_id",
            code="previous_response_not_found",
        )
    return stored


def to_chat_request(body: Any, previous: StoredResponse | None = None) -> ResponsesCall:
    """The chat body for a Responses request; ``previous`` is what ``previous_response_id`` names."""
    request = need_mapping(body, "body", _ERR)
    reject_unknown(request, KNOWN_FIELDS, "", _ERR)
    if request.get("background"):
        raise _ERR("background responses are not supported by routerd", param="background")
    items = with_ids(_input_items(request.get("input")))
    conversation = [*(previous.conversation() if previous else []), *items]
    if len(conversation) > MAX_MESSAGES:
        raise _ERR(f"the conversation has more than {MAX_MESSAGES} items", param="input")
    messages: list[JSON] = []
    instructions = request.get("instructions")
    if instructions is not None and need_str(instructions, "instructions", _ERR):
        messages.append({"role": "system", "content": instructions})
    messages.extend(items_to_messages(conversation))
    if not messages:
        raise _ERR("input must not be empty", param="input")
    chat: JSON = {
        "model": need_str(request.get("model"), "model", _ERR, allow_empty=False),
        "messages": messages,
    }
    _sampling(request, chat)
    _tools(request, chat)
    _text_format(request, chat)
    need_bool(request.get("store"), "store", _ERR)
    if need_bool(request.get("stream"), "stream", _ERR):
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}  # response.completed reports the usage
    _metadata(request)
    return ResponsesCall(chat=chat, request=request, input_items=conversation)


def _input_items(value: Any) -> list[JSON]:
    if value is None:
        return []
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": value}]}]
    items = need_list(value, "input", MAX_MESSAGES, _ERR)
    return [dict(need_mapping(item, f"input[{i}]", _ERR)) for i, item in enumerate(items)]


def items_to_messages(items: list[JSON]) -> list[JSON]:
    """Chat messages for Responses input (and earlier output) items.

    Consecutive ``function_call`` items join the assistant message before them as its tool calls;
    ``reasoning`` items are dropped (chat has no field for earlier reasoning).
    """
    messages: list[JSON] = []
    for index, item in enumerate(items):
        where = f"input[{index}]"
        kind = item.get("type", "message")
        if kind == "message":
            messages.extend(_message(item, where))
        elif kind == "function_call":
            _add_call(messages, item, where)
        elif kind == "function_call_output":
            messages.extend(_call_output(item, where))
        elif kind == "reasoning":
            continue
        else:
            raise _ERR(
                f"input items of type {kind!r} are not supported for this model", param=f"{where}.type"
            )
    return messages


def _message(item: Mapping[str, Any], where: str) -> list[JSON]:
    role = item.get("role")
    if not isinstance(role, str) or role not in _ROLES:
        raise _ERR(f"{where}.role must be one of {', '.join(sorted(_ROLES))}", param=f"{where}.role")
    content = item.get("content")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    parts = need_list(content, f"{where}.content", MAX_BLOCKS_PER_MESSAGE, _ERR)
    chat_parts = [
        _part(need_mapping(p, f"{where}.content[{i}]", _ERR), f"{where}.content[{i}]")
        for i, p in enumerate(parts)
    ]
    if role != "user" and any(part["type"] != "text" for part in chat_parts):
        raise _ERR(f"{role} messages may hold text only", param=f"{where}.content")
    if role != "user" or all(part["type"] == "text" for part in chat_parts):
        return [{"role": role, "content": "".join(part["text"] for part in chat_parts)}]
    return [{"role": role, "content": chat_parts}]


def _part(part: Mapping[str, Any], where: str) -> JSON:
    kind = part.get("type")
    if kind in ("input_text", "output_text"):
        return {"type": "text", "text": need_str(part.get("text"), f"{where}.text", _ERR)}
    if kind == "refusal":
        return {"type": "text", "text": need_str(part.get("refusal"), f"{where}.refusal", _ERR)}
    if kind == "input_image":
        url = part.get("image_url")
        if not url:
            raise _ERR(
                "input_image needs an image_url (file_id is not supported)", param=f"{where}.image_url"
            )
        image: JSON = {"url": need_str(url, f"{where}.image_url", _ERR)}
        if part.get("detail") in ("low", "high", "auto"):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if kind == "input_file":
        file: JSON = {}
        for name in ("file_data", "file_id", "filename"):
            if part.get(name) is not None:
                file[name] = need_str(part[name], f"{where}.{name}", _ERR)
        if "file_data" not in file and "file_id" not in file:
            raise _ERR("input_file needs file_data or file_id", param=where)
        return {"type": "file", "file": file}
    raise _ERR(f"content of type {kind!r} is not supported for this model", param=f"{where}.type")


def _add_call(messages: list[JSON], item: Mapping[str, Any], where: str) -> None:
    call = {
        "id": need_str(item.get("call_id"), f"{where}.call_id", _ERR, allow_empty=False),
        "type": "function",
        "function": {
            "name": need_str(item.get("name"), f"{where}.name", _ERR, allow_empty=False),
            "arguments": need_str(item.get("arguments", ""), f"{where}.arguments", _ERR),
        },
    }
    last = messages[-1] if messages else None
    if last is not None and last["role"] == "assistant":
        last.setdefault("tool_calls", []).append(call)
    else:
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})


def _call_output(item: Mapping[str, Any], where: str) -> list[JSON]:
    call_id = need_str(item.get("call_id"), f"{where}.call_id", _ERR, allow_empty=False)
    output = item.get("output")
    if isinstance(output, str):
        return [{"role": "tool", "tool_call_id": call_id, "content": output}]
    parts = need_list(output, f"{where}.output", MAX_BLOCKS_PER_MESSAGE, _ERR)
    chat_parts = [
        _part(need_mapping(p, f"{where}.output[{i}]", _ERR), f"{where}.output[{i}]")
        for i, p in enumerate(parts)
    ]
    text = "".join(part["text"] for part in chat_parts if part["type"] == "text")
    out: list[JSON] = [{"role": "tool", "tool_call_id": call_id, "content": text}]
    others = [part for part in chat_parts if part["type"] != "text"]
    if others:  # chat tool messages hold text only: images and files follow as user content
        out.append({"role": "user", "content": others})
    return out


def _sampling(request: Mapping[str, Any], chat: JSON) -> None:
    if request.get("temperature") is not None:
        need_number(request["temperature"], "temperature", _ERR, 0.0, 2.0)
    if request.get("top_p") is not None:
        need_number(request["top_p"], "top_p", _ERR, 0.0, 1.0)
    for name in _SAME_NAME:
        if request.get(name) is not None:
            chat[name] = request[name]
    if request.get("max_output_tokens") is not None:
        chat["max_tokens"] = need_int(request["max_output_tokens"], "max_output_tokens", _ERR)
    reasoning = request.get("reasoning")
    if reasoning is not None:
        effort = need_mapping(reasoning, "reasoning", _ERR).get("effort")
        if effort is not None:
            if not isinstance(effort, str) or effort not in _REASONING_EFFORTS:
                raise _ERR(
                    f"reasoning.effort must be one of {', '.join(sorted(_REASONING_EFFORTS))}",
                    param="reasoning.effort",
                )
            chat["reasoning_effort"] = effort


def _tools(request: Mapping[str, Any], chat: JSON) -> None:
    tools = request.get("tools")
    if tools is not None:
        tools = need_list(tools, "tools", MAX_TOOLS, _ERR)
        if tools:
            chat["tools"] = [
                _tool(need_mapping(t, f"tools[{i}]", _ERR), f"tools[{i}]") for i, t in enumerate(tools)
            ]
    choice = request.get("tool_choice")
    if choice is None:
        return
    if isinstance(choice, str) and choice in _TOOL_CHOICES:
        chat["tool_choice"] = choice
    elif isinstance(choice, Mapping) and choice.get("type") == "function":
        name = need_str(choice.get("name"), "tool_choice.name", _ERR, allow_empty=False)
        chat["tool_choice"] = {"type": "function", "function": {"name": name}}
    else:
        raise _ERR("tool_choice must be auto, none, required or a function", param="tool_choice")


def _tool(tool: Mapping[str, Any], where: str) -> JSON:
    if tool.get("type") != "function":
        raise _ERR(
            f"tools of type {tool.get('type')!r} are OpenAI-hosted; only function tools reach this model",
            param=f"{where}.type",
        )
    function: JSON = {"name": need_short(tool.get("name"), f"{where}.name", _ERR)}
    if tool.get("description") is not None:
        function["description"] = need_str(tool["description"], f"{where}.description", _ERR)
    if tool.get("parameters") is not None:
        parameters = need_mapping(tool["parameters"], f"{where}.parameters", _ERR)
        check_depth(parameters, f"{where}.parameters", _ERR)
        function["parameters"] = dict(parameters)
    if tool.get("strict") is not None:
        function["strict"] = bool(tool["strict"])
    return {"type": "function", "function": function}


def _text_format(request: Mapping[str, Any], chat: JSON) -> None:
    text = request.get("text")
    if text is None:
        return
    text = need_mapping(text, "text", _ERR)
    if text.get("verbosity") is not None:
        chat["verbosity"] = text["verbosity"]
    fmt = text.get("format")
    if fmt is None:
        return
    fmt = need_mapping(fmt, "text.format", _ERR)
    kind = fmt.get("type")
    if kind == "json_object":
        chat["response_format"] = {"type": "json_object"}
    elif kind == "json_schema":
        schema = need_mapping(fmt.get("schema"), "text.format.schema", _ERR)
        check_depth(schema, "text.format.schema", _ERR)
        json_schema: JSON = {
            "name": need_str(fmt.get("name"), "text.format.name", _ERR, allow_empty=False),
            "schema": dict(schema),
        }
        for name in ("strict", "description"):
            if fmt.get(name) is not None:
                json_schema[name] = fmt[name]
        chat["response_format"] = {"type": "json_schema", "json_schema": json_schema}
    elif kind != "text":
        raise _ERR("text.format.type must be text, json_object or json_schema", param="text.format.type")


def _metadata(request: Mapping[str, Any]) -> None:
    metadata = request.get("metadata")
    if metadata is None:
        return
    metadata = need_mapping(metadata, "metadata", _ERR)
    if len(metadata) > MAX_METADATA_ENTRIES:
        raise _ERR(f"metadata has more than {MAX_METADATA_ENTRIES} entries", param="metadata")
    for key, value in metadata.items():
        if len(key) > 64 or len(need_str(value, f"metadata.{key}", _ERR)) > 512:
            raise _ERR("metadata keys hold at most 64 characters, values 512", param=f"metadata.{key}")


# --- answer --------------------------------------------------------------------------------------


def new_response_id() -> str:
    """A fresh ``resp_...`` id (random: stored responses are looked up by it)."""
    return "resp_" + secrets.token_hex(24)


def item_id(prefix: str, response_id: str, index: int) -> str:
    """The id of output item ``index`` of a response: ``msg_``/``fc_``/``rs_`` + the response's hex."""
    return f"{prefix}_{response_id.removeprefix('resp_')}{index:03d}"


def response_usage(usage: Any) -> JSON:
    """Responses ``usage`` from chat ``usage``."""
    usage = usage if isinstance(usage, Mapping) else {}
    prompt_details = usage.get("prompt_tokens_details")
    completion_details = usage.get("completion_tokens_details")
    cached = int((prompt_details or {}).get("cached_tokens") or usage.get("cache_read_input_tokens") or 0)
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    return {
        "input_tokens": prompt,
        "input_tokens_details": {
            "cached_tokens": cached,
            "cache_write_tokens": int(usage.get("cache_creation_input_tokens") or 0),
        },
        "output_tokens": completion,
        "output_tokens_details": {
            "reasoning_tokens": int((completion_details or {}).get("reasoning_tokens") or 0)
        },
        "total_tokens": int(usage.get("total_tokens") or prompt + completion),
    }


#: chat finish_reason -> Responses ``incomplete_details.reason`` (the others complete the response)
INCOMPLETE_REASONS: Mapping[str, str] = {"length": "max_output_tokens", "content_filter": "content_filter"}


def response_object(
    call: ResponsesCall,
    *,
    response_id: str,
    created_at: float,
    model: str,
    status: str,
    output: list[JSON],
    usage: JSON | None = None,
    incomplete_reason: str | None = None,
    error: JSON | None = None,
) -> JSON:
    """A Response object; the request's settings are echoed as OpenAI does."""
    request = call.request
    reasoning = request.get("reasoning") or {}
    text = dict(request.get("text") or {})
    text.setdefault("format", {"type": "text"})
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "error": error,
        "incomplete_details": {"reason": incomplete_reason} if incomplete_reason else None,
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "model": model,
        "output": output,
        "parallel_tool_calls": request.get("parallel_tool_calls", True),
        "previous_response_id": request.get("previous_response_id"),
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "store": request.get("store", True),
        "temperature": request.get("temperature"),
        "text": text,
        "tool_choice": request.get("tool_choice", "auto"),
        "tools": list(request.get("tools") or []),
        "top_p": request.get("top_p"),
        "truncation": request.get("truncation", "disabled"),
        "usage": usage,
        "user": request.get("user"),
        "metadata": dict(request.get("metadata") or {}),
    }


def to_response(
    completion: Mapping[str, Any],
    call: ResponsesCall,
    *,
    response_id: str | None = None,
    created_at: float | None = None,
    model: str | None = None,
) -> JSON:
    """The Response object for a ``chat.completion`` (its first choice)."""
    response_id = response_id or new_response_id()
    choice = (completion.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    output: list[JSON] = []
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        output.append(reasoning_item(item_id("rs", response_id, len(output)), reasoning))
    text = message.get("content")
    if isinstance(text, list):
        text = "".join(str(part.get("text", "")) for part in text if isinstance(part, Mapping))
    if text or message.get("refusal"):
        output.append(
            message_item(item_id("msg", response_id, len(output)), text or "", message.get("refusal"))
        )
    for call_ in message.get("tool_calls") or []:
        function = call_.get("function") or {}
        output.append(
            function_call_item(
                item_id("fc", response_id, len(output)),
                str(call_.get("id") or ""),
                str(function.get("name") or ""),
                str(function.get("arguments") or ""),
            )
        )
    reason = INCOMPLETE_REASONS.get(str(choice.get("finish_reason")))
    return response_object(
        call,
        response_id=response_id,
        created_at=created_at if created_at is not None else int(time.time()),
        model=model or str(completion.get("model") or call.chat["model"]),
        status="incomplete" if reason else "completed",
        output=output,
        usage=response_usage(completion.get("usage")),
        incomplete_reason=reason,
    )


def message_item(item_id_: str, text: str, refusal: Any = None, *, status: str = "completed") -> JSON:
    """An assistant ``message`` output item with one ``output_text`` (or ``refusal``) part."""
    if refusal:
        content: list[JSON] = [{"type": "refusal", "refusal": str(refusal)}]
    else:
        content = [output_text_part(text)]
    return {"id": item_id_, "type": "message", "role": "assistant", "status": status, "content": content}


def output_text_part(text: str) -> JSON:
    """An ``output_text`` content part."""
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def function_call_item(
    item_id_: str, call_id: str, name: str, arguments: str, *, status: str = "completed"
) -> JSON:
    """A ``function_call`` output item."""
    return {
        "id": item_id_,
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }


def reasoning_item(item_id_: str, text: str, *, status: str = "completed") -> JSON:
    """A ``reasoning`` output item carrying the model's reasoning text (no summary is made)."""
    return {
        "id": item_id_,
        "type": "reasoning",
        "status": status,
        "summary": [],
        "content": [{"type": "reasoning_text", "text": text}],
    }
