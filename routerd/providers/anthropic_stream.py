"""Anthropic's Messages stream events -> OpenAI ``chat.completion.chunk`` dicts, one event at a time.

Pure and incremental: each decoded event goes in, the chunks it yields come out, nothing is buffered
(see :mod:`routerd.providers.anthropic_translate` for requests, complete responses and errors).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from routerd.providers.anthropic_translate import PROVIDER, error_from_body, finish_reason, openai_usage
from routerd.providers.errors import ErrorContext

JSON = dict[str, Any]


class StreamTranslator:
    """Anthropic stream events in, OpenAI chunks out; one instance per stream.

    Text deltas become ``delta.content``; a ``tool_use`` block becomes a tool call announced with its
    index, id and name, followed by its ``input_json_delta`` fragments as argument fragments;
    thinking deltas become ``delta.reasoning_content``. ``message_delta`` carries the finish reason;
    with ``include_usage`` a final chunk with empty ``choices`` carries the usage, as OpenAI sends it.
    """

    def __init__(
        self,
        *,
        created: int,
        include_usage: bool = False,
        model: str = "",
        errors: ErrorContext | None = None,
    ) -> None:
        self.created = created
        self.errors = errors or ErrorContext(PROVIDER, model)
        self.include_usage = include_usage
        self.id = ""
        self.model = model
        self.finished = False
        self._usage: JSON = {}
        self._tool_index: dict[int, int] = {}  # content block index -> OpenAI tool call index
        self._thinking: dict[int, JSON] = {}  # content block index -> the thinking block so far

    def feed(self, event: Mapping[str, Any]) -> list[JSON]:
        """The chunks for one decoded event (often one, sometimes none). Raises on ``error``."""
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            self.id = message.get("id", self.id)
            self.model = message.get("model") or self.model
            self._usage = dict(message.get("usage") or {})
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            return self._block_start(int(event.get("index", 0)), event.get("content_block") or {})
        if kind == "content_block_delta":
            return self._block_delta(int(event.get("index", 0)), event.get("delta") or {})
        if kind == "content_block_stop":
            return self._block_stop(int(event.get("index", 0)))
        if kind == "message_delta":
            self._usage.update({k: v for k, v in (event.get("usage") or {}).items() if v is not None})
            stop_reason = (event.get("delta") or {}).get("stop_reason")
            if stop_reason is None:
                return []
            return [self._chunk({}, finish_reason=finish_reason(stop_reason))]
        if kind == "message_stop":
            self.finished = True
            if self.include_usage:
                return [self._usage_chunk()]
            return []
        if kind == "error":
            raise error_from_body(None, event, {}, self.errors)
        return []  # ping, and event types added after this was written

    def _block_start(self, index: int, block: Mapping[str, Any]) -> list[JSON]:
        kind = block.get("type")
        if kind == "text" and block.get("text"):
            return [self._chunk({"content": block["text"]})]
        if kind == "tool_use":
            tool_index = len(self._tool_index)
            self._tool_index[index] = tool_index
            call = {
                "index": tool_index,
                "id": block.get("id"),
                "type": "function",
                "function": {"name": block.get("name"), "arguments": ""},
            }
            return [self._chunk({"tool_calls": [call]})]
        if kind == "thinking":
            self._thinking[index] = {
                "type": "thinking",
                "thinking": block.get("thinking", ""),
                "signature": "",
            }
            if block.get("thinking"):
                return [self._chunk({"reasoning_content": block["thinking"]})]
        if kind == "redacted_thinking":
            return [
                self._chunk(
                    {"thinking_blocks": [{"type": "redacted_thinking", "data": block.get("data", "")}]}
                )
            ]
        return []

    def _block_delta(self, index: int, delta: Mapping[str, Any]) -> list[JSON]:
        kind = delta.get("type")
        if kind == "text_delta":
            return [self._chunk({"content": delta.get("text", "")})]
        if kind == "input_json_delta":
            fragment = delta.get("partial_json", "")
            if not fragment or index not in self._tool_index:
                return []
            call = {"index": self._tool_index[index], "function": {"arguments": fragment}}
            return [self._chunk({"tool_calls": [call]})]
        if kind == "thinking_delta":
            text = delta.get("thinking", "")
            if index in self._thinking:
                self._thinking[index]["thinking"] += text
            return [self._chunk({"reasoning_content": text})] if text else []
        if kind == "signature_delta" and index in self._thinking:
            self._thinking[index]["signature"] += delta.get("signature", "")
        return []  # citations and deltas of server-tool blocks have no OpenAI equivalent

    def _block_stop(self, index: int) -> list[JSON]:
        block = self._thinking.pop(index, None)
        if block is None:
            return []
        # The complete block, signature included, so a client can send it back on the next turn.
        return [self._chunk({"thinking_blocks": [block]})]

    def _chunk(self, delta: JSON, *, finish_reason: str | None = None) -> JSON:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}],
        }

    def _usage_chunk(self) -> JSON:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": openai_usage(self._usage),
        }
