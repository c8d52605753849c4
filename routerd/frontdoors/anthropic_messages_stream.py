"""OpenAI ``chat.completion.chunk`` dicts -> Anthropic Messages stream events (SSE bytes).

The event sequence is Anthropic's: ``message_start``, a ``ping``, then per content block
``content_block_start`` / ``content_block_delta``... / ``content_block_stop`` (thinking, text and
``tool_use`` blocks, in the order the chunks open them), then ``message_delta`` (stop reason and
usage) and ``message_stop``. A failure mid-stream becomes an ``error`` event, after which nothing
more is sent. :class:`MessagesStreamTranslator` is pure and incremental (a chunk in, its events out);
:func:`anthropic_events` drives it over the router's chunk iterator.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import orjson

from routerd.errors import BadGatewayError
from routerd.frontdoors.anthropic_errors import error_event
from routerd.frontdoors.anthropic_messages import anthropic_usage, message_id, stop_reason
from routerd.routing.relay import close_iterator

JSON = dict[str, Any]

#: the keep-alive event; the server may send it between chunks of a slow stream
PING_EVENT = b'event: ping\ndata: {"type":"ping"}\n\n'


def sse(event: JSON) -> bytes:
    """One named SSE event, as Anthropic writes them: ``event: <type>`` then its JSON."""
    name = str(event["type"]).encode()
    return b"event: " + name + b"\ndata: " + orjson.dumps(event) + b"\n\n"


class MessagesStreamTranslator:
    """Chat chunks in, Anthropic SSE events out; one instance per stream.

    ``input_tokens`` is the estimate ``message_start`` reports (chat streams report usage only at the
    end; the real count follows in ``message_delta``). ``stop_sequences`` are the client's, to
    recognise a stop sequence the upstream names (see ``anthropic_messages.stop_reason``).
    """

    def __init__(
        self, *, model: str | None = None, input_tokens: int = 0, stop_sequences: Sequence[str] = ()
    ):
        self.model = model
        self.input_tokens = input_tokens
        self.stop_sequences = tuple(stop_sequences)
        self.started = False
        self.finished = False
        self._index = -1  # index of the newest content block
        self._open: str | None = None  # type of the open block, if one is open
        self._tool_blocks: dict[int, int] = {}  # chat tool call index -> block index
        self._stop: tuple[str, str | None] | None = None
        self._usage: Any = None

    def feed(self, chunk: Mapping[str, Any]) -> list[bytes]:
        """The events for one chat chunk (none, one or several)."""
        events = self._start(chunk) if not self.started else []
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue  # Anthropic has one answer per message; n > 1 is refused upstream of here
            events.extend(self._delta(choice.get("delta") or {}))
            if choice.get("finish_reason"):
                self._stop = stop_reason(choice, self.stop_sequences)
        return events

    def finish(self) -> list[bytes]:
        """The closing events, once the chunks have ended."""
        events = self._start({}) if not self.started else []
        events.extend(self._close())
        reason, sequence = self._stop or ("end_turn", None)
        usage = anthropic_usage(self._usage)
        if self._usage is None:
            usage["input_tokens"] = self.input_tokens
        events.append(
            sse(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": reason, "stop_sequence": sequence},
                    "usage": usage,
                }
            )
        )
        events.append(sse({"type": "message_stop"}))
        self.finished = True
        return events

    def _start(self, chunk: Mapping[str, Any]) -> list[bytes]:
        self.started = True
        message: JSON = {
            "id": message_id(chunk.get("id")),
            "type": "message",
            "role": "assistant",
            "model": self.model or chunk.get("model") or "",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": self.input_tokens, "output_tokens": 0},
        }
        return [sse({"type": "message_start", "message": message}), PING_EVENT]

    def _delta(self, delta: Mapping[str, Any]) -> list[bytes]:
        events: list[bytes] = []
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            events.extend(self._ensure("thinking", {"type": "thinking", "thinking": "", "signature": ""}))
            events.append(self._block_delta({"type": "thinking_delta", "thinking": reasoning}))
        for block in delta.get("thinking_blocks") or ():
            events.extend(self._thinking_block(block))
        text = delta.get("content") or delta.get("refusal")  # a refusal reads as text, as when not streamed
        if isinstance(text, str) and text:
            events.extend(self._ensure("text", {"type": "text", "text": ""}))
            events.append(self._block_delta({"type": "text_delta", "text": text}))
        for call in delta.get("tool_calls") or ():
            events.extend(self._tool_call(call))
        return events

    def _thinking_block(self, block: Mapping[str, Any]) -> list[bytes]:
        # An Anthropic upstream (through routerd's chat translation) sends each finished thinking block
        # again whole, with the signature a client must send back: when its text was streamed already
        # only the signature is news, and the block is complete once it is sent.
        events: list[bytes] = []
        if block.get("type") == "redacted_thinking":
            events.extend(self._close())
            self._index += 1
            start = {"type": "redacted_thinking", "data": block.get("data", "")}
            events.append(sse({"type": "content_block_start", "index": self._index, "content_block": start}))
            events.append(sse({"type": "content_block_stop", "index": self._index}))
            return events
        if self._open != "thinking":
            events.extend(self._ensure("thinking", {"type": "thinking", "thinking": "", "signature": ""}))
            if block.get("thinking"):
                events.append(self._block_delta({"type": "thinking_delta", "thinking": block["thinking"]}))
        if block.get("signature"):
            events.append(self._block_delta({"type": "signature_delta", "signature": block["signature"]}))
        events.extend(self._close())
        return events

    def _tool_call(self, call: Mapping[str, Any]) -> list[bytes]:
        tool_index = int(call.get("index", 0))
        function = call.get("function") or {}
        events: list[bytes] = []
        if tool_index not in self._tool_blocks:
            events.extend(self._close())
            self._index += 1
            self._open = "tool_use"
            self._tool_blocks[tool_index] = self._index
            start = {
                "type": "tool_use",
                "id": str(call.get("id") or f"toolu_{self._index}"),
                "name": str(function.get("name") or ""),
                "input": {},
            }
            events.append(sse({"type": "content_block_start", "index": self._index, "content_block": start}))
        fragment = function.get("arguments")
        if fragment:
            if self._tool_blocks[tool_index] != self._index or self._open != "tool_use":
                # Anthropic's blocks are sequential: a closed block cannot receive more input.
                raise BadGatewayError("upstream interleaved the arguments of parallel tool calls")
            events.append(self._block_delta({"type": "input_json_delta", "partial_json": fragment}))
        return events

    def _ensure(self, kind: str, start: JSON) -> list[bytes]:
        """Open a block of ``kind`` unless one is open already."""
        if self._open == kind:
            return []
        events = self._close()
        self._index += 1
        self._open = kind
        events.append(sse({"type": "content_block_start", "index": self._index, "content_block": start}))
        return events

    def _close(self) -> list[bytes]:
        if self._open is None:
            return []
        self._open = None
        return [sse({"type": "content_block_stop", "index": self._index})]

    def _block_delta(self, delta: JSON) -> bytes:
        return sse({"type": "content_block_delta", "index": self._index, "delta": delta})


async def anthropic_events(
    chunks: AsyncIterator[Mapping[str, Any]], translator: MessagesStreamTranslator
) -> AsyncIterator[bytes]:
    """The Anthropic SSE body for the router's chunk stream.

    An error raised by the chunks (or by the translation) ends the body with an ``error`` event;
    the chunk iterator is closed in every case, which closes the upstream connection.
    """
    try:
        async for chunk in chunks:
            for event in translator.feed(chunk):
                yield event
        for event in translator.finish():
            yield event
    except Exception as exc:
        yield error_event(exc)
    finally:
        await close_iterator(chunks)
