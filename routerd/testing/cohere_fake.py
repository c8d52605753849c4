"""A fake Cohere v2 API on a loopback port: ``/v2/chat`` (plain and SSE stream), ``/v2/embed``, ``/v2/rerank``.

Requires ``Authorization: Bearer <api_key>``, refuses chat fields v2 does not have (as the real API
does), answers errors as ``{"message": ...}`` and streams the typed events of v2 (``message-start``,
``content-start``, ``content-delta``, ``content-end``, ``tool-call-start`` / ``-delta`` / ``-end``,
``message-end`` with usage). Without a scripted reply it echoes the last user text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from routerd.testing.fake_http import FakeServer, StreamPlan, json_response, open_event_stream

JSON = dict[str, Any]

CHAT_FIELDS = frozenset(
    {
        "model", "messages", "tools", "documents", "citation_options", "response_format", "safety_mode",
        "max_tokens", "stop_sequences", "temperature", "seed", "frequency_penalty", "presence_penalty",
        "k", "p", "logprobs", "tool_choice", "strict_tools", "stream", "thinking",
    }
)  # fmt: skip


@dataclass(slots=True)
class CohereReply:
    """One scripted answer: text and tool calls (None: echo), or an error status and message."""

    text: str | None = None
    tool_calls: list[JSON] = field(default_factory=list)
    finish_reason: str = "COMPLETE"
    usage: JSON = field(default_factory=lambda: {"tokens": {"input_tokens": 9, "output_tokens": 4}})
    status: int = 200
    message: str = ""
    stream: StreamPlan = field(default_factory=StreamPlan)

    @classmethod
    def failure(cls, status: int, message: str) -> CohereReply:
        return cls(status=status, message=message)

    @classmethod
    def tool_call(cls, name: str, arguments: JSON, call_id: str = "call_1") -> CohereReply:
        call = {
            "id": call_id,
            "type": "function",
            "function": {"name": name, "arguments": orjson.dumps(arguments).decode()},
        }
        return cls(text="", tool_calls=[call], finish_reason="TOOL_CALL")


class FakeCohere(FakeServer[CohereReply]):
    def __init__(self, *, api_key: str, embedding_dim: int = 4) -> None:
        super().__init__(CohereReply())
        self.api_key = api_key
        self.embedding_dim = embedding_dim

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v2/chat", self._chat),
            web.post("/v2/embed", self._embed),
            web.post("/v2/rerank", self._rerank),
        ]

    async def _check(self, request: web.Request) -> tuple[JSON, web.Response | None]:
        recorded = await self.record(request)
        if recorded.headers.get("authorization") != f"Bearer {self.api_key}":
            return {}, json_response({"message": "invalid api token"}, status=401)
        if not isinstance(recorded.json, dict):
            return {}, json_response({"message": "invalid request: body must be JSON"}, status=400)
        return recorded.json, None

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body, refused = await self._check(request)
        if refused is not None:
            return refused
        unknown = sorted(set(body) - CHAT_FIELDS)
        if unknown:
            return json_response(
                {"message": f"invalid request: unknown field: parameter {unknown[0]} is not a valid field"},
                status=400,
            )
        reply = self.next_reply()
        if reply.status >= 400:
            return json_response({"message": reply.message}, status=reply.status)
        text = reply.text if reply.text is not None else f"echo: {_last_user_text(body)}"
        if body.get("stream"):
            response = await open_event_stream(request)
            return await self.write_stream(request, response, _events(text, reply), reply.stream, _encode)
        message: JSON = {"role": "assistant", "content": [{"type": "text", "text": text}] if text else []}
        if reply.tool_calls:
            message["tool_calls"] = reply.tool_calls
        return json_response(
            {"id": "chat-1", "finish_reason": reply.finish_reason, "message": message, "usage": reply.usage}
        )

    async def _embed(self, request: web.Request) -> web.StreamResponse:
        body, refused = await self._check(request)
        if refused is not None:
            return refused
        if not body.get("input_type"):
            return json_response({"message": "invalid request: input_type is required"}, status=400)
        reply = self.next_reply()
        if reply.status >= 400:
            return json_response({"message": reply.message}, status=reply.status)
        texts = body.get("texts") or []
        vectors = [[float((len(t) + i) % 5) for i in range(self.embedding_dim)] for t in texts]
        meta = {"billed_units": {"input_tokens": sum(len(t.split()) for t in texts)}}
        return json_response({"id": "emb-1", "embeddings": {"float": vectors}, "texts": texts, "meta": meta})

    async def _rerank(self, request: web.Request) -> web.StreamResponse:
        body, refused = await self._check(request)
        if refused is not None:
            return refused
        query = set(str(body.get("query", "")).lower().split())
        documents = [str(d) for d in body.get("documents") or []]
        scored = [
            (len(query & set(d.lower().split())) / (len(query) or 1), i) for i, d in enumerate(documents)
        ]
        scored.sort(key=lambda pair: (-pair[0], pair[1]))
        top_n = body.get("top_n") or len(scored)
        results = [{"index": i, "relevance_score": score} for score, i in scored[:top_n]]
        return json_response(
            {"id": "rerank-1", "results": results, "meta": {"billed_units": {"search_units": 1}}}
        )


def _last_user_text(body: JSON) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            return "".join(p.get("text", "") for p in content or [] if isinstance(p, dict))
    return ""


def _events(text: str, reply: CohereReply) -> list[JSON]:
    events: list[JSON] = [
        {"type": "message-start", "id": "chat-1", "delta": {"message": {"role": "assistant"}}}
    ]
    if text:
        events.append(
            {
                "type": "content-start",
                "index": 0,
                "delta": {"message": {"content": {"type": "text", "text": ""}}},
            }
        )
        for start in range(0, len(text), 5):
            piece = text[start : start + 5]
            events.append(
                {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": piece}}}}
            )
        events.append({"type": "content-end", "index": 0})
    for index, call in enumerate(reply.tool_calls):
        head = {
            "id": call["id"],
            "type": "function",
            "function": {"name": call["function"]["name"], "arguments": ""},
        }
        events.append({"type": "tool-call-start", "index": index, "delta": {"message": {"tool_calls": head}}})
        arguments = call["function"]["arguments"]
        for start in range(0, len(arguments), 8):
            fragment = {"function": {"arguments": arguments[start : start + 8]}}
            events.append(
                {"type": "tool-call-delta", "index": index, "delta": {"message": {"tool_calls": fragment}}}
            )
        events.append({"type": "tool-call-end", "index": index})
    events.append(
        {"type": "message-end", "delta": {"finish_reason": reply.finish_reason, "usage": reply.usage}}
    )
    return events


def _encode(event: Any) -> bytes:
    name = event.get("type", "error") if isinstance(event, dict) else "error"
    return f"event: {name}\n".encode() + b"data: " + orjson.dumps(event) + b"\n\n"
