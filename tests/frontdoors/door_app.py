"""A test-only ASGI app that serves the front doors over a scripted router.

It wires the translation modules the way the server will (parse, translate, call, translate back,
errors in each API's shape), so the official ``anthropic`` and ``openai`` clients can be pointed at
it in-process. ``answer(chat_body)`` plays the router: it returns a ``chat.completion`` dict, or a
list of ``chat.completion.chunk`` dicts for a stream. The chat bodies it was given are kept in
``app.state.calls`` for assertions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from routerd.errors import OpenAIError
from routerd.frontdoors import anthropic_messages, responses
from routerd.frontdoors.anthropic_errors import anthropic_error
from routerd.frontdoors.anthropic_messages_stream import MessagesStreamTranslator, anthropic_events
from routerd.frontdoors.response_store import MemoryResponseStore, StoredResponse
from routerd.frontdoors.responses_stream import ResponsesStreamTranslator, responses_events

Answer = Callable[[dict[str, Any]], Any]
OWNER = "test-key"


async def _chunks(chunks: list[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    for chunk in chunks:
        yield chunk


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def build_app(answer: Answer) -> Starlette:
    store = MemoryResponseStore()
    calls: list[dict[str, Any]] = []

    def route(chat: dict[str, Any]) -> Any:
        calls.append(chat)
        return answer(chat)

    async def messages(request: Request) -> Response:
        try:
            body = orjson.loads(await request.body())
            chat = anthropic_messages.to_chat_request(body)
        except Exception as exc:
            status, error = anthropic_error(exc)
            return _json(error, status)
        result = route(chat)
        if chat.get("stream"):
            translator = MessagesStreamTranslator(stop_sequences=body.get("stop_sequences") or ())
            return StreamingResponse(
                anthropic_events(_chunks(result), translator), media_type="text/event-stream"
            )
        return _json(
            anthropic_messages.to_anthropic_message(result, stop_sequences=body.get("stop_sequences") or ())
        )

    async def count_tokens(request: Request) -> Response:
        try:
            return _json(anthropic_messages.count_tokens(orjson.loads(await request.body())))
        except Exception as exc:
            status, error = anthropic_error(exc)
            return _json(error, status)

    async def create_response(request: Request) -> Response:
        try:
            body = orjson.loads(await request.body())
            previous = await responses.previous_conversation(body, store, OWNER)
            call = responses.to_chat_request(body, previous)
        except OpenAIError as exc:
            return _json(exc.to_dict(), exc.status_code)
        result = route(call.chat)
        response_id = responses.new_response_id()
        if call.chat.get("stream"):
            translator = ResponsesStreamTranslator(call, response_id=response_id, created_at=1764700000)

            async def events() -> AsyncIterator[bytes]:
                async for event in responses_events(_chunks(result), translator):
                    yield event
                if body.get("store", True) and translator.response is not None:
                    await store.put(response_id, OWNER, StoredResponse(translator.response, call.input_items))

            return StreamingResponse(events(), media_type="text/event-stream")
        answer_ = responses.to_response(result, call, response_id=response_id)
        if body.get("store", True):
            await store.put(response_id, OWNER, StoredResponse(answer_, call.input_items))
        return _json(answer_)

    async def get_response(request: Request) -> Response:
        stored = await store.get(request.path_params["response_id"], OWNER)
        if stored is None:
            return _json(
                {
                    "error": {
                        "message": "not found",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": None,
                    }
                },
                404,
            )
        return _json(stored.response)

    app = Starlette(
        routes=[
            Route("/v1/messages", messages, methods=["POST"]),
            Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
            Route("/v1/responses", create_response, methods=["POST"]),
            Route("/v1/responses/{response_id}", get_response, methods=["GET"]),
        ]
    )
    app.state.calls = calls
    return app
