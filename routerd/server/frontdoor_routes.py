"""The front doors' HTTP routes: Anthropic Messages, OpenAI Responses (with stored responses) and
Azure OpenAI's deployment routes.

The translations are :mod:`routerd.frontdoors` (pure); the call path they share with chat
completions is :mod:`routerd.server.frontdoor_serve`. Errors are in each API's own shape: Anthropic's
``{"type": "error", ...}`` on ``/v1/messages``, OpenAI's ``{"error": {...}}`` elsewhere.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from routerd.access.table import KeyPolicy, check_model
from routerd.errors import BadRequestError, NotFoundError, OpenAIError
from routerd.frontdoors import anthropic_messages, responses
from routerd.frontdoors.anthropic_errors import AnthropicRequestError, anthropic_error, error_event
from routerd.frontdoors.anthropic_messages_stream import MessagesStreamTranslator, anthropic_events, sse
from routerd.frontdoors.azure_routes import azure_route, routed_body
from routerd.frontdoors.response_items import input_items_page
from routerd.frontdoors.response_store import ResponseStore, StoredResponse, response_store
from routerd.frontdoors.responses_stream import ResponsesStreamTranslator, responses_events
from routerd.guardrails.selection import take_selection
from routerd.providers.base import CHAT
from routerd.routing.types import NativeCall
from routerd.server import inference
from routerd.server.auth import require_key
from routerd.server.errors import error_response
from routerd.server.frontdoor_serve import Door, DoorCall, authenticate, owner_of, serve
from routerd.server.gate import identify
from routerd.server.state import AppState
from routerd.tokens import count_request_tokens

JSON = dict[str, Any]

#: client headers passed on with a native Messages request (the version and beta features it uses)
ANTHROPIC_HEADERS = ("anthropic-version", "anthropic-beta")
#: events that end a Responses stream; their ``response`` is the final Response object
_FINAL_RESPONSE_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


def _json(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


# --- Anthropic Messages ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _MessagesContext:
    stop_sequences: tuple[str, ...]
    input_tokens: int


#: the context of a request with no stop sequences that is not streamed (most of them)
_PLAIN_CONTEXT = _MessagesContext((), 0)
_NO_HEADERS: Mapping[str, str] = {}


class MessagesDoor(Door):
    """``POST /v1/messages``: Anthropic deployments get the request as it is, the others chat."""

    name = "messages"

    def error(self, exc: BaseException, headers: dict[str, str]) -> Response:
        status, body = anthropic_error(exc)
        extra = exc.response_headers() if isinstance(exc, OpenAIError) else {}
        return _json(body, status, {**extra, **headers})

    async def prepare(self, state: AppState, body: Any, headers: Mapping[str, str]) -> DoorCall:
        # the guardrails the request names go to the gate, never upstream (natively or translated)
        body, selected = take_selection(body, AnthropicRequestError)
        if (
            type(body) is dict or isinstance(body, Mapping)
        ) and not anthropic_messages.KNOWN_FIELDS.issuperset(body):
            # Fields routerd does not know (newer API features) go to Anthropic deployments as they
            # are; the translation for the other providers leaves them out.
            known = {k: v for k, v in body.items() if k in anthropic_messages.KNOWN_FIELDS}
            chat = anthropic_messages.to_chat_request(known)
        else:
            chat = anthropic_messages.to_chat_request(body)
        passed = {name: headers[name] for name in ANTHROPIC_HEADERS if name in headers}
        beta = {"anthropic-beta": passed["anthropic-beta"]} if "anthropic-beta" in passed else _NO_HEADERS
        stops = body.get("stop_sequences")
        stream = chat.get("stream")
        context = (
            _MessagesContext(tuple(stops or ()), count_request_tokens(CHAT, chat) if stream else 0)
            if stops or stream
            else _PLAIN_CONTEXT
        )
        if selected is not None:
            chat["guardrails"] = selected
        # the parsed body is this request's own and adapters copy it before changing it: no copy here
        return DoorCall(chat, NativeCall("messages", body, passed), beta, context)

    async def answer(self, state: AppState, call: DoorCall, body: JSON, *, native: bool) -> JSON:
        if native:
            return body
        return anthropic_messages.to_anthropic_message(body, stop_sequences=call.context.stop_sequences)

    def stream(
        self, state: AppState, call: DoorCall, chunks: AsyncIterator[JSON], *, native: bool
    ) -> AsyncIterator[bytes]:
        if native:
            return _native_messages(chunks)
        translator = MessagesStreamTranslator(
            input_tokens=call.context.input_tokens, stop_sequences=call.context.stop_sequences
        )
        return anthropic_events(chunks, translator)


async def _native_messages(events: AsyncIterator[JSON]) -> AsyncIterator[bytes]:
    """Anthropic's events, written as Anthropic writes them; a failure ends with an ``error`` event."""
    try:
        async for event in events:
            yield sse(event)
    except Exception as exc:
        yield error_event(exc)


async def count_tokens(request: Request) -> Response:
    """``POST /v1/messages/count_tokens``: routerd's estimate, as ``{"input_tokens": N}``; the key must
    be allowed the model (403 ``permission_error``), and the model served (404 ``not_found_error``)."""
    state: AppState = request.app.state.routerd
    try:
        policy = _caller(state, request.headers)
        raw = await inference.read_body(request, state.max_body_bytes)
        # the guardrails a request names are routerd's, no part of what is counted
        body, _ = take_selection(inference.parse_json(raw), AnthropicRequestError)
        _may_count(state, policy, body)
        return _json(anthropic_messages.count_tokens(body))
    except Exception as exc:
        return MessagesDoor().error(exc, {})


def _caller(state: AppState, headers: Mapping[str, str]) -> KeyPolicy | None:
    """The caller's key policy (None for the master key or an open gateway); 401 otherwise."""
    if state.gate is None:
        require_key(headers, state.master_key)
        return None
    return identify(state.table, state.master_key, headers, time.time())


def _may_count(state: AppState, policy: KeyPolicy | None, body: Any) -> None:
    """What a ``/v1/messages`` call of the same model would refuse before routing: a model the key may
    not call (checked first, as the gate does, so a key learns nothing of groups it may not use), then
    a model no group serves. A missing or mistyped ``model`` is left to the body's own 400."""
    model = body.get("model") if isinstance(body, Mapping) else None
    if not isinstance(model, str):
        return
    table = state.table
    group = table.resolve(model)
    if policy is not None:
        check_model(policy, model, group.name if group else model, table.groups, table.access.access_groups)
    if group is None:
        raise NotFoundError(
            f"model {model[:256]!r} is not served by this router; GET /v1/models lists the available models",
            param="model",
            code="model_not_found",
        )


# --- OpenAI Responses ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _ResponsesContext:
    call: responses.ResponsesCall
    owner: str
    store: bool
    response_id: str


class ResponsesDoor(Door):
    """``POST /v1/responses``: OpenAI/Azure deployments get it natively, the others chat; answers are
    stored (``store`` defaults to true) for ``previous_response_id`` and ``GET /v1/responses/{id}``."""

    name = "responses"

    def error(self, exc: BaseException, headers: dict[str, str]) -> Response:
        return error_response(exc, headers)

    async def prepare(self, state: AppState, body: Any, headers: Mapping[str, str]) -> DoorCall:
        # the guardrails the request names go to the gate, never upstream nor into the stored
        # response's metadata
        body, selected = take_selection(body)
        if isinstance(body, Mapping) and body.get("previous_response_id") is not None:
            authenticate(state, headers)  # a stored conversation is read: the caller must be known first
        owner = owner_of(headers)
        store = _store(state)
        previous = None
        if isinstance(body, Mapping):
            previous = await responses.previous_conversation(body, store, owner)
        call = responses.to_chat_request(body, previous)
        native = dict(call.request)
        if previous is not None:
            # the deployment answering need not be the one that stored the previous response: it
            # gets the whole conversation instead of the id
            native.pop("previous_response_id", None)
            native["input"] = call.input_items
        context = _ResponsesContext(
            call, owner, call.request.get("store") is not False, responses.new_response_id()
        )
        if selected is not None:
            call.chat["guardrails"] = selected
        return DoorCall(call.chat, NativeCall("responses", native), {}, context)

    async def answer(self, state: AppState, call: DoorCall, body: JSON, *, native: bool) -> JSON:
        context: _ResponsesContext = call.context
        if native:
            answer = body
            if context.call.request.get("previous_response_id") is not None:
                answer["previous_response_id"] = context.call.request["previous_response_id"]
        else:
            answer = responses.to_response(body, context.call, response_id=context.response_id)
        await _keep(state, context, answer)
        return answer

    def stream(
        self, state: AppState, call: DoorCall, chunks: AsyncIterator[JSON], *, native: bool
    ) -> AsyncIterator[bytes]:
        context: _ResponsesContext = call.context
        if native:
            return _native_responses(state, context, chunks)
        return _translated_responses(state, context, chunks)


async def _native_responses(
    state: AppState, context: _ResponsesContext, events: AsyncIterator[JSON]
) -> AsyncIterator[bytes]:
    final: JSON | None = None
    sequence = 0
    try:
        async for event in events:
            sequence = int(event.get("sequence_number") or sequence) + 1
            if event.get("type") in _FINAL_RESPONSE_EVENTS and isinstance(event.get("response"), dict):
                final = event["response"]
            yield sse(event)
    except Exception as exc:
        yield sse(_error_event(exc, sequence))
        return
    if final is not None and final.get("status") != "failed":
        await _keep(state, context, final)


def _error_event(exc: BaseException, sequence: int) -> JSON:
    """The Responses stream's ``error`` event for a failure after the first byte."""
    status = exc.status_code if isinstance(exc, OpenAIError) else 500
    message = exc.message if isinstance(exc, OpenAIError) else "stream interrupted by an internal error"
    code = "rate_limit_exceeded" if status == 429 else "server_error"
    return {"type": "error", "code": code, "message": message, "param": None, "sequence_number": sequence}


async def _translated_responses(
    state: AppState, context: _ResponsesContext, chunks: AsyncIterator[JSON]
) -> AsyncIterator[bytes]:
    translator = ResponsesStreamTranslator(
        context.call, response_id=context.response_id, created_at=int(time.time())
    )
    async for event in responses_events(chunks, translator):
        yield event
    final = translator.response
    if final is not None and final.get("status") != "failed":
        await _keep(state, context, final)


async def _keep(state: AppState, context: _ResponsesContext, answer: JSON) -> None:
    """Store an answer the client asked to store (the default), under its owner."""
    if context.store and isinstance(answer.get("id"), str):
        record = StoredResponse(answer, context.call.input_items)
        await _store(state).put(answer["id"], context.owner, record)


def _store(state: AppState) -> ResponseStore:
    if state.responses is None:
        state.responses = response_store(state.settings)
    store: ResponseStore = state.responses
    return store


async def _stored(request: Request) -> tuple[AppState, StoredResponse, str]:
    """The stored response the path names, for its owner; 401 / 404 otherwise."""
    state: AppState = request.app.state.routerd
    authenticate(state, request.headers)
    response_id = request.path_params["response_id"]
    stored = await _store(state).get(response_id, owner_of(request.headers))
    if stored is None:
        raise _not_found(response_id)
    return state, stored, response_id


def _not_found(response_id: str) -> NotFoundError:
    return NotFoundError(
        f"response {response_id[:128]!r} was not found (never stored, expired, or stored by another key)",
        param="response_id",
        code="response_not_found",
    )


async def get_response(request: Request) -> Response:
    """``GET /v1/responses/{id}``."""
    try:
        _, stored, _ = await _stored(request)
    except Exception as exc:
        return error_response(exc)
    return _json(stored.response)


async def delete_response(request: Request) -> Response:
    """``DELETE /v1/responses/{id}``."""
    try:
        state: AppState = request.app.state.routerd
        authenticate(state, request.headers)
        response_id = request.path_params["response_id"]
        if not await _store(state).delete(response_id, owner_of(request.headers)):
            raise _not_found(response_id)
    except Exception as exc:
        return error_response(exc)
    return _json({"id": response_id, "object": "response", "deleted": True})


async def list_input_items(request: Request) -> Response:
    """``GET /v1/responses/{id}/input_items`` (``after``, ``limit``, ``order``)."""
    try:
        _, stored, _ = await _stored(request)
        query = request.query_params
        limit_raw = query.get("limit")
        if limit_raw is not None and not limit_raw.isdigit():
            raise BadRequestError("limit must be an integer", param="limit")
        page = input_items_page(
            stored,
            after=query.get("after"),
            limit=int(limit_raw) if limit_raw is not None else None,
            order=query.get("order", "desc"),
        )
    except Exception as exc:
        return error_response(exc)
    return _json(page)


async def cancel_response(request: Request) -> Response:
    """``POST /v1/responses/{id}/cancel``: only background responses can be cancelled, and routerd
    runs none, so a stored response answers 400 (an unknown one 404)."""
    try:
        _, _, response_id = await _stored(request)
        raise BadRequestError(
            f"response {response_id!r} is not a background response; only those can be cancelled "
            "(routerd does not run background responses)",
            param="response_id",
            code="response_not_cancellable",
        )
    except Exception as exc:
        return error_response(exc)


# --- Azure OpenAI routes ---------------------------------------------------------------------------


class AzureEndpoint:
    """``/openai/deployments/{deployment}/chat/completions|completions|embeddings?api-version=...``:
    the deployment name picks the model group; the rest is the ordinary inference path."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state: AppState = scope["app"].state.routerd
        try:
            authenticate(state, inference.request_headers(scope))
            raw_path = scope.get("raw_path") or scope["path"].encode()
            table = state.table  # one table for the name and its alias, whatever a reload does
            route = azure_route(
                raw_path.decode("latin-1").split("?", 1)[0],
                scope.get("query_string", b"").decode("latin-1"),
                serves=lambda name: table.resolve(name) is not None,
                aliases=table.azure_aliases,
            )
        except Exception as exc:
            await error_response(exc)(scope, receive, send)
            return

        def rewrite(body: Any) -> Any:
            return routed_body(body, route) if isinstance(body, Mapping) else body

        await inference.handle(state, route.endpoint, scope, receive, send, rewrite=rewrite)


class DoorEndpoint:
    """The ASGI app of one door; ``scope["app"]`` is the routerd application."""

    __slots__ = ("door",)

    def __init__(self, door: Door) -> None:
        self.door = door

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await serve(scope["app"].state.routerd, self.door, scope, receive, send)


messages_endpoint = DoorEndpoint(MessagesDoor())
responses_endpoint = DoorEndpoint(ResponsesDoor())
azure_endpoint = AzureEndpoint()

#: POST paths served straight from RouterdApp's dict (no Starlette routing on the hot path)
FAST_ROUTES: Mapping[str, DoorEndpoint] = {
    "/v1/messages": messages_endpoint,
    "/v1/responses": responses_endpoint,
}


def frontdoor_routes() -> list[BaseRoute]:
    """The front doors' routes (the POST ones are also in :data:`FAST_ROUTES`)."""
    return [
        Route("/v1/messages", messages_endpoint, methods=["POST"]),
        Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
        Route("/v1/responses", responses_endpoint, methods=["POST"]),
        Route("/v1/responses/{response_id}", get_response, methods=["GET"]),
        Route("/v1/responses/{response_id}", delete_response, methods=["DELETE"]),
        Route("/v1/responses/{response_id}/input_items", list_input_items, methods=["GET"]),
        Route("/v1/responses/{response_id}/cancel", cancel_response, methods=["POST"]),
        Route("/openai/deployments/{rest:path}", azure_endpoint, methods=["POST"]),
    ]
