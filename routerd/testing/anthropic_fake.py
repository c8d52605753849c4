"""A fake Anthropic Messages API on a loopback port, speaking the real wire format.

``POST /v1/messages`` answers a ``Message`` or, with ``"stream": true``, the documented event
stream (``message_start``, ``content_block_start`` / ``_delta`` / ``_stop``, ``ping``,
``message_delta``, ``message_stop``). Like the real API it requires a key (``x-api-key``, or a
bearer token as recent SDKs send it),
``anthropic-version`` and a JSON body with ``model``, ``max_tokens`` and ``messages``, and refuses
top-level fields the API does not know. Every request is recorded; replies are scripted::

    async with FakeAnthropic() as fake:
        fake.enqueue(
            AnthropicReply.failure(529, "overloaded_error", "Overloaded"),
            AnthropicReply.tool_use("get_weather", {"city": "Paris"}),
        )
        ...
        assert fake.requests[0].headers["anthropic-version"] == "2023-06-01"

Without a script the fake echoes the last user text: ``"echo: <text>"``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from routerd.testing.fake_http import FakeServer, StreamPlan, json_response, open_event_stream
from routerd.tokens import estimate_tokens

JSON = dict[str, Any]

ANTHROPIC_VERSION = "2023-06-01"

# Top-level fields of the Messages API (anthropic-version 2023-06-01); others are refused, as upstream.
KNOWN_FIELDS = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "system",
        "stop_sequences",
        "temperature",
        "top_p",
        "top_k",
        "stream",
        "metadata",
        "tools",
        "tool_choice",
        "thinking",
        "service_tier",
        "container",
        "mcp_servers",
        "output_config",
        "inference_geo",
        "speed",
        "cache_control",
        "context_management",
        "diagnostics",
        "user_profile_id",
        "workspace_id",
    }
)
# Sampling fields: gone from API version 2026-10-21, and refused by these models on any version.
SAMPLING_FIELDS = frozenset({"temperature", "top_p", "top_k"})
NO_SAMPLING_MODELS = (
    "claude-opus-4-7",
    "claude-opus-4-8",
    "claude-opus-5",
    "claude-sonnet-5",
    "claude-fable-5",
)
_BLOCK_TYPES = frozenset(
    {"text", "image", "document", "tool_use", "tool_result", "thinking", "redacted_thinking", "search_result"}
)


@dataclass(slots=True)
class AnthropicReply:
    """What the fake answers to one request.

    ``content`` holds Anthropic content blocks (``None``: echo the last user text). A ``status`` of
    400 or more answers ``error_body`` (Anthropic's error shape) instead. ``stream`` tweaks a
    streamed answer (cut connection, early end, in-band error).
    """

    content: list[JSON] | None = None
    stop_reason: str = "end_turn"
    stop_sequence: str | None = None
    usage: JSON | None = None
    status: int = 200
    error_body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before the response head is sent
    hang: bool = False  # never answer; wait until the client gives up
    chunk_size: int = 8  # characters per text / argument / thinking delta
    stream: StreamPlan = field(default_factory=StreamPlan)

    @classmethod
    def text(cls, text: str, *, stop_reason: str = "end_turn", **kwargs: Any) -> AnthropicReply:
        return cls(content=[{"type": "text", "text": text}], stop_reason=stop_reason, **kwargs)

    @classmethod
    def tool_use(
        cls,
        name: str,
        tool_input: JSON,
        *,
        text: str | None = None,
        tool_id: str | None = None,
        **kwargs: Any,
    ) -> AnthropicReply:
        blocks: list[JSON] = [{"type": "text", "text": text}] if text else []
        blocks.append({"type": "tool_use", "id": tool_id or _id("toolu"), "name": name, "input": tool_input})
        return cls(content=blocks, stop_reason="tool_use", **kwargs)

    @classmethod
    def thinking(
        cls, thinking: str, text: str, *, signature: str = "c2lnbmF0dXJl", **kwargs: Any
    ) -> AnthropicReply:
        blocks = [
            {"type": "thinking", "thinking": thinking, "signature": signature},
            {"type": "text", "text": text},
        ]
        return cls(content=blocks, **kwargs)

    @classmethod
    def failure(
        cls,
        status: int,
        error_type: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> AnthropicReply:
        return cls(status=status, error_body=error_body(error_type, message), headers=headers or {}, **kwargs)


def error_body(error_type: str, message: str) -> JSON:
    """Anthropic's error shape."""
    return {"type": "error", "error": {"type": error_type, "message": message}, "request_id": _id("req")}


class FakeAnthropic(FakeServer[AnthropicReply]):
    """The fake server; ``api_key=None`` accepts any key (but still requires the header)."""

    def __init__(self, *, api_key: str | None = "sk-ant-test", default: AnthropicReply | None = None) -> None:
        super().__init__(default or AnthropicReply())
        self.api_key = api_key

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/v1/messages", self._messages), web.route("*", "/{tail:.*}", self._not_found)]

    async def _not_found(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        return json_response(error_body("not_found_error", "Not found"), 404)

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        recorded = await self.record(request)
        problem = self._check(recorded.headers, recorded.json)
        if problem is not None:
            return problem
        body = recorded.json
        return await self.answer(request, body, model=body["model"], stream=bool(body.get("stream")))

    async def answer(
        self, request: web.Request, body: JSON, *, model: str, stream: bool
    ) -> web.StreamResponse:
        """The scripted reply to a checked request: an error, a message or its event stream.
        (Platforms that serve Claude in their own framing override :meth:`open_stream` and
        :meth:`encode`.)"""
        reply = self.next_reply()
        if reply.hang:
            await asyncio.Event().wait()  # until the client disconnects (handler cancelled)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        headers = {"request-id": _id("req"), **reply.headers}
        if reply.status >= 400:
            return json_response(reply.error_body, reply.status, headers)
        message = self._message(body, reply, model)
        headers.setdefault("anthropic-ratelimit-requests-remaining", "99")
        if stream:
            response = await self.open_stream(request, headers)
            events = list(stream_events(message, reply.chunk_size))
            return await self.write_stream(request, response, events, reply.stream, self.encode)
        return json_response(message, 200, headers)

    async def open_stream(self, request: web.Request, headers: dict[str, str]) -> web.StreamResponse:
        """The prepared response a stream is written on (SSE here)."""
        return await open_event_stream(request, headers)

    def encode(self, event: JSON) -> bytes:
        """One stream event on the wire (SSE here)."""
        return encode_event(event)

    def _check(self, headers: Mapping[str, str], body: Any) -> web.Response | None:
        # x-api-key is the documented header; newer SDKs send the same key as a bearer token.
        bearer = headers.get("authorization", "")
        key = headers.get("x-api-key") or (bearer[7:] if bearer.startswith("Bearer ") else "")
        if not key:
            return json_response(error_body("authentication_error", "x-api-key header is required"), 401)
        if self.api_key is not None and key != self.api_key:
            return json_response(error_body("authentication_error", "invalid x-api-key"), 401)
        if not headers.get("anthropic-version"):
            return _invalid("anthropic-version: header is required")
        if not headers.get("content-type", "").startswith("application/json"):
            return _invalid("content-type must be application/json")
        problem = check_body(body, headers["anthropic-version"])
        return _invalid(problem) if problem else None

    def _message(self, body: JSON, reply: AnthropicReply, model: str | None = None) -> JSON:
        content = reply.content if reply.content is not None else [{"type": "text", "text": _echo(body)}]
        output_tokens = sum(estimate_tokens(orjson.dumps(block).decode()) for block in content) or 1
        usage = reply.usage or {
            "input_tokens": max(1, estimate_tokens(orjson.dumps(body.get("messages")).decode())),
            "output_tokens": output_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        }
        return {
            "id": _id("msg"),
            "type": "message",
            "role": "assistant",
            "model": model or body["model"],
            "content": content,
            "stop_reason": reply.stop_reason,
            "stop_sequence": reply.stop_sequence,
            "usage": usage,
        }


def check_body(
    body: Any,
    version: str,
    *,
    fields: frozenset[str] = KNOWN_FIELDS,
    model: str | None = None,
) -> str | None:
    """Why the API refuses a Messages body (its 400's message), or None when it is valid.

    ``fields`` are the top-level fields accepted; ``model`` is the model named elsewhere (a
    platform's URL), else the body must name it.
    """
    if not isinstance(body, dict):
        return "request body must be a JSON object"
    unknown = sorted(set(body) - fields)
    if unknown:
        return f"{unknown[0]}: Extra inputs are not permitted"
    model = model if model is not None else body.get("model")
    sampling = sorted(SAMPLING_FIELDS & set(body))
    if sampling and version >= "2026-10-21":  # removed in that API version
        return f"{sampling[0]}: Extra inputs are not permitted"
    if sampling and str(model or "").startswith(NO_SAMPLING_MODELS):
        return f"`{sampling[0]}` is deprecated for this model."
    for name, value, kind in (
        ("model", model, str),
        ("max_tokens", body.get("max_tokens"), int),
        ("messages", body.get("messages"), list),
    ):
        if not isinstance(value, kind) or isinstance(value, bool):
            return f"{name}: Field required"
    if not body["messages"]:
        return "messages: at least one message is required"
    if isinstance(body["messages"][0], dict) and body["messages"][0].get("role") != "user":
        return 'messages: first message must use the "user" role'
    for index, message in enumerate(body["messages"]):
        problem = _check_message(message)
        if problem:
            return f"messages.{index}: {problem}"
    return None


def stream_events(message: JSON, chunk_size: int = 8) -> Iterator[JSON]:
    """The documented event sequence that streams ``message``."""
    usage = message["usage"]
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None}
    start["usage"] = {**usage, "output_tokens": 1}
    yield {"type": "message_start", "message": start}
    yield {"type": "ping"}
    for index, block in enumerate(message["content"]):
        yield from _block_events(index, block, chunk_size)
    yield {
        "type": "message_delta",
        "delta": {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]},
        "usage": {"output_tokens": usage["output_tokens"]},
    }
    yield {"type": "message_stop"}


def _block_events(index: int, block: JSON, size: int) -> Iterator[JSON]:
    kind = block["type"]
    if kind == "text":
        yield {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}
        for piece in _pieces(block["text"], size):
            yield _delta(index, {"type": "text_delta", "text": piece})
    elif kind == "tool_use":
        head = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
        yield {"type": "content_block_start", "index": index, "content_block": head}
        yield _delta(index, {"type": "input_json_delta", "partial_json": ""})  # as the API does
        for piece in _pieces(orjson.dumps(block["input"]).decode(), size):
            yield _delta(index, {"type": "input_json_delta", "partial_json": piece})
    elif kind == "thinking":
        head = {"type": "thinking", "thinking": "", "signature": ""}
        yield {"type": "content_block_start", "index": index, "content_block": head}
        for piece in _pieces(block["thinking"], size):
            yield _delta(index, {"type": "thinking_delta", "thinking": piece})
        yield _delta(index, {"type": "signature_delta", "signature": block["signature"]})
    else:  # redacted thinking and server-tool blocks arrive whole
        yield {"type": "content_block_start", "index": index, "content_block": block}
    yield {"type": "content_block_stop", "index": index}


def _delta(index: int, delta: JSON) -> JSON:
    return {"type": "content_block_delta", "index": index, "delta": delta}


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def encode_event(event: JSON) -> bytes:
    """One event on the wire: Anthropic names every event after its ``type``."""
    return b"event: " + str(event["type"]).encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


def _check_message(message: Any) -> str | None:
    if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
        return "role must be 'user' or 'assistant'"
    content = message.get("content")
    if isinstance(content, str):
        return None
    if not isinstance(content, list) or not content:
        return "content must be a string or a non-empty list of blocks"
    for block in content:
        if not isinstance(block, dict) or block.get("type") not in _BLOCK_TYPES:
            return f"unknown content block {block!r}"
        if block["type"] == "text" and not block.get("text"):
            return "text content blocks must be non-empty"
        if block["type"] == "tool_result" and message["role"] != "user":
            return "tool_result blocks must be in a user message"
        if block["type"] == "tool_use" and not isinstance(block.get("input"), dict):
            return "tool_use.input must be an object"
    return None


def _echo(body: JSON) -> str:
    for message in reversed(body["messages"]):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return f"echo: {content}"
        texts = [block.get("text", "") for block in content if block.get("type") == "text"]
        if texts:
            return "echo: " + " ".join(texts)
    return "echo: (no text)"


def _invalid(message: str) -> web.Response:
    return json_response(error_body("invalid_request_error", message), 400)


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"
