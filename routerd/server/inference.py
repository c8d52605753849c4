"""The OpenAI inference endpoints: chat completions, text completions, embeddings.

This is the hot path. Per request: read the body once (bounded), parse it once with orjson, check
the key and the field types, hand the dict to the router, and write the router's dict back with
orjson. Streams are relayed as they arrive; nothing is buffered. A stream from an OpenAI-compatible
upstream is relayed as the upstream's bytes, one block per upstream read (:meth:`StreamRelay.blocks`),
unless the gate must read its chunks (during_call guardrails, the cache keeping the answer): decided
once per request. Other streams are rendered chunk by chunk.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import anyio
import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Message, Receive, Scope, Send

from routerd.cost import COST_HEADER, request_cost, response_cost_header
from routerd.errors import BadRequestError, OpenAIError, RequestTooLargeError
from routerd.events import RequestFinished, RequestStarted
from routerd.integrations.context import REQUEST_HEADERS
from routerd.providers.base import CHAT, COMPLETIONS, EMBEDDINGS, IMAGES, MODERATIONS, RERANK
from routerd.routing.relay import StreamRelay
from routerd.routing.types import CallResult, RoutingInfo
from routerd.server.answer_headers import (
    HEAD_BLOCK,
    asgi_start,
    header_lines,
    routing_block,
    routing_headers,
)
from routerd.server.errors import error_response, sse_error_event
from routerd.server.gate import Passage, caller_of
from routerd.server.limits import new_request_id
from routerd.server.state import AppState
from routerd.server.validation import validate_body
from routerd.tokens import CHARS_PER_TOKEN, count_request_tokens

if TYPE_CHECKING:
    from routerd.guardrails.engine import GuardrailRun

_SSE_DONE = b"data: [DONE]\n\n"
_BODY_END: Message = {"type": "http.response.body", "body": b"", "more_body": False}
_STREAM_TYPE = b"content-type: text/event-stream; charset=utf-8\r\n"


async def receive_body(receive: Receive, declared: str | None, limit: int) -> bytes:
    """The request body from ASGI ``receive``, refusing more than ``limit`` bytes without reading them all.

    ``declared`` is the Content-Length header, if any. Raises ClientDisconnect when the client leaves
    before the body is complete.
    """
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise RequestTooLargeError(f"request body of {declared} bytes exceeds the {limit}-byte limit")
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False) and message["type"] == "http.request":
        if len(body) > limit:
            raise RequestTooLargeError(f"request body exceeds the {limit}-byte limit")
        return body  # the usual case: the whole body in one message
    chunks = [body]
    size = len(body)
    while True:
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        if size > limit:
            raise RequestTooLargeError(f"request body exceeds the {limit}-byte limit")
        if not message.get("more_body", False):
            return b"".join(chunks)
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        chunks.append(chunk)


async def read_body(request: Request, limit: int) -> bytes:
    """The body of a Starlette request, bounded as :func:`receive_body`."""
    return await receive_body(request.receive, request.headers.get("content-length"), limit)


def parse_json(raw: bytes) -> Any:
    if not raw:
        raise BadRequestError("request body is empty; send a JSON object", code="invalid_request_body")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(f"request body is not valid JSON: {exc}", code="invalid_json") from None


def _answer_start(
    request_id: str, info: RoutingInfo, length: int, cost: float | None, passage: Passage | None, blocks: bool
) -> Message:
    """The start of a successful answer of ``length`` bytes: its headers pre-rendered for a ``send``
    that takes them so (``blocks``), else as ASGI's list (see :mod:`routerd.server.answer_headers`)."""
    block = b"content-type: application/json\r\n" + routing_block(request_id, info)
    if cost is not None:
        value = response_cost_header(cost)[COST_HEADER].encode()
        block += b"%b: %b\r\nx-litellm-response-cost: %b\r\n" % (COST_HEADER.encode(), value, value)
    if passage is not None:
        block += header_lines(_cache_headers(passage))
    start = {
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-length", b"%d" % length)],
        HEAD_BLOCK: block,
    }
    return start if blocks else asgi_start(start)


def _stream_start(request_id: str, info: RoutingInfo, passage: Passage | None, blocks: bool) -> Message:
    """The start of a streamed answer (see :func:`_answer_start`)."""
    block = _STREAM_TYPE + routing_block(request_id, info) + b"cache-control: no-cache\r\n"
    if passage is not None:
        block += header_lines(_cache_headers(passage))
    start = {"type": "http.response.start", "status": 200, "headers": [], HEAD_BLOCK: block}
    return start if blocks else asgi_start(start)


def _usage(body: dict[str, Any] | None) -> tuple[int, int]:
    usage = body.get("usage") if body else None
    if not isinstance(usage, dict):
        return 0, 0
    return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)


class _RequestLog:
    """Collects what the RequestFinished event reports; emitted exactly once per request."""

    __slots__ = (
        "body",
        "endpoint",
        "finished",
        "model",
        "passage",
        "request_id",
        "started",
        "state",
        "stream",
        "wants_usage",
    )

    def __init__(self, state: AppState, endpoint: str, request_id: str, started: float) -> None:
        self.state = state
        self.endpoint = endpoint
        self.request_id = request_id
        self.started = started
        self.model = ""
        self.stream = False
        self.finished = False
        self.passage: Passage | None = None
        self.body: dict[str, Any] | None = None

    def prompt_tokens_estimate(self) -> int:
        return count_request_tokens(self.endpoint, self.body) if self.body is not None else 0

    def finish(
        self,
        status: int,
        info: RoutingInfo | None,
        tokens: tuple[int, int] = (0, 0),
        error: str | None = None,
        cost: float | None = None,
        estimated: bool = False,
        refused_runs: Sequence[GuardrailRun] = (),
        refused_caller: Mapping[str, str] | None = None,
    ) -> None:
        self.finished = True
        info = info or RoutingInfo()
        passage = self.passage
        gate_fields: dict[str, Any] = {"estimated_tokens": estimated}
        if passage is not None:
            passage.finish(tokens, cost, estimated=estimated, ok=status < 400)
            gate_fields.update(passage.log_fields(cost))
        else:
            if refused_runs:  # a pre_call guardrail refused the request: what ran is still counted
                gate_fields["guardrails"] = tuple(refused_runs)
            if refused_caller:  # ... and whose request it was
                gate_fields.update(refused_caller)
        self.state.events.emit(
            RequestFinished(
                request_id=self.request_id,
                endpoint=self.endpoint,
                model=self.model,
                group=info.group,
                deployment_id=info.deployment_id,
                provider=info.provider,
                status=status,
                stream=self.stream,
                attempts=info.attempts,
                retries=info.retries,
                fallbacks=info.fallbacks,
                latency=time.perf_counter() - self.started,
                upstream_latency=info.upstream_latency,
                ttft=info.ttft,
                prompt_tokens=tokens[0],
                completion_tokens=tokens[1],
                cost=cost,
                error=error,
                **gate_fields,
            )
        )


def _headers(scope: Scope) -> dict[str, str]:
    # ASGI servers give lower-case names; a handful of headers, decoded once
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}


async def handle(
    state: AppState,
    endpoint: str,
    scope: Scope,
    receive: Receive,
    send: Send,
    rewrite: Callable[[Any], Any] | None = None,
) -> None:
    """Serve one inference request for ``endpoint`` (chat, completions or embeddings).

    ``rewrite`` changes the parsed body before it is validated (the Azure routes set ``model`` from
    the path with it).

    Plain ASGI rather than Starlette's Request/Response: this runs for nearly every request, and
    their header parsing and rendering cost more than the rest of routerd's own work on a request.
    The request's accounting (metrics, the request log) runs once the answer is on its way.
    """
    started = time.perf_counter()
    headers = _headers(scope)
    REQUEST_HEADERS.set(headers)  # for the daemon's callbacks (OpenTelemetry reads traceparent)
    request_id = headers.get("x-request-id") or new_request_id()
    log = _RequestLog(state, endpoint, request_id, started)
    state.events.emit(RequestStarted(request_id, endpoint))
    passage: Passage | None = None
    try:
        table = state.table
        # the key before the body: a missing or unknown key costs no body read or parse
        caller = caller_of(state.gate, table, state.master_key, headers)
        raw = await receive_body(receive, headers.get("content-length"), state.max_body_bytes)
        parsed = parse_json(raw)
        body = validate_body(endpoint, rewrite(parsed) if rewrite is not None else parsed)
        log.model = body["model"]
        log.stream = bool(body.get("stream"))
        if log.stream:
            log.body = body
        if state.gate is not None:
            passage = await Passage.enter(
                state.gate, table, state.master_key, endpoint, headers, body, caller
            )
            log.passage = passage
            cached = await passage.cached_answer(body)
            if cached is not None:
                await _answer_from_cache(passage, cached, log, request_id, scope, receive, send)
                return
        timeout = body.get("timeout")
        result = await state.router.call(
            endpoint, body, request_id=request_id, timeout=float(timeout) if timeout is not None else None
        )
    except asyncio.CancelledError:
        # the protocol cancels the request when its client disconnects (routerd.server.protocol)
        log.finish(499, None, error="ClientDisconnect")
        raise
    except Exception as exc:
        await _refuse(exc, error_response, log, request_id, scope, receive, send)
        return

    blocks = getattr(send, "head_blocks", False)  # routerd's direct send (routerd.server.protocol)
    if result.stream is not None:
        stream = result.stream
        as_bytes = (
            isinstance(stream, StreamRelay)
            and stream.relays_bytes
            and (passage is None or not passage.reads_stream)
        )
        direct = getattr(send, "streams_direct", False)
        if as_bytes and direct:
            assert isinstance(stream, StreamRelay)
            start = _stream_start(request_id, result.info, passage, blocks)
            await _send_bytes(result, log, stream, start, send)
            return
        relay = _relay_bytes(result, log, stream) if as_bytes else _relay(result, log)  # type: ignore[arg-type]
        try:
            if direct:
                await _send_stream(relay, _stream_start(request_id, result.info, passage, blocks), send)
            else:
                stream_headers = routing_headers(request_id, result.info)
                stream_headers["cache-control"] = "no-cache"
                if passage is not None:
                    stream_headers.update(_cache_headers(passage))
                response = StreamingResponse(relay, media_type="text/event-stream", headers=stream_headers)
                await response(scope, receive, send)
        finally:
            if not log.finished:  # the client left: the relay was interrupted, or never started
                await _abandon(relay, result, log)
        return
    response_body = result.response.body if result.response is not None else {}
    tokens = _usage(response_body)
    cost = request_cost(result.deployment, *tokens, response_model=response_body.get("model"))
    if passage is not None:
        try:
            await passage.answer(response_body)
        except OpenAIError as exc:  # a post-call guardrail refused the answer
            try:
                await error_response(exc, routing_headers(request_id, result.info))(scope, receive, send)
            finally:
                log.finish(exc.status_code, result.info, tokens, error=type(exc).__name__, cost=cost)
            return
    payload = orjson.dumps(response_body)
    try:
        await send(_answer_start(request_id, result.info, len(payload), cost, passage, blocks))
        await send({"type": "http.response.body", "body": payload})
    finally:
        log.finish(200, result.info, tokens, cost=cost)


def _failure(exc: Exception) -> tuple[int, str]:
    """The status and error name a stream's request log gets for a failure after its first byte."""
    return (exc.status_code if isinstance(exc, OpenAIError) else 500), type(exc).__name__


async def _relay(result: CallResult, log: _RequestLog) -> AsyncGenerator[bytes, None]:
    """Relay chunks as SSE; an error after the first byte becomes an in-band error event."""
    assert result.stream is not None
    stream = result.stream
    tokens = (0, 0)
    status = 200
    error: str | None = None
    cost: float | None = None
    passage = log.passage
    chunks: AsyncIterator[dict[str, Any]] = passage.relay(stream) if passage is not None else stream
    chars = 0  # streamed text, to estimate completion tokens if no usage comes back
    try:
        async for chunk in chunks:
            if not chunk.get("usage"):
                chars += _text_chars(chunk)
            yield b"data: " + orjson.dumps(chunk) + b"\n\n"
        yield _SSE_DONE
    except Exception as exc:
        # Headers (200) are gone already: the only honest signal left is an error event, then closing
        # the stream without [DONE], so no client mistakes a truncated answer for a complete one.
        status, error = _failure(exc)
        yield sse_error_event(exc)
    except BaseException:
        status, error = 499, "ClientDisconnect"  # cancelled: the client went away
        raise
    finally:
        # Closing the router's stream closes the upstream connection; shielded because this runs while
        # the task is being cancelled when the client disconnects.
        with anyio.CancelScope(shield=True):
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
        # the router's relay saw the upstream's usage, including a usage chunk the client did not
        # ask for (and so never received)
        usage = getattr(stream, "usage", None)
        if isinstance(usage, dict):
            tokens = _usage({"usage": usage})
        estimated = tokens == (0, 0) and chars > 0
        if estimated:
            tokens = (log.prompt_tokens_estimate(), math.ceil(chars / CHARS_PER_TOKEN))
        if tokens != (0, 0):
            cost = request_cost(result.deployment, *tokens)
        log.finish(status, result.info, tokens, error=error, cost=cost, estimated=estimated)


async def _send_stream(relay: AsyncGenerator[bytes, None], start: Message, send: Send) -> None:
    """Write a stream through a ``send`` that writes each body message straight to the client
    (:class:`routerd.server.protocol`'s direct path): no task group watching for the disconnect,
    which the protocol handles by cancelling the request. Blocks after the first are written when
    the task next waits, so the last block goes out with the end of the body in one write."""
    await send(start)
    async for block in relay:
        await send({"type": "http.response.body", "body": block, "more_body": True})
    # The body ends after the relay's accounting (usage, spend, limits, the request log), as it did
    # through Starlette: a client that read the whole answer finds it accounted for.
    await send(_BODY_END)


async def _send_bytes(
    result: CallResult, log: _RequestLog, relay: StreamRelay, start: Message, send: Send
) -> None:
    """:func:`_send_stream` of a stream relayed as the upstream's bytes, in one coroutine: each
    block of :meth:`StreamRelay.next_block` goes straight to ``send`` (no generator between the
    upstream read and the write); an error after the first byte becomes an in-band error event; the
    accounting runs before the body ends (see :func:`_send_stream`)."""
    status = 200
    error: str | None = None
    first = relay.first
    try:
        await send(start)
        try:
            while (block := await relay.next_block()) is not None:
                await send({"type": "http.response.body", "body": block, "more_body": True})
        except Exception as exc:
            status, error = _failure(exc)
            await send({"type": "http.response.body", "body": sse_error_event(exc), "more_body": True})
    except BaseException:
        status, error = 499, "ClientDisconnect"  # cancelled: the client went away
        raise
    finally:
        await _end_bytes(result, log, relay, first, status, error)
    await send(_BODY_END)


async def _relay_bytes(
    result: CallResult, log: _RequestLog, relay: StreamRelay
) -> AsyncGenerator[bytes, None]:
    """:func:`_relay` for a stream relayed as the upstream's bytes (:meth:`StreamRelay.next_block`):
    one block per upstream read, the last one ending with ``data: [DONE]``."""
    status = 200
    error: str | None = None
    first = relay.first
    try:
        while (block := await relay.next_block()) is not None:
            yield block
    except Exception as exc:
        status, error = _failure(exc)
        yield sse_error_event(exc)
    except BaseException:
        status, error = 499, "ClientDisconnect"
        raise
    finally:
        await _end_bytes(result, log, relay, first, status, error)


async def _end_bytes(
    result: CallResult,
    log: _RequestLog,
    relay: StreamRelay,
    first: dict[str, Any] | None,
    status: int,
    error: str | None,
) -> None:
    """Close a byte-relayed stream and account for it (usage, or the text it carried, estimated)."""
    if not relay.done:
        # shielded: this runs while the task is being cancelled when the client disconnects
        with anyio.CancelScope(shield=True):
            await relay.aclose()
    tokens = (0, 0)
    if isinstance(relay.usage, dict):
        tokens = _usage({"usage": relay.usage})
    chars = _estimated_chars(first, relay) if tokens == (0, 0) else 0
    estimated = tokens == (0, 0) and chars > 0
    if estimated:
        tokens = (log.prompt_tokens_estimate(), math.ceil(chars / CHARS_PER_TOKEN))
    cost = request_cost(result.deployment, *tokens) if tokens != (0, 0) else None
    log.finish(status, result.info, tokens, error=error, cost=cost, estimated=estimated)


def _estimated_chars(first: dict[str, Any] | None, relay: StreamRelay) -> int:
    """The text a stream relayed unread carried, estimated for a stream without usage: the bytes of
    the chunks handed on unread less the envelope each carries (measured on the first chunk)."""
    if first is None:
        return 0
    text = _text_chars(first)
    envelope = len(orjson.dumps(first)) - text
    reader = getattr(relay.iterator, "reader", None)
    if reader is None:
        return text
    plain_bytes: int = reader.plain_bytes
    plain_events: int = reader.plain_events
    return text + max(0, plain_bytes - plain_events * envelope)


def _text_chars(chunk: dict[str, Any]) -> int:
    """Characters of text a chunk carries (content, text, tool-call arguments)."""
    total = 0
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta")
        if delta is None:
            text = choice.get("text")
            total += len(text) if isinstance(text, str) else 0
            continue
        content = delta.get("content")
        if isinstance(content, str):
            total += len(content)
        for call in delta.get("tool_calls") or ():
            arguments = (call.get("function") or {}).get("arguments")
            if isinstance(arguments, str):
                total += len(arguments)
    return total


ErrorRenderer = Callable[[BaseException, dict[str, str]], Response]


async def _refuse(
    exc: Exception,
    render: ErrorRenderer,
    log: _RequestLog,
    request_id: str,
    scope: Scope,
    receive: Receive,
    send: Send,
) -> None:
    """Answer a request that failed before its answer started (in ``render``'s API shape: OpenAI's, or a
    front door's), and account for it once: a client that went away is a 499, a guardrail refusal keeps
    the record of the guardrails that ran."""
    if isinstance(exc, ClientDisconnect):
        try:
            await Response(status_code=499)(scope, receive, send)
        finally:
            log.finish(499, None, error="ClientDisconnect")
        return
    info: RoutingInfo | None = getattr(exc, "routing", None)
    status = exc.status_code if isinstance(exc, OpenAIError) else 500
    try:
        await render(exc, routing_headers(request_id, info))(scope, receive, send)
    finally:
        log.finish(
            status,
            info,
            error=type(exc).__name__,
            refused_runs=getattr(exc, "runs", ()),
            refused_caller=getattr(exc, "caller", None),
        )


def _cache_headers(passage: Passage) -> dict[str, str]:
    if passage.cache_status is None or passage.cache_key is None:
        return {}
    return {"x-routerd-cache": passage.cache_status, "x-litellm-cache-key": passage.cache_key}


async def _answer_from_cache(
    passage: Passage,
    answer: dict[str, Any],
    log: _RequestLog,
    request_id: str,
    scope: Scope,
    receive: Receive,
    send: Send,
) -> None:
    """A cache hit: the stored answer, as a stream when the client asked for one."""
    headers = {"x-request-id": request_id, **_cache_headers(passage)}
    try:
        if log.stream:
            include_usage = bool((passage.stream_options or {}).get("include_usage"))
            chunks = passage.replayed(answer, include_usage=include_usage)
            body = b"".join(b"data: " + orjson.dumps(chunk) + b"\n\n" for chunk in chunks) + _SSE_DONE
            headers["cache-control"] = "no-cache"
            response: Response = Response(body, media_type="text/event-stream", headers=headers)
        else:
            response = Response(orjson.dumps(answer), media_type="application/json", headers=headers)
        await response(scope, receive, send)
    finally:
        log.finish(200, None)  # no upstream tokens, no cost: the hit's saved cost is in the log fields


async def _abandon(relay: AsyncGenerator[bytes, None], result: CallResult, log: _RequestLog) -> None:
    """Finish a stream whose client left: now, not whenever the garbage collector gets to the relay.

    Closing a relay that started runs its own ``finally`` (upstream closed, usage and cost counted);
    one that never started did nothing yet, so the upstream stream is closed and the request ended here.
    """
    with anyio.CancelScope(shield=True):
        await relay.aclose()
        if not log.finished:
            aclose = getattr(result.stream, "aclose", None)
            if aclose is not None:
                await aclose()
            log.finish(499, result.info, error="ClientDisconnect")


class InferenceEndpoint:
    """The ASGI app of one inference endpoint; ``scope["app"]`` is the routerd application."""

    __slots__ = ("endpoint",)

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await handle(scope["app"].state.routerd, self.endpoint, scope, receive, send)


chat_completions = InferenceEndpoint(CHAT)
completions = InferenceEndpoint(COMPLETIONS)
embeddings = InferenceEndpoint(EMBEDDINGS)
moderations = InferenceEndpoint(MODERATIONS)
image_generations = InferenceEndpoint(IMAGES)
rerank = InferenceEndpoint(RERANK)

# What the front doors (routerd.server.frontdoor_routes) reuse of this module's machinery.
RequestLog = _RequestLog
refuse = _refuse
abandon_stream = _abandon
answer_start = _answer_start
cache_headers = _cache_headers
text_chars = _text_chars
chat_usage = _usage
request_headers = _headers
