"""OpenAI ``chat.completion.chunk`` dicts -> Responses typed stream events (SSE bytes).

The sequence is the Responses API's: ``response.created``, ``response.in_progress``, then per output
item ``response.output_item.added``, its content events (``response.content_part.added``,
``response.output_text.delta``... ``.done``, ``response.content_part.done`` for a message;
``response.function_call_arguments.delta``... ``.done`` for a function call;
``response.reasoning_text.delta``... ``.done`` for reasoning), ``response.output_item.done``, and at the
end ``response.completed`` (or ``response.incomplete`` when the output was cut by a limit). A
failure mid-stream ends it with ``response.failed``. Every event carries a ``sequence_number``.

:class:`ResponsesStreamTranslator` is pure and incremental and keeps the final Response object
(``.response``) so a streamed response can be stored like any other; :func:`responses_events`
drives it over the router's chunk iterator.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from routerd.errors import BadGatewayError, OpenAIError
from routerd.frontdoors.responses import (
    INCOMPLETE_REASONS,
    ResponsesCall,
    function_call_item,
    item_id,
    message_item,
    output_text_part,
    reasoning_item,
    response_object,
    response_usage,
)
from routerd.routing.relay import close_iterator

JSON = dict[str, Any]

log = logging.getLogger("routerd.frontdoors")


@dataclass(frozen=True, slots=True)
class _TextKind:
    """How one kind of streamed text is itemised: its id prefix, events, part and finished item."""

    prefix: str
    delta_event: str
    done_event: str
    done_field: str
    part: Callable[[str], JSON]
    item: Callable[[str, str], JSON]


_TEXT_KINDS: Mapping[str, _TextKind] = {
    "reasoning": _TextKind(
        "rs",
        "response.reasoning_text.delta",
        "response.reasoning_text.done",
        "text",
        lambda text: {"type": "reasoning_text", "text": text},
        lambda id_, text: reasoning_item(id_, text),
    ),
    "message": _TextKind(
        "msg",
        "response.output_text.delta",
        "response.output_text.done",
        "text",
        output_text_part,
        lambda id_, text: message_item(id_, text),
    ),
    "refusal": _TextKind(
        "msg",
        "response.refusal.delta",
        "response.refusal.done",
        "refusal",
        lambda text: {"type": "refusal", "refusal": text},
        lambda id_, text: message_item(id_, "", text),
    ),
}


class _Item:
    """The output item being streamed."""

    __slots__ = ("call_id", "id", "index", "kind", "name", "text", "tool_index")

    def __init__(self, kind: str, item_id_: str, index: int, *, tool_index: int = -1) -> None:
        self.kind = kind  # "function_call" or a key of _TEXT_KINDS
        self.id = item_id_
        self.index = index  # output_index
        self.text = ""  # text, arguments or reasoning so far
        self.tool_index = tool_index
        self.call_id = ""
        self.name = ""


class ResponsesStreamTranslator:
    """Chat chunks in, Responses events out; one instance per stream."""

    def __init__(self, call: ResponsesCall, *, response_id: str, created_at: float, model: str | None = None):
        self.call = call
        self.response_id = response_id
        self.created_at = created_at
        self.model = model or str(call.chat["model"])
        self.sequence = 0
        self.output: list[JSON] = []
        self.response: JSON | None = None  # the final Response object, once finished or failed
        self._open: _Item | None = None
        self._tools: dict[int, str] = {}  # chat tool call index -> item id
        self._finish: str | None = None
        self._usage: Any = None

    def start(self) -> list[bytes]:
        """``response.created`` and ``response.in_progress``."""
        skeleton = self._response("in_progress")
        return [
            self._event("response.created", response=skeleton),
            self._event("response.in_progress", response=skeleton),
        ]

    def feed(self, chunk: Mapping[str, Any]) -> list[bytes]:
        """The events for one chat chunk."""
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        if chunk.get("model") and self.model == self.call.chat["model"]:
            self.model = str(chunk["model"])
        events: list[bytes] = []
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(reasoning, str) and reasoning:
                events.extend(self._text("reasoning", reasoning))
            if isinstance(delta.get("content"), str) and delta["content"]:
                events.extend(self._text("message", delta["content"]))
            if isinstance(delta.get("refusal"), str) and delta["refusal"]:
                events.extend(self._text("refusal", delta["refusal"]))
            for tool_call in delta.get("tool_calls") or ():
                events.extend(self._tool_call(tool_call))
            if choice.get("finish_reason"):
                self._finish = str(choice["finish_reason"])
        return events

    def finish(self) -> list[bytes]:
        """The closing events: the open item's, then ``response.completed`` or ``.incomplete``."""
        events = self._close()
        reason = INCOMPLETE_REASONS.get(self._finish or "")
        self.response = self._response(
            "incomplete" if reason else "completed",
            usage=response_usage(self._usage),
            incomplete_reason=reason,
        )
        kind = "response.incomplete" if reason else "response.completed"
        events.append(self._event(kind, response=self.response))
        return events

    def fail(self, exc: BaseException) -> list[bytes]:
        """``response.failed`` for an error mid-stream (the open item is left unfinished)."""
        if not isinstance(exc, OpenAIError):
            log.exception("unhandled error in a Responses stream", exc_info=exc)
        status = exc.status_code if isinstance(exc, OpenAIError) else 500
        message = exc.message if isinstance(exc, OpenAIError) else "stream interrupted by an internal error"
        code = "rate_limit_exceeded" if status == 429 else "server_error"
        self.response = self._response("failed", error={"code": code, "message": message})
        return [self._event("response.failed", response=self.response)]

    # --- items -----------------------------------------------------------------------------------

    def _text(self, kind: str, delta: str) -> list[bytes]:
        """A text delta of ``kind`` (a key of ``_TEXT_KINDS``), opening its item first if needed."""
        spec = _TEXT_KINDS[kind]
        events: list[bytes] = []
        item = self._open
        if item is None or item.kind != kind:
            events.extend(self._close())
            item = self._open = _Item(
                kind, item_id(spec.prefix, self.response_id, len(self.output)), len(self.output)
            )
            if kind == "reasoning":
                added = reasoning_item(item.id, "", status="in_progress")
                added["content"] = []
            else:
                added = {
                    "id": item.id,
                    "type": "message",
                    "role": "assistant",
                    "status": "in_progress",
                    "content": [],
                }
            events.append(self._event("response.output_item.added", output_index=item.index, item=added))
            events.append(self._part_event("response.content_part.added", item, ""))
        item.text += delta
        extra: JSON = {"logprobs": []} if kind == "message" else {}
        events.append(
            self._event(
                spec.delta_event,
                item_id=item.id,
                output_index=item.index,
                content_index=0,
                delta=delta,
                **extra,
            )
        )
        return events

    def _tool_call(self, tool_call: Mapping[str, Any]) -> list[bytes]:
        tool_index = int(tool_call.get("index", 0))
        function = tool_call.get("function") or {}
        events: list[bytes] = []
        if tool_index not in self._tools:
            events.extend(self._close())
            item = self._open = _Item(
                "function_call",
                item_id("fc", self.response_id, len(self.output)),
                len(self.output),
                tool_index=tool_index,
            )
            item.call_id = str(tool_call.get("id") or item.id)
            item.name = str(function.get("name") or "")
            self._tools[tool_index] = item.id
            added = function_call_item(item.id, item.call_id, item.name, "", status="in_progress")
            events.append(self._event("response.output_item.added", output_index=item.index, item=added))
        fragment = function.get("arguments")
        if fragment:
            current = self._open
            if current is None or current.kind != "function_call" or current.tool_index != tool_index:
                raise BadGatewayError("upstream interleaved the arguments of parallel tool calls")
            current.text += fragment
            events.append(
                self._event(
                    "response.function_call_arguments.delta",
                    item_id=current.id,
                    output_index=current.index,
                    delta=fragment,
                )
            )
        return events

    def _close(self) -> list[bytes]:
        item, self._open = self._open, None
        if item is None:
            return []
        events: list[bytes] = []
        if item.kind == "function_call":
            events.append(
                self._event(
                    "response.function_call_arguments.done",
                    item_id=item.id,
                    output_index=item.index,
                    name=item.name,
                    arguments=item.text,
                )
            )
            done = function_call_item(item.id, item.call_id, item.name, item.text)
        else:
            spec = _TEXT_KINDS[item.kind]
            extra: JSON = {"logprobs": []} if item.kind == "message" else {}
            done_fields: JSON = {spec.done_field: item.text, **extra}
            events.append(
                self._event(
                    spec.done_event, item_id=item.id, output_index=item.index, content_index=0, **done_fields
                )
            )
            events.append(self._part_event("response.content_part.done", item, item.text))
            done = spec.item(item.id, item.text)
        self.output.append(done)
        events.append(self._event("response.output_item.done", output_index=item.index, item=done))
        return events

    # --- rendering -------------------------------------------------------------------------------

    def _part_event(self, name: str, item: _Item, text: str) -> bytes:
        part = _TEXT_KINDS[item.kind].part(text)
        return self._event(name, item_id=item.id, output_index=item.index, content_index=0, part=part)

    def _response(self, status: str, **extra: Any) -> JSON:
        return response_object(
            self.call,
            response_id=self.response_id,
            created_at=self.created_at,
            model=self.model,
            status=status,
            output=list(self.output),
            **extra,
        )

    def _event(self, kind: str, /, **fields: Any) -> bytes:
        event = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


async def responses_events(
    chunks: AsyncIterator[Mapping[str, Any]], translator: ResponsesStreamTranslator
) -> AsyncIterator[bytes]:
    """The Responses SSE body for the router's chunk stream; the chunks are closed in every case."""
    try:
        for event in translator.start():
            yield event
        async for chunk in chunks:
            for event in translator.feed(chunk):
                yield event
        for event in translator.finish():
            yield event
    except Exception as exc:
        for event in translator.fail(exc):
            yield event
    finally:
        await close_iterator(chunks)
