"""OpenAI chat / embeddings <-> Cohere's v2 API, pure: requests, responses and stream events.

Cohere v2 chat is close to OpenAI's: the same roles, ``tool_calls`` / ``tool_call_id`` and function
tools. The differences handled here: sampling names (``p``, ``k``, ``stop_sequences``), upper-case
``tool_choice`` values, ``content`` answered as a list of blocks, ``finish_reason`` names, usage under
``usage.tokens`` (``billed_units`` as a fallback), and the typed SSE events of a stream
(``message-start``, ``content-delta``, ``tool-call-start`` / ``-delta``, ``message-end``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from routerd.errors import BadRequestError
from routerd.providers.base import ParamPolicy
from routerd.providers.openai_parts import content_text, stop_list
from routerd.providers.shapes import usage as openai_usage

JSON = dict[str, Any]
PROVIDER = "cohere"

POLICY = ParamPolicy(PROVIDER, frozenset({"logit_bias", "top_logprobs", "logprobs"}))
_RENAMED = {"top_p": "p", "top_k": "k"}
_COPIED = ("max_tokens", "temperature", "seed", "frequency_penalty", "presence_penalty")
_FINISH = {
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "MAX_TOKENS": "length",
    "TOOL_CALL": "tool_calls",
    "ERROR": "stop",
    "TIMEOUT": "length",
}


def to_cohere_chat(body: Mapping[str, Any], model: str, *, stream: bool) -> JSON:
    """The ``/v2/chat`` request for an OpenAI chat body (already past :data:`POLICY`)."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequestError("messages must be a non-empty list", param="messages")
    request: JSON = {"model": model, "messages": [_message(m, i) for i, m in enumerate(messages)]}
    for key in _COPIED:
        if body.get(key) is not None:
            request[key] = body[key]
    if body.get("max_completion_tokens") is not None:
        request["max_tokens"] = body["max_completion_tokens"]
    for ours, theirs in _RENAMED.items():
        if body.get(ours) is not None:
            request[theirs] = body[ours]
    stops = stop_list(body.get("stop"))
    if stops:
        request["stop_sequences"] = stops
    if body.get("tools"):
        request["tools"] = list(body["tools"])
        choice = body.get("tool_choice")
        if choice == "required":
            request["tool_choice"] = "REQUIRED"
        elif choice == "none":
            request["tool_choice"] = "NONE"
    response_format = body.get("response_format")
    if isinstance(response_format, Mapping) and response_format.get("type") in ("json_object", "json_schema"):
        converted: JSON = {"type": "json_object"}
        schema = (response_format.get("json_schema") or {}).get("schema")
        if schema:
            converted["json_schema"] = schema
        request["response_format"] = converted
    if stream:
        request["stream"] = True
    return request


def _message(message: Any, index: int) -> JSON:
    if not isinstance(message, Mapping):
        raise BadRequestError(f"messages[{index}] must be an object", param="messages")
    role = message.get("role")
    if role == "developer":
        role = "system"
    if role in ("system", "user"):
        content = message.get("content")
        # user content lists (text and image_url parts) are Cohere v2's own shape
        return {
            "role": role,
            "content": content if isinstance(content, list) and role == "user" else content_text(content),
        }
    if role == "assistant":
        out: JSON = {"role": "assistant"}
        text = content_text(message.get("content"))
        if text:
            out["content"] = text
        if message.get("tool_calls"):
            out["tool_calls"] = list(message["tool_calls"])
        return out
    if role == "tool":
        return {
            "role": "tool",
            "tool_call_id": message.get("tool_call_id") or "",
            "content": content_text(message.get("content")),
        }
    raise BadRequestError(f"messages[{index}].role {role!r} is not supported by cohere", param="messages")


def finish_reason(reason: Any) -> str:
    return _FINISH.get(reason, "stop") if isinstance(reason, str) else "stop"


def usage_from(usage: Any) -> JSON:
    """OpenAI ``usage`` for Cohere's ``{tokens: {...}, billed_units: {...}}``."""
    raw = usage if isinstance(usage, Mapping) else {}
    counts = raw.get("tokens") or raw.get("billed_units") or {}
    return openai_usage(int(counts.get("input_tokens") or 0), int(counts.get("output_tokens") or 0))


def to_openai_completion(answer: Mapping[str, Any], *, model: str, created: int) -> JSON:
    """The ``chat.completion`` for a ``/v2/chat`` answer."""
    message = answer.get("message") or {}
    text = "".join(str(b.get("text", "")) for b in message.get("content") or () if b.get("type") == "text")
    calls = message.get("tool_calls") or []
    out: JSON = {"role": "assistant", "content": text if text or not calls else None}
    if calls:
        out["tool_calls"] = [
            {"id": c.get("id"), "type": "function", "function": dict(c.get("function") or {})} for c in calls
        ]
    return {
        "id": answer.get("id") or "",
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": out,
                "finish_reason": finish_reason(answer.get("finish_reason")),
                "logprobs": None,
            }
        ],
        "usage": usage_from(answer.get("usage")),
    }


class StreamTranslator:
    """``/v2/chat`` stream events in, OpenAI chunks out; one instance per stream."""

    def __init__(self, *, model: str, created: int, include_usage: bool) -> None:
        self.model = model
        self.created = created
        self.include_usage = include_usage
        self.id = ""
        self.finished = False
        self._tools: dict[int, int] = {}  # Cohere tool call index -> OpenAI tool call index

    def feed(self, event: Mapping[str, Any]) -> list[JSON]:
        kind = event.get("type")
        delta = (event.get("delta") or {}) if isinstance(event.get("delta"), Mapping) else {}
        message = delta.get("message") or {}
        if kind == "message-start":
            self.id = str(event.get("id") or self.id)
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content-delta":
            text = (message.get("content") or {}).get("text")
            return [self._chunk({"content": text})] if text else []
        if kind == "tool-call-start":
            call = message.get("tool_calls") or {}
            index = len(self._tools)
            self._tools[int(event.get("index", index))] = index
            function = call.get("function") or {}
            out: JSON = {"index": index, "id": call.get("id"), "type": "function"}
            out["function"] = {"name": function.get("name"), "arguments": function.get("arguments") or ""}
            return [self._chunk({"tool_calls": [out]})]
        if kind == "tool-call-delta":
            fragment = ((message.get("tool_calls") or {}).get("function") or {}).get("arguments")
            tool_index = self._tools.get(int(event.get("index", 0)))
            if not fragment or tool_index is None:
                return []
            return [self._chunk({"tool_calls": [{"index": tool_index, "function": {"arguments": fragment}}]})]
        if kind == "message-end":
            self.finished = True
            chunks = [self._chunk({}, finish_reason(delta.get("finish_reason")))]
            if self.include_usage:
                usage_chunk = self._chunk({})
                usage_chunk["choices"] = []
                usage_chunk["usage"] = usage_from(delta.get("usage"))
                chunks.append(usage_chunk)
            return chunks
        return []  # content-start/-end, tool-plan-delta, tool-call-end, citations

    def _chunk(self, delta: JSON, finish: str | None = None) -> JSON:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }


def to_cohere_embed(body: Mapping[str, Any], model: str, default_input_type: str) -> JSON:
    """The ``/v2/embed`` request for an OpenAI embeddings body."""
    value = body.get("input")
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise BadRequestError(
            "input must be a string or a non-empty list of strings for cohere", param="input"
        )
    request: JSON = {
        "model": model,
        "texts": texts,
        "input_type": body.get("input_type") or default_input_type,
        "embedding_types": ["float"],
    }
    if body.get("dimensions") is not None:
        request["output_dimension"] = body["dimensions"]
    return request


def to_cohere_rerank(body: Mapping[str, Any], model: str) -> JSON:
    """The ``/v2/rerank`` request for a LiteLLM-style rerank body (``query``, ``documents``, ``top_n``)."""
    query = body.get("query")
    documents = body.get("documents")
    if not isinstance(query, str) or not query:
        raise BadRequestError("query must be a non-empty string", param="query")
    if not isinstance(documents, list) or not documents:
        raise BadRequestError("documents must be a non-empty list", param="documents")
    texts = [d if isinstance(d, str) else str((d or {}).get("text", "")) for d in documents]
    request: JSON = {"model": model, "query": query, "documents": texts}
    for key in ("top_n", "max_tokens_per_doc"):
        if body.get(key) is not None:
            request[key] = body[key]
    return request
