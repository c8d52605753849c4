"""OpenAI chat <-> Amazon Bedrock Converse, pure: requests, responses, stream events and errors.

Converse takes ``messages`` of alternating ``user`` / ``assistant`` roles whose ``content`` is a list
of blocks (``text``, ``image``, ``toolUse``, ``toolResult``), a separate ``system`` list, an
``inferenceConfig`` and a ``toolConfig``. OpenAI ``tool`` messages become ``toolResult`` blocks of a
user turn; consecutive turns of one role are merged, as Converse requires. Images must be ``data:``
URLs (Converse takes bytes; routerd does not fetch URLs on a client's behalf).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from routerd.errors import (
    AuthenticationError,
    BadGatewayError,
    BadRequestError,
    ContextWindowExceededError,
    InternalServerError,
    NotFoundError,
    OpenAIError,
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
    Timeout,
    error_for_status,
)
from routerd.providers.base import ParamPolicy
from routerd.providers.errors import ErrorContext, parse_retry_after
from routerd.providers.openai_parts import content_text, parse_data_url, parse_tool_arguments, stop_list
from routerd.providers.shapes import usage as openai_usage

JSON = dict[str, Any]
PROVIDER = "bedrock"

# OpenAI parameters Converse has no field for
UNSUPPORTED = frozenset({"logprobs", "top_logprobs", "logit_bias", "presence_penalty", "frequency_penalty"})
POLICY = ParamPolicy(PROVIDER, UNSUPPORTED)

_IMAGE_FORMATS = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}
_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}
# Bedrock's exception names -> routerd's classes (the HTTP status alone is ambiguous: 400 covers both
# a bad request and an exceeded quota, 403 both a denied model and a bad signature)
ERROR_CLASSES: dict[str, type[OpenAIError]] = {
    "ValidationException": BadRequestError,
    "ThrottlingException": RateLimitError,
    "ServiceQuotaExceededException": RateLimitError,
    "AccessDeniedException": PermissionDeniedError,
    "UnrecognizedClientException": AuthenticationError,
    "InvalidSignatureException": AuthenticationError,
    "ExpiredTokenException": AuthenticationError,
    "ResourceNotFoundException": NotFoundError,
    "ModelNotReadyException": ServiceUnavailableError,
    "ServiceUnavailableException": ServiceUnavailableError,
    "InternalServerException": InternalServerError,
    "ModelTimeoutException": Timeout,
    "ModelErrorException": BadGatewayError,
    "ModelStreamErrorException": BadGatewayError,
    # SageMaker runtime
    "ValidationError": BadRequestError,
    "ModelError": BadGatewayError,
    "ModelStreamError": BadGatewayError,
    "InternalFailure": InternalServerError,
    "InternalStreamFailure": InternalServerError,
    "InternalDependencyException": ServiceUnavailableError,
    "ServiceUnavailable": ServiceUnavailableError,
}
_CONTEXT = re.compile(
    r"too long|context (?:length|window)|maximum (?:context|input)|too many (?:input )?tokens", re.I
)


def model_id(model: str) -> str:
    """The Converse model id: LiteLLM's ``converse/`` / ``invoke/`` route prefixes removed.

    Cross-region inference profile ids (``us.anthropic.claude-...``) and ARNs are kept as given.
    """
    for prefix in ("converse/", "invoke/"):
        if model.startswith(prefix):
            return model[len(prefix) :]
    return model


def to_converse_request(body: Mapping[str, Any]) -> JSON:
    """The Converse request for an OpenAI chat body (already past :data:`POLICY`)."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequestError("messages must be a non-empty list", param="messages")
    system, turns = convert_messages(messages)
    request: JSON = {"messages": turns}
    if system:
        request["system"] = system
    config = _inference_config(body)
    if config:
        request["inferenceConfig"] = config
    tool_config = _tool_config(body.get("tools"), body.get("tool_choice"))
    if tool_config:
        request["toolConfig"] = tool_config
    extra: JSON = {}
    if body.get("top_k") is not None:
        extra["top_k"] = body["top_k"]
    if isinstance(body.get("thinking"), Mapping):
        extra["thinking"] = dict(body["thinking"])
    if extra:
        request["additionalModelRequestFields"] = extra
    return request


def convert_messages(messages: list[Any]) -> tuple[list[JSON], list[JSON]]:
    """``(system blocks, alternating turns)`` for OpenAI ``messages``."""
    system: list[JSON] = []
    turns: list[JSON] = []
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise BadRequestError(f"messages[{index}] must be an object", param="messages")
        role = message.get("role")
        if role in ("system", "developer"):
            text = content_text(message.get("content"))
            if text:
                system.append({"text": text})
            continue
        if role == "user":
            blocks, turn_role = _user_blocks(message.get("content"), index), "user"
        elif role == "assistant":
            blocks, turn_role = _assistant_blocks(message, index), "assistant"
        elif role in ("tool", "function"):
            blocks, turn_role = [_tool_result(message)], "user"
        else:
            raise BadRequestError(f"messages[{index}].role {role!r} is not supported", param="messages")
        if not blocks:
            continue
        if turns and turns[-1]["role"] == turn_role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": turn_role, "content": blocks})
    if not turns:
        raise BadRequestError("messages must hold at least one user message", param="messages")
    return system, turns


def _user_blocks(content: Any, index: int) -> list[JSON]:
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        return [{"text": content_text(content)}]
    blocks: list[JSON] = []
    for part in content:
        if not isinstance(part, Mapping):
            continue
        if part.get("type") == "text" and part.get("text"):
            blocks.append({"text": str(part["text"])})
        elif part.get("type") == "image_url":
            blocks.append(_image_block(part.get("image_url"), index))
    return blocks


def _image_block(image_url: Any, index: int) -> JSON:
    url = image_url.get("url") if isinstance(image_url, Mapping) else image_url
    data = parse_data_url(url) if isinstance(url, str) else None
    if data is None:
        raise BadRequestError(
            f"messages[{index}]: bedrock takes images as base64 data: URLs, not links", param="messages"
        )
    image_format = _IMAGE_FORMATS.get(data.media_type)
    if image_format is None:
        raise BadRequestError(
            f"messages[{index}]: image type {data.media_type} is not supported (png, jpeg, gif, webp)",
            param="messages",
        )
    return {"image": {"format": image_format, "source": {"bytes": data.data}}}


def _assistant_blocks(message: Mapping[str, Any], index: int) -> list[JSON]:
    blocks: list[JSON] = []
    text = content_text(message.get("content"))
    if text:
        blocks.append({"text": text})
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        blocks.append(
            {
                "toolUse": {
                    "toolUseId": call.get("id") or f"call_{index}",
                    "name": function.get("name"),
                    "input": parse_tool_arguments(function.get("arguments")),
                }
            }
        )
    return blocks


def _tool_result(message: Mapping[str, Any]) -> JSON:
    text = content_text(message.get("content"))
    return {"toolResult": {"toolUseId": message.get("tool_call_id") or "", "content": [{"text": text}]}}


def _inference_config(body: Mapping[str, Any]) -> JSON:
    config: JSON = {}
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens is not None:
        config["maxTokens"] = max_tokens
    if body.get("temperature") is not None:
        config["temperature"] = body["temperature"]
    if body.get("top_p") is not None:
        config["topP"] = body["top_p"]
    stops = stop_list(body.get("stop"))
    if stops:
        config["stopSequences"] = stops
    return config


def _tool_config(tools: Any, choice: Any) -> JSON | None:
    if not tools or choice == "none":
        return None  # Converse has no "none": leaving the tools out has the same effect
    specs = []
    for tool in tools:
        function = tool.get("function") if isinstance(tool, Mapping) else None
        if not isinstance(function, Mapping) or not function.get("name"):
            raise BadRequestError("tools[].function.name is required", param="tools")
        spec: JSON = {
            "name": function["name"],
            "inputSchema": {"json": function.get("parameters") or {"type": "object", "properties": {}}},
        }
        if function.get("description"):
            spec["description"] = function["description"]
        specs.append({"toolSpec": spec})
    config: JSON = {"tools": specs}
    if choice == "required":
        config["toolChoice"] = {"any": {}}
    elif choice == "auto":
        config["toolChoice"] = {"auto": {}}
    elif isinstance(choice, Mapping) and (choice.get("function") or {}).get("name"):
        config["toolChoice"] = {"tool": {"name": choice["function"]["name"]}}
    return config


# --- responses -------------------------------------------------------------------------------------


def finish_reason(stop_reason: Any) -> str:
    return _FINISH.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def usage_from(converse_usage: Any) -> JSON:
    """OpenAI ``usage`` for Converse's ``{inputTokens, outputTokens, cacheReadInputTokens, ...}``."""
    raw = converse_usage if isinstance(converse_usage, Mapping) else {}
    cached = int(raw.get("cacheReadInputTokens") or 0)
    written = int(raw.get("cacheWriteInputTokens") or 0)
    # like OpenAI, prompt_tokens counts every input token, cached ones included
    result = openai_usage(
        int(raw.get("inputTokens") or 0) + cached + written, int(raw.get("outputTokens") or 0)
    )
    result["prompt_tokens_details"]["cached_tokens"] = cached
    return result


def to_openai_completion(response: Mapping[str, Any], *, model: str, created: int, request_id: str) -> JSON:
    """The ``chat.completion`` for a Converse response."""
    message = ((response.get("output") or {}).get("message")) or {}
    text: list[str] = []
    reasoning: list[str] = []
    calls: list[JSON] = []
    for block in message.get("content") or ():
        if "text" in block:
            text.append(str(block["text"]))
        elif "toolUse" in block:
            use = block["toolUse"]
            calls.append(
                {
                    "id": use.get("toolUseId"),
                    "type": "function",
                    "function": {
                        "name": use.get("name"),
                        "arguments": orjson.dumps(use.get("input", {})).decode(),
                    },
                }
            )
        elif "reasoningContent" in block:
            reasoning.append(
                str(((block["reasoningContent"] or {}).get("reasoningText") or {}).get("text", ""))
            )
    out_message: JSON = {"role": "assistant", "content": "".join(text) if text or not calls else None}
    if calls:
        out_message["tool_calls"] = calls
    if reasoning:
        out_message["reasoning_content"] = "".join(reasoning)
    return {
        "id": f"chatcmpl-{request_id}",
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": out_message,
                "finish_reason": finish_reason(response.get("stopReason")),
                "logprobs": None,
            }
        ],
        "usage": usage_from(response.get("usage")),
    }


class StreamTranslator:
    """ConverseStream events (``(event type, payload)``) in, OpenAI chunks out; one per stream."""

    def __init__(self, *, model: str, created: int, chunk_id: str, include_usage: bool, errors: ErrorContext):
        self.model = model
        self.created = created
        self.id = chunk_id
        self.include_usage = include_usage
        self.errors = errors
        self.stopped = False  # messageStop seen: the answer is complete
        self._tools: dict[int, int] = {}  # contentBlockIndex -> OpenAI tool call index

    def feed(self, event_type: str, payload: Mapping[str, Any]) -> list[JSON]:
        if event_type == "messageStart":
            return [self._chunk({"role": "assistant", "content": ""})]
        if event_type == "contentBlockStart":
            use = (payload.get("start") or {}).get("toolUse")
            if not isinstance(use, Mapping):
                return []
            index = len(self._tools)
            self._tools[int(payload.get("contentBlockIndex", 0))] = index
            call = {"index": index, "id": use.get("toolUseId"), "type": "function"}
            call["function"] = {"name": use.get("name"), "arguments": ""}
            return [self._chunk({"tool_calls": [call]})]
        if event_type == "contentBlockDelta":
            return self._delta(int(payload.get("contentBlockIndex", 0)), payload.get("delta") or {})
        if event_type == "messageStop":
            self.stopped = True
            return [self._chunk({}, finish_reason(payload.get("stopReason")))]
        if event_type == "metadata" and self.include_usage:
            chunk = self._chunk({})
            chunk["choices"] = []
            chunk["usage"] = usage_from(payload.get("usage"))
            return [chunk]
        return []  # contentBlockStop, and event types added after this was written

    def _delta(self, block: int, delta: Mapping[str, Any]) -> list[JSON]:
        if "text" in delta:
            return [self._chunk({"content": str(delta["text"])})]
        if "toolUse" in delta and block in self._tools:
            fragment = (delta["toolUse"] or {}).get("input", "")
            call = {"index": self._tools[block], "function": {"arguments": fragment}}
            return [self._chunk({"tool_calls": [call]})] if fragment else []
        if "reasoningContent" in delta:
            text = (delta["reasoningContent"] or {}).get("text")
            return [self._chunk({"reasoning_content": text})] if text else []
        return []

    def _chunk(self, delta: JSON, finish: str | None = None) -> JSON:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }


# --- errors ----------------------------------------------------------------------------------------


def exception_name(headers: Mapping[str, str], payload: Any) -> str:
    """The AWS exception name of an error answer: ``x-amzn-errortype`` or the body's ``__type``."""
    raw = headers.get("x-amzn-errortype") or ""
    if not raw and isinstance(payload, Mapping):
        raw = str(payload.get("__type") or "")
    return raw.split(":", 1)[0].rsplit("#", 1)[-1]


def error_from(
    errors: ErrorContext,
    status: int | None,
    name: str,
    payload: Any,
    headers: Mapping[str, str] | None = None,
) -> OpenAIError:
    """The routerd error for a Bedrock / SageMaker exception (HTTP answer or in-stream exception)."""
    message = ""
    if isinstance(payload, Mapping):
        message = str(payload.get("message") or payload.get("Message") or "")
    # in-stream exceptions are named in lowerCamel case (``throttlingException``)
    name = name[:1].upper() + name[1:]
    cls = ERROR_CLASSES.get(name) or (error_for_status(status) if status else InternalServerError)
    if cls is BadRequestError and _CONTEXT.search(message):
        cls = ContextWindowExceededError
    text = (
        f"{name}: {message}" if name and message else (message or name or f"upstream answered HTTP {status}")
    )
    retry_after = parse_retry_after(headers, errors.wall_clock()) if headers else None
    error = errors.make(
        cls, errors._clean(text), upstream_status=status, code=name or None, retry_after=retry_after
    )
    return error
