"""Anthropic's Messages API as a front door: ``/v1/messages`` bodies -> OpenAI chat bodies, and back.

Pure and tested on stored payloads. The other direction (OpenAI chat -> Anthropic, for Anthropic
deployments) lives in :mod:`routerd.providers.anthropic_translate`; this module is what lets an
Anthropic client reach *any* model group.

* :func:`to_chat_request`: a validated Messages request -> a chat completions body.
* :func:`to_anthropic_message`: a ``chat.completion`` -> an Anthropic ``Message``.
* :func:`count_tokens`: a ``/v1/messages/count_tokens`` body -> ``{"input_tokens": N}``.
* Streams: :mod:`routerd.frontdoors.anthropic_messages_stream`.

Invalid requests raise :class:`~routerd.frontdoors.anthropic_errors.AnthropicRequestError`.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from routerd.frontdoors.anthropic_errors import AnthropicRequestError
from routerd.frontdoors.limits import (
    MAX_BLOCKS_PER_MESSAGE,
    MAX_MESSAGES,
    MAX_STOP_SEQUENCES,
    MAX_TOOLS,
)
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
from routerd.tokens import count_message_tokens

JSON = dict[str, Any]
_ERR = AnthropicRequestError

#: request fields the Messages API documents; anything else is refused, as Anthropic does
KNOWN_FIELDS = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "system",
        "metadata",
        "stop_sequences",
        "stream",
        "temperature",
        "top_p",
        "top_k",
        "tools",
        "tool_choice",
        "thinking",
        "service_tier",
        "container",
        "mcp_servers",
        "context_management",
        "output_config",
        "inference_geo",
    }
)
# Anthropic-only fields with no chat equivalent: carried as extras (an Anthropic deployment reached
# through the chat translation forwards them; other providers ignore or refuse them).
_EXTRAS = ("top_k", "container", "mcp_servers", "context_management", "inference_geo")
_EXTRAS_SET = frozenset(_EXTRAS)
_SAMPLING_FIELDS = frozenset({"temperature", "top_p", "top_k", "stop_sequences"})

_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})

#: thinking budget -> reasoning_effort: the largest effort whose budget (in
#: ``routerd.providers.anthropic_translate.REASONING_BUDGETS``) fits, so efforts survive a round trip
THINKING_EFFORTS: tuple[tuple[int, str], ...] = ((4096, "high"), (2048, "medium"), (0, "low"))
#: Anthropic's adaptive-thinking effort -> reasoning_effort (OpenAI has no "max")
ADAPTIVE_EFFORTS: Mapping[str, str] = {"low": "low", "medium": "medium", "high": "high", "max": "high"}
#: Anthropic requires budgets of at least this many tokens
MIN_THINKING_BUDGET = 1024

#: chat finish_reason -> Anthropic stop_reason
STOP_REASONS: Mapping[str, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
#: what a tool result flagged ``is_error`` starts with once it is a chat tool message
TOOL_ERROR_PREFIX = "Error: "


# --- request -------------------------------------------------------------------------------------


def to_chat_request(body: Any) -> JSON:
    """The chat completions body for a ``/v1/messages`` request; raises AnthropicRequestError."""
    request = need_mapping(body, "body", _ERR)
    reject_unknown(request, KNOWN_FIELDS, "", _ERR)
    chat: JSON = {"model": need_str(request.get("model"), "model", _ERR, allow_empty=False)}
    chat["max_tokens"] = need_int(request.get("max_tokens"), "max_tokens", _ERR)
    chat["messages"] = chat_messages(request)
    # Most requests carry few of the optional fields: each group is looked at only when present
    # (this runs for every /v1/messages request, Anthropic deployments included).
    if not _SAMPLING_FIELDS.isdisjoint(request):
        _sampling(request, chat)
    if "tools" in request or "tool_choice" in request:
        _tools(request, chat)
    if "thinking" in request:
        _thinking(request, chat)
    if "output_config" in request:
        _output_config(request, chat)
    metadata = request.get("metadata")
    if metadata is not None:
        user_id = need_mapping(metadata, "metadata", _ERR).get("user_id")
        if user_id is not None:
            chat["user"] = need_short(user_id, "metadata.user_id", _ERR)
    if not _EXTRAS_SET.isdisjoint(request):
        for name in _EXTRAS:
            if request.get(name) is not None:
                chat[name] = request[name]
    if need_bool(request.get("stream"), "stream", _ERR):
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}  # message_delta reports the usage
    return chat


def chat_messages(request: Mapping[str, Any]) -> list[JSON]:
    """The chat ``messages`` of a Messages request: ``system`` first, then each turn."""
    out: list[JSON] = []
    system = request.get("system")
    if system is not None:
        text = _system_text(system)
        if text:
            out.append({"role": "system", "content": text})
    messages = need_list(request.get("messages"), "messages", MAX_MESSAGES, _ERR, allow_empty=False)
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        message = need_mapping(message, where, _ERR)
        role = message.get("role")
        content = message.get("content")
        if role == "user":
            out.extend(_user_messages(content, where))
        elif role == "assistant":
            assistant = _assistant_message(content, where)
            if assistant is not None:
                out.append(assistant)
        else:
            raise _ERR(f"{where}.role must be 'user' or 'assistant'", param=f"{where}.role")
    return out


def _system_text(system: Any) -> str:
    if isinstance(system, str):
        return system
    blocks = need_list(system, "system", MAX_BLOCKS_PER_MESSAGE, _ERR)
    texts = []
    for index, block in enumerate(blocks):
        where = f"system[{index}]"
        block = need_mapping(block, where, _ERR)
        if block.get("type") != "text":
            raise _ERR(f"{where} must be a text block", param=f"{where}.type")
        texts.append(need_str(block.get("text"), f"{where}.text", _ERR))
    return "\n\n".join(texts)


def _blocks(content: Any, where: str) -> list[Mapping[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks = need_list(content, f"{where}.content", MAX_BLOCKS_PER_MESSAGE, _ERR)
    return [need_mapping(block, f"{where}.content[{i}]", _ERR) for i, block in enumerate(blocks)]


def _user_messages(content: Any, where: str) -> list[JSON]:
    """One user turn -> tool messages (its tool results, in order) and then one user message."""
    if type(content) is str and content:
        return [{"role": "user", "content": content}]  # the common plain-text turn, as below
    tool_messages: list[JSON] = []
    parts: list[JSON] = []
    for index, block in enumerate(_blocks(content, where)):
        at = f"{where}.content[{index}]"
        kind = block.get("type")
        if kind == "tool_result":
            message, images = _tool_result(block, at)
            tool_messages.append(message)
            parts.extend(images)  # chat tool messages hold text only: images follow as user content
        elif kind == "text":
            parts.append({"type": "text", "text": need_str(block.get("text"), f"{at}.text", _ERR)})
        elif kind == "image":
            parts.append(_image_part(block, at))
        elif kind == "document":
            parts.append(_document_part(block, at))
        else:
            raise _ERR(f"content block type {kind!r} cannot be sent to this model", param=f"{at}.type")
    if not tool_messages and not parts:
        raise _ERR(f"{where}: user messages must have non-empty content", param=f"{where}.content")
    out = list(tool_messages)
    if parts:
        only_text = len(parts) == 1 and parts[0]["type"] == "text"
        out.append({"role": "user", "content": parts[0]["text"] if only_text else parts})
    return out


def _image_part(block: Mapping[str, Any], where: str) -> JSON:
    source = need_mapping(block.get("source"), f"{where}.source", _ERR)
    kind = source.get("type")
    if kind == "url":
        url = need_str(source.get("url"), f"{where}.source.url", _ERR, allow_empty=False)
        return {"type": "image_url", "image_url": {"url": url}}
    if kind == "base64":
        media_type = source.get("media_type")
        if not isinstance(media_type, str) or media_type not in _IMAGE_TYPES:
            raise _ERR(
                f"image media_type must be one of {', '.join(sorted(_IMAGE_TYPES))}",
                param=f"{where}.source.media_type",
            )
        data = need_str(source.get("data"), f"{where}.source.data", _ERR, allow_empty=False)
        return {"type": "image_url", "image_url": {"url": f"data:{media_type};base64,{data}"}}
    raise _ERR("image source type must be 'base64' or 'url'", param=f"{where}.source.type")


def _document_part(block: Mapping[str, Any], where: str) -> JSON:
    source = need_mapping(block.get("source"), f"{where}.source", _ERR)
    if source.get("type") == "base64" and source.get("media_type") == "application/pdf":
        data = need_str(source.get("data"), f"{where}.source.data", _ERR, allow_empty=False)
        return {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{data}"}}
    if source.get("type") == "text":
        return {"type": "text", "text": need_str(source.get("data"), f"{where}.source.data", _ERR)}
    raise _ERR("documents must be base64 PDFs or plain text to reach this model", param=f"{where}.source")


def _tool_result(block: Mapping[str, Any], where: str) -> tuple[JSON, list[JSON]]:
    call_id = need_str(block.get("tool_use_id"), f"{where}.tool_use_id", _ERR, allow_empty=False)
    content = block.get("content")
    texts: list[str] = []
    images: list[JSON] = []
    if isinstance(content, str):
        texts.append(content)
    elif content is not None:
        for index, part in enumerate(_blocks(content, where)):
            at = f"{where}.content[{index}]"
            if part.get("type") == "text":
                texts.append(need_str(part.get("text"), f"{at}.text", _ERR))
            elif part.get("type") == "image":
                images.append(_image_part(part, at))
            else:
                raise _ERR("tool results may hold text and image blocks only", param=f"{at}.type")
    text = "\n\n".join(texts)
    if block.get("is_error"):
        text = TOOL_ERROR_PREFIX + text
    return {"role": "tool", "tool_call_id": call_id, "content": text}, images


def _assistant_message(content: Any, where: str) -> JSON | None:
    texts: list[JSON] = []
    calls: list[JSON] = []
    for index, block in enumerate(_blocks(content, where)):
        at = f"{where}.content[{index}]"
        kind = block.get("type")
        if kind == "text":
            texts.append({"type": "text", "text": need_str(block.get("text"), f"{at}.text", _ERR)})
        elif kind == "tool_use":
            calls.append(_tool_call(block, at))
        elif kind in ("thinking", "redacted_thinking"):
            continue  # chat has no field for earlier reasoning; only the final answer is history
        else:
            raise _ERR(f"content block type {kind!r} cannot be sent to this model", param=f"{at}.type")
    if not texts and not calls:
        return None  # only thinking (or nothing): chat would refuse an empty assistant message
    message: JSON = {"role": "assistant"}
    if len(texts) == 1:
        message["content"] = texts[0]["text"]
    else:
        message["content"] = texts or None
    if calls:
        message["tool_calls"] = calls
    return message


def _tool_call(block: Mapping[str, Any], where: str) -> JSON:
    call_id = need_str(block.get("id"), f"{where}.id", _ERR, allow_empty=False)
    name = need_str(block.get("name"), f"{where}.name", _ERR, allow_empty=False)
    arguments = need_mapping(block.get("input", {}), f"{where}.input", _ERR)
    check_depth(arguments, f"{where}.input", _ERR)
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": orjson.dumps(arguments).decode()},
    }


def _sampling(request: Mapping[str, Any], chat: JSON) -> None:
    if request.get("temperature") is not None:
        chat["temperature"] = need_number(request["temperature"], "temperature", _ERR, 0.0, 1.0)
    if request.get("top_p") is not None:
        chat["top_p"] = need_number(request["top_p"], "top_p", _ERR, 0.0, 1.0)
    if request.get("top_k") is not None:
        need_int(request["top_k"], "top_k", _ERR, low=0)
    stops = request.get("stop_sequences")
    if stops is not None:
        stops = need_list(stops, "stop_sequences", MAX_STOP_SEQUENCES, _ERR)
        for index, stop in enumerate(stops):
            where = f"stop_sequences[{index}]"
            need_short(stop, where, _ERR)
        if stops:
            chat["stop"] = list(stops)


def _tools(request: Mapping[str, Any], chat: JSON) -> None:
    tools = request.get("tools")
    if tools is not None:
        tools = need_list(tools, "tools", MAX_TOOLS, _ERR)
        if tools:
            chat["tools"] = [_tool(tool, f"tools[{i}]") for i, tool in enumerate(tools)]
    choice = request.get("tool_choice")
    if choice is None:
        return
    choice = need_mapping(choice, "tool_choice", _ERR)
    kind = choice.get("type")
    if "tools" not in chat and kind in ("auto", "none"):
        return  # nothing to choose from: chat APIs refuse a tool_choice without tools
    if "tools" not in chat and kind in ("any", "tool"):
        raise _ERR(f"tool_choice {kind!r} needs tools", param="tool_choice")
    if kind == "auto":
        chat["tool_choice"] = "auto"
    elif kind == "any":
        chat["tool_choice"] = "required"
    elif kind == "none":
        chat["tool_choice"] = "none"
    elif kind == "tool":
        name = need_str(choice.get("name"), "tool_choice.name", _ERR, allow_empty=False)
        chat["tool_choice"] = {"type": "function", "function": {"name": name}}
    else:
        raise _ERR("tool_choice.type must be auto, any, tool or none", param="tool_choice.type")
    if choice.get("disable_parallel_tool_use") and "tools" in chat:
        chat["parallel_tool_calls"] = False


def _tool(tool: Any, where: str) -> JSON:
    tool = need_mapping(tool, where, _ERR)
    if tool.get("type") not in (None, "custom"):
        raise _ERR(
            f"server tool {tool.get('type')!r} is Anthropic's own; it cannot be sent to this model",
            param=f"{where}.type",
        )
    name = need_short(tool.get("name"), f"{where}.name", _ERR)
    schema = need_mapping(tool.get("input_schema"), f"{where}.input_schema", _ERR)
    check_depth(schema, f"{where}.input_schema", _ERR)
    function: JSON = {"name": name, "parameters": dict(schema)}
    if tool.get("description"):
        function["description"] = need_str(tool["description"], f"{where}.description", _ERR)
    if tool.get("strict") is not None:
        function["strict"] = bool(tool["strict"])
    return {"type": "function", "function": function}


def _thinking(request: Mapping[str, Any], chat: JSON) -> None:
    """``thinking`` -> ``reasoning_effort`` (the mapping is documented in docs/api/anthropic.md)."""
    thinking = request.get("thinking")
    if thinking is None:
        return
    thinking = need_mapping(thinking, "thinking", _ERR)
    kind = thinking.get("type")
    if kind == "enabled":
        budget = need_int(
            thinking.get("budget_tokens"), "thinking.budget_tokens", _ERR, low=MIN_THINKING_BUDGET
        )
        if budget >= chat["max_tokens"]:
            raise _ERR("thinking.budget_tokens must be less than max_tokens", param="thinking.budget_tokens")
        chat["reasoning_effort"] = next(effort for floor, effort in THINKING_EFFORTS if budget >= floor)
    elif kind not in ("adaptive", "disabled"):  # adaptive: output_config.effort decides, if given
        raise _ERR("thinking.type must be enabled, adaptive or disabled", param="thinking.type")


def _output_config(request: Mapping[str, Any], chat: JSON) -> None:
    config = request.get("output_config")
    if config is None:
        return
    config = need_mapping(config, "output_config", _ERR)
    effort = config.get("effort")
    if effort is not None:
        if not isinstance(effort, str) or effort not in ADAPTIVE_EFFORTS:
            raise _ERR("output_config.effort must be low, medium, high or max", param="output_config.effort")
        chat.setdefault("reasoning_effort", ADAPTIVE_EFFORTS[effort])
    fmt = config.get("format")
    if fmt is not None:
        fmt = need_mapping(fmt, "output_config.format", _ERR)
        if fmt.get("type") != "json_schema":
            raise _ERR("output_config.format.type must be json_schema", param="output_config.format.type")
        schema = need_mapping(fmt.get("schema"), "output_config.format.schema", _ERR)
        check_depth(schema, "output_config.format.schema", _ERR)
        chat["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": dict(schema), "strict": True},
        }


# --- count_tokens --------------------------------------------------------------------------------


def count_tokens(body: Any) -> JSON:
    """``{"input_tokens": N}`` for a ``/v1/messages/count_tokens`` body (no ``max_tokens`` needed).

    An estimate by :mod:`routerd.tokens`, the estimator routerd uses everywhere else.
    """
    request = dict(need_mapping(body, "body", _ERR))
    request.pop("stream", None)
    request.setdefault("max_tokens", 1)
    if request.get("thinking") is not None:
        request["max_tokens"] = 1 << 30  # the budget check compares against max_tokens, absent here
    chat = to_chat_request(request)
    return {"input_tokens": count_message_tokens(chat["messages"], chat.get("tools"))}


# --- answer --------------------------------------------------------------------------------------

_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


def message_id(completion_id: Any) -> str:
    """An Anthropic-style ``msg_...`` id derived from a completion id (random when there is none)."""
    raw = str(completion_id or "")
    if raw.startswith("msg_"):
        return raw
    tail = _ID_UNSAFE.sub("", raw.removeprefix("chatcmpl-"))[:64]
    return "msg_" + (tail or secrets.token_hex(12))


def stop_reason(choice: Mapping[str, Any], stop_sequences: Sequence[str]) -> tuple[str, str | None]:
    """(stop_reason, stop_sequence) of a chat choice.

    Chat does not say which stop sequence ended the text; servers that do (vLLM's ``stop_reason``,
    SGLang's ``matched_stop``) are believed when the string is one the client asked for.
    """
    finish = choice.get("finish_reason")
    if finish == "stop":
        for name in ("stop_reason", "matched_stop"):
            matched = choice.get(name)
            if isinstance(matched, str) and matched in stop_sequences:
                return "stop_sequence", matched
    return STOP_REASONS.get(str(finish or "stop"), "end_turn"), None


def anthropic_usage(usage: Any) -> JSON:
    """Anthropic ``usage`` from chat ``usage``: input_tokens excludes cache reads and writes."""
    usage = usage if isinstance(usage, Mapping) else {}
    details = usage.get("prompt_tokens_details")
    cache_read = int(usage.get("cache_read_input_tokens") or 0)
    if not cache_read and isinstance(details, Mapping):
        cache_read = int(details.get("cached_tokens") or 0)
    cache_write = int(usage.get("cache_creation_input_tokens") or 0)
    prompt = int(usage.get("prompt_tokens") or 0)
    out: JSON = {
        "input_tokens": max(0, prompt - cache_read - cache_write),
        "output_tokens": int(usage.get("completion_tokens") or 0),
    }
    if cache_read or cache_write:
        out["cache_read_input_tokens"] = cache_read
        out["cache_creation_input_tokens"] = cache_write
    return out


def to_anthropic_message(
    completion: Mapping[str, Any], *, model: str | None = None, stop_sequences: Sequence[str] = ()
) -> JSON:
    """The Anthropic ``Message`` for a ``chat.completion`` (its first choice)."""
    choices = completion.get("choices") or [{}]
    choice = choices[0]
    message = choice.get("message") or {}
    content = thinking_blocks(message)
    text = message.get("content")
    if isinstance(text, list):  # some servers answer with content parts
        text = "".join(str(part.get("text", "")) for part in text if isinstance(part, Mapping))
    if text:
        content.append({"type": "text", "text": text})
    elif message.get("refusal"):
        content.append({"type": "text", "text": str(message["refusal"])})
    content.extend(tool_use_block(call) for call in message.get("tool_calls") or [])
    reason, sequence = stop_reason(choice, stop_sequences)
    return {
        "id": message_id(completion.get("id")),
        "type": "message",
        "role": "assistant",
        "model": model or completion.get("model") or "",
        "content": content,
        "stop_reason": reason,
        "stop_sequence": sequence,
        "usage": anthropic_usage(completion.get("usage")),
    }


def thinking_blocks(message: Mapping[str, Any]) -> list[JSON]:
    """Thinking blocks of a chat message: its ``thinking_blocks`` (with signatures) when an Anthropic
    upstream sent them, else one block of its ``reasoning_content``."""
    blocks = [dict(block) for block in message.get("thinking_blocks") or [] if isinstance(block, Mapping)]
    if blocks:
        return blocks
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        return [{"type": "thinking", "thinking": reasoning, "signature": ""}]
    return []


def tool_use_block(call: Mapping[str, Any]) -> JSON:
    """A ``tool_use`` block for a chat tool call; arguments that are not a JSON object become ``{}``."""
    function = call.get("function") or {}
    return {
        "type": "tool_use",
        "id": str(call.get("id") or "toolu_" + secrets.token_hex(12)),
        "name": str(function.get("name") or ""),
        "input": parse_input(function.get("arguments")),
    }


def parse_input(arguments: Any) -> JSON:
    """Tool call arguments (a JSON string) as the object Anthropic's ``input`` must be."""
    if isinstance(arguments, Mapping):
        return dict(arguments)
    try:
        value = orjson.loads(arguments or "{}")
    except (orjson.JSONDecodeError, TypeError):
        return {}  # a truncated call (finish_reason "length"): stop_reason tells the client why
    return value if isinstance(value, dict) else {}
