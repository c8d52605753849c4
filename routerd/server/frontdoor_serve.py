"""Serving a front door (Anthropic Messages, OpenAI Responses) through routerd's one call path.

A :class:`Door` turns its client's request into the internal chat call (plus, for deployments that
speak the client's API, a :class:`~routerd.routing.types.NativeCall` sent as it is) and renders the
router's answer back in the client's format. :func:`serve` is the rest, the same for every door and
the same as chat completions': the body read with its bound, the gate (keys, limits, budgets,
guardrails, cache, spend), the router (retries, fallbacks, native or translated per attempt), and
the request log and metrics, accounted once per request.

Guardrails and the cache work on the chat shape, so a request that any guardrail or the cache looks
at is translated for every deployment; the others go natively where they can.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
import orjson
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from routerd.cache.replay import chunks_from_answer
from routerd.cost import request_cost
from routerd.errors import OpenAIError
from routerd.events import RequestStarted
from routerd.integrations.context import REQUEST_HEADERS
from routerd.providers.base import CHAT
from routerd.routing.types import CallResult, NativeCall
from routerd.server.answer_headers import routing_headers
from routerd.server.auth import presented_key, require_key
from routerd.server.gate import Passage, caller_of, identify
from routerd.server.inference import (
    RequestLog,
    abandon_stream,
    answer_start,
    cache_headers,
    chat_usage,
    parse_json,
    receive_body,
    refuse,
    request_headers,
    text_chars,
)
from routerd.server.limits import new_request_id
from routerd.server.state import AppState
from routerd.tokens import CHARS_PER_TOKEN, count_request_tokens

JSON = dict[str, Any]


def owner_of(headers: Mapping[str, str]) -> str:
    """Who stored responses belong to: a digest of the presented key (never the key itself)."""
    key = presented_key(headers) or ""
    return hashlib.sha256(b"routerd-responses\x00" + key.encode()).hexdigest()


def authenticate(state: AppState, headers: Mapping[str, str]) -> None:
    """Raise 401 unless the caller's key is the master key or a valid client key."""
    if state.gate is None:
        require_key(headers, state.master_key)
    else:
        identify(state.table, state.master_key, headers, time.time())


@dataclass(slots=True)
class DoorCall:
    """One request as a door prepared it."""

    chat: JSON  # the internal chat body (the gate and non-native deployments see this)
    native: NativeCall | None = None  # the request as the client sent it, for native deployments
    forward: Mapping[str, str] = field(default_factory=dict)  # headers passed on to every upstream
    context: Any = None  # the door's own state for rendering the answer


class Door:
    """A client API served through the chat call path; subclasses fill in the format."""

    #: the ``endpoint`` of the request log and metrics
    name = ""

    def error(self, exc: BaseException, headers: dict[str, str]) -> Response:
        """The error answer, in this API's shape."""
        raise NotImplementedError

    async def prepare(self, state: AppState, body: Any, headers: Mapping[str, str]) -> DoorCall:
        """Validate and translate a parsed request body (raises the API's 400)."""
        raise NotImplementedError

    async def answer(self, state: AppState, call: DoorCall, body: JSON, *, native: bool) -> JSON:
        """The client's answer for a complete chat answer (or a native one, passed on)."""
        raise NotImplementedError

    def stream(
        self, state: AppState, call: DoorCall, chunks: AsyncIterator[JSON], *, native: bool
    ) -> AsyncIterator[bytes]:
        """The client's SSE body for a chat chunk stream (or native events, passed on)."""
        raise NotImplementedError

    def native_usage(self, body: Mapping[str, Any]) -> tuple[int, int]:
        """(input, output) tokens of a complete native answer."""
        usage = body.get("usage")
        if not isinstance(usage, Mapping):
            return 0, 0
        return int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)


class _DoorLog(RequestLog):
    """The request log of a door: its prompt estimate counts the chat body, whatever the endpoint."""

    __slots__ = ()

    def prompt_tokens_estimate(self) -> int:
        return count_request_tokens(CHAT, self.body) if self.body is not None else 0


def _plain(passage: Passage | None) -> bool:
    """Whether nothing of the gate needs the chat shape: no guardrail runs, no cache lookup."""
    if passage is None:
        return True
    return not (passage.runs or passage.post or passage.during or passage.cache_key is not None)


async def serve(state: AppState, door: Door, scope: Scope, receive: Receive, send: Send) -> None:
    """Serve one request of ``door``; see the module docstring."""
    started = time.perf_counter()
    headers = request_headers(scope)
    REQUEST_HEADERS.set(headers)  # for the daemon's callbacks, as on chat completions (traceparent)
    request_id = headers.get("x-request-id") or new_request_id()
    log = _DoorLog(state, door.name, request_id, started)
    state.events.emit(RequestStarted(request_id, door.name))
    passage: Passage | None = None
    try:
        table = state.table
        # the key before the body: a missing or unknown key costs no body read or parse
        caller = caller_of(state.gate, table, state.master_key, headers)
        raw = await receive_body(receive, headers.get("content-length"), state.max_body_bytes)
        call = await door.prepare(state, parse_json(raw), headers)
        chat = call.chat
        log.model = str(chat.get("model", ""))
        log.stream = bool(chat.get("stream"))
        if log.stream:
            log.body = chat
        if state.gate is not None:
            passage = await Passage.enter(state.gate, table, state.master_key, CHAT, headers, chat, caller)
            log.passage = passage
            cached = await passage.cached_answer(chat)
            if cached is not None:
                await _from_cache(state, door, call, cached, log, request_id, scope, receive, send)
                return
        result = await state.router.call(
            CHAT,
            chat,
            request_id=request_id,
            extra_headers=call.forward or None,
            native=call.native if _plain(passage) else None,
        )
    except asyncio.CancelledError:
        # the protocol cancels the request when its client disconnects (routerd.server.protocol)
        log.finish(499, None, error="ClientDisconnect")
        raise
    except Exception as exc:
        await refuse(exc, door.error, log, request_id, scope, receive, send)
        return
    if result.stream is not None:
        await _stream(state, door, call, result, log, request_id, scope, receive, send)
    else:
        await _complete(state, door, call, result, log, request_id, scope, receive, send)


async def _complete(
    state: AppState,
    door: Door,
    call: DoorCall,
    result: CallResult,
    log: RequestLog,
    request_id: str,
    scope: Scope,
    receive: Receive,
    send: Send,
) -> None:
    body = result.response.body if result.response is not None else {}
    tokens = door.native_usage(body) if result.native else chat_usage(body)
    cost = request_cost(result.deployment, *tokens, response_model=body.get("model"))
    try:
        if not result.native and log.passage is not None:
            await log.passage.answer(body)  # post_call guardrails (may refuse or mask)
        answer = await door.answer(state, call, body, native=result.native)
    except Exception as exc:
        status = exc.status_code if isinstance(exc, OpenAIError) else 500
        try:
            await door.error(exc, routing_headers(request_id, result.info))(scope, receive, send)
        finally:
            log.finish(status, result.info, tokens, error=type(exc).__name__, cost=cost)
        return
    payload = orjson.dumps(answer)
    blocks = getattr(send, "head_blocks", False)
    try:
        await send(answer_start(request_id, result.info, len(payload), cost, log.passage, blocks))
        await send({"type": "http.response.body", "body": payload})
    finally:
        log.finish(200, result.info, tokens, cost=cost)


async def _stream(
    state: AppState,
    door: Door,
    call: DoorCall,
    result: CallResult,
    log: RequestLog,
    request_id: str,
    scope: Scope,
    receive: Receive,
    send: Send,
) -> None:
    stream_headers = routing_headers(request_id, result.info)
    stream_headers["cache-control"] = "no-cache"
    if log.passage is not None:
        stream_headers.update(cache_headers(log.passage))
    body = _metered(state, door, call, result, log)
    try:
        await StreamingResponse(body, media_type="text/event-stream", headers=stream_headers)(
            scope, receive, send
        )
    finally:
        if not log.finished:  # the client left: the body was interrupted, or never started
            await abandon_stream(body, result, log)


class _Meter:
    """What a relayed stream used: the upstream's usage when it reported one, else the text seen."""

    __slots__ = ("chars", "error", "native_usage")

    def __init__(self) -> None:
        self.chars = 0
        self.native_usage: tuple[int, int] = (0, 0)
        self.error: Exception | None = None  # what ended the stream early (the door renders it in-band)

    async def chat(self, chunks: AsyncIterator[JSON]) -> AsyncIterator[JSON]:
        try:
            async for chunk in chunks:
                if not chunk.get("usage"):
                    self.chars += text_chars(chunk)
                yield chunk
        except Exception as exc:
            self.error = exc
            raise

    async def native(self, events: AsyncIterator[JSON]) -> AsyncIterator[JSON]:
        prompt, completion = 0, 0
        try:
            async for event in events:
                prompt, completion = _native_event_usage(event, prompt, completion)
                self.native_usage = (prompt, completion)
                yield event
        except Exception as exc:
            self.error = exc
            raise


def _native_event_usage(event: Mapping[str, Any], prompt: int, completion: int) -> tuple[int, int]:
    """Usage carried by a native stream event: Anthropic's message_start / message_delta, or the
    Response object of a Responses stream's final event."""
    kind = event.get("type")
    usage: Any = None
    if kind == "message_start":
        usage = (event.get("message") or {}).get("usage")
    elif kind == "message_delta":
        usage = event.get("usage")
    elif (
        isinstance(kind, str) and kind.startswith("response.") and isinstance(event.get("response"), Mapping)
    ):
        usage = event["response"].get("usage")
    if isinstance(usage, Mapping):
        prompt = int(usage.get("input_tokens") or prompt)
        completion = int(usage.get("output_tokens") or completion)
    return prompt, completion


async def _metered(
    state: AppState, door: Door, call: DoorCall, result: CallResult, log: RequestLog
) -> AsyncGenerator[bytes, None]:
    """The door's SSE body over the router's stream, accounted once when it ends."""
    assert result.stream is not None
    stream = result.stream
    meter = _Meter()
    passage = log.passage
    if result.native:
        chunks = meter.native(stream)
    else:
        chunks = meter.chat(passage.relay(stream) if passage is not None else stream)
    status, error = 200, None
    try:
        async for part in door.stream(state, call, chunks, native=result.native):
            yield part
    except BaseException:
        status, error = 499, "ClientDisconnect"  # cancelled: the client went away
        raise
    finally:
        with anyio.CancelScope(shield=True):
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
        _finish_stream(result, log, meter, status, error)


def _finish_stream(
    result: CallResult, log: RequestLog, meter: _Meter, status: int, error: str | None
) -> None:
    if meter.error is not None and status == 200:
        status = meter.error.status_code if isinstance(meter.error, OpenAIError) else 500
        error = type(meter.error).__name__
    usage = getattr(result.stream, "usage", None)
    if result.native:
        tokens = meter.native_usage
    else:
        tokens = chat_usage({"usage": usage}) if isinstance(usage, dict) else (0, 0)
    estimated = tokens == (0, 0) and meter.chars > 0
    if estimated:
        tokens = (log.prompt_tokens_estimate(), math.ceil(meter.chars / CHARS_PER_TOKEN))
    cost = request_cost(result.deployment, *tokens) if tokens != (0, 0) else None
    log.finish(status, result.info, tokens, error=error, cost=cost, estimated=estimated)


async def _from_cache(
    state: AppState,
    door: Door,
    call: DoorCall,
    answer: JSON,
    log: RequestLog,
    request_id: str,
    scope: Scope,
    receive: Receive,
    send: Send,
) -> None:
    """A cache hit (a chat answer), rendered by the door as an answer or a stream."""
    assert log.passage is not None
    headers = {"x-request-id": request_id, **cache_headers(log.passage)}
    try:
        if log.stream:

            async def replay() -> AsyncIterator[JSON]:
                for chunk in chunks_from_answer(CHAT, answer, include_usage=True):
                    yield chunk

            parts = [part async for part in door.stream(state, call, replay(), native=False)]
            headers["cache-control"] = "no-cache"
            response = Response(b"".join(parts), media_type="text/event-stream", headers=headers)
        else:
            rendered = await door.answer(state, call, answer, native=False)
            response = Response(orjson.dumps(rendered), media_type="application/json", headers=headers)
        await response(scope, receive, send)
    finally:
        log.finish(200, None)
