"""OpenAI's audio and image-edit endpoints, routed by ``model`` like every call (keys, limits, retries,
fallbacks):

* ``POST /v1/audio/speech``: JSON in (``model``, ``input``, ``voice``, ...), the audio bytes out with
  the upstream's content type;
* ``POST /v1/audio/transcriptions``: a multipart form (``file``, ``model``, ``language``,
  ``response_format``, ...), the transcript out (JSON, or text for ``text``/``srt``/``vtt``);
* ``POST /v1/images/edits``: a multipart form (``image``, optional ``mask``, ``prompt``, ``model``, ...),
  the images out as JSON.

The bodies are not JSON answers, so these are not on :mod:`routerd.server.inference`'s path; they reuse
its body reading, the gate and the request log. Guardrails read the text to speak and an image edit's
prompt on ``pre_call`` (a mask rewrites what goes upstream), and a transcript's text on ``post_call``;
they never read audio or images. The cache does not store audio.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from routerd.access.table import KeyPolicy
from routerd.errors import BadRequestError, OpenAIError
from routerd.events import RequestStarted
from routerd.providers.base import IMAGE_EDITS, SPEECH, TRANSCRIPTIONS
from routerd.routing.types import CallResult, RoutingInfo
from routerd.server.answer_headers import routing_headers
from routerd.server.errors import error_response
from routerd.server.files import read_form
from routerd.server.gate import Passage, Unidentified, caller_of
from routerd.server.inference import RequestLog, parse_json, read_body
from routerd.server.limits import new_request_id
from routerd.server.state import AppState

#: form fields of a transcription passed on (besides ``file`` and ``model``)
TRANSCRIPTION_FIELDS = frozenset(
    {"language", "prompt", "response_format", "temperature", "timestamp_granularities[]", "chunking_strategy"}
)


async def _route(
    request: Request, endpoint: str, body: dict[str, Any], caller: KeyPolicy | Unidentified | None
) -> Response:
    """Gate, route and account for one audio call; ``body`` is the upstream request (already read)."""
    state: AppState = request.app.state.routerd
    headers = {k.lower(): v for k, v in request.headers.items()}
    request_id = headers.get("x-request-id") or new_request_id()
    log = RequestLog(state, endpoint, request_id, time.perf_counter())
    state.events.emit(RequestStarted(request_id, endpoint))
    log.model = str(body.get("model", ""))
    result: CallResult | None = None
    try:
        if not isinstance(body.get("model"), str) or not body["model"]:
            raise BadRequestError("'model' is required: a model group", param="model")
        if state.gate is not None:
            log.passage = await Passage.enter(
                state.gate, state.table, state.master_key, endpoint, headers, body, caller
            )
        result = await state.router.call(endpoint, body, request_id=request_id)
        if log.passage is not None and result.response is not None and endpoint == TRANSCRIPTIONS:
            await log.passage.answer(result.response.body)  # post_call guardrails read the transcript
        response = _answer(result)
    except asyncio.CancelledError:  # the client went away (routerd.server.protocol cancels the request)
        log.finish(499, result.info if result is not None else None, error="ClientDisconnect")
        raise
    except Exception as exc:
        info: RoutingInfo | None = result.info if result is not None else getattr(exc, "routing", None)
        status = exc.status_code if isinstance(exc, OpenAIError) else 500
        log.finish(
            status,
            info,
            error=type(exc).__name__,
            refused_runs=getattr(exc, "runs", ()),  # a guardrail refusal: what ran, and whose call
            refused_caller=getattr(exc, "caller", None),
        )
        return error_response(exc, routing_headers(request_id, info))
    response.headers.update(routing_headers(request_id, result.info))
    log.finish(200, result.info)
    return response


def _answer(result: CallResult) -> Response:
    body = result.response.body if result.response is not None else {}
    if "audio" in body:
        return Response(body["audio"], media_type=str(body.get("content_type") or "audio/mpeg"))
    if "content_type" in body:  # a transcript in a text format
        return Response(str(body.get("text", "")), media_type=str(body["content_type"]))
    return Response(orjson.dumps(body), media_type="application/json")


async def _form(request: Request, limit: int, *, max_files: int) -> dict[str, Any]:
    """The multipart form as plain values: strings, and (filename, bytes, content type) per file; the
    form's temporary files are closed before this returns."""
    form = await read_form(request, limit, max_files=max_files)
    try:
        out: dict[str, Any] = {}
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                content = await value.read()
                out[name] = (
                    value.filename or name,
                    content,
                    value.content_type or "application/octet-stream",
                )
            else:
                out[name] = value
        return out
    finally:
        await form.close()


def _authenticate(request: Request) -> KeyPolicy | Unidentified | None:
    """Who is calling, before the body (an upload, for transcriptions and edits) is read."""
    state: AppState = request.app.state.routerd
    return caller_of(state.gate, state.table, state.master_key, request.headers)


async def speech(request: Request) -> Response:
    """``POST /v1/audio/speech``."""
    state: AppState = request.app.state.routerd
    try:
        caller = _authenticate(request)
        body = parse_json(await read_body(request, state.max_body_bytes))
        if not isinstance(body, dict):
            raise BadRequestError("request body must be a JSON object", code="invalid_request_body")
        if not isinstance(body.get("input"), str) or not body["input"]:
            raise BadRequestError("'input' is required: the text to speak", param="input")
    except ClientDisconnect:
        return Response(status_code=499)
    except Exception as exc:
        return error_response(exc)
    return await _route(request, SPEECH, body, caller)


async def transcriptions(request: Request) -> Response:
    """``POST /v1/audio/transcriptions`` (multipart: ``file``, ``model``, options)."""
    state: AppState = request.app.state.routerd
    try:
        caller = _authenticate(request)
        form = await _form(request, state.max_body_bytes, max_files=1)
        upload = form.get("file")
        if not isinstance(upload, tuple):
            raise BadRequestError(
                "missing required file field 'file'", param="file", code="missing_required_parameter"
            )
        body: dict[str, Any] = {"model": form.get("model")}
        body.update({k: v for k, v in form.items() if k in TRANSCRIPTION_FIELDS and isinstance(v, str)})
        body["file"] = upload
    except ClientDisconnect:
        return Response(status_code=499)
    except Exception as exc:
        return error_response(exc)
    return await _route(request, TRANSCRIPTIONS, body, caller)


#: form fields of an image edit passed on (besides ``image``, ``mask`` and ``model``)
IMAGE_EDIT_FIELDS = frozenset(
    {"prompt", "n", "size", "quality", "response_format", "background", "output_format", "user"}
)


async def image_edits(request: Request) -> Response:
    """``POST /v1/images/edits`` (multipart: ``image``, optional ``mask``, ``prompt``, ``model``, options)."""
    state: AppState = request.app.state.routerd
    try:
        caller = _authenticate(request)
        form = await _form(request, state.max_body_bytes, max_files=2)
        image, mask = form.get("image"), form.get("mask")
        if not isinstance(image, tuple):
            raise BadRequestError(
                "missing required file field 'image'", param="image", code="missing_required_parameter"
            )
        if not isinstance(form.get("prompt"), str):
            raise BadRequestError("'prompt' is required", param="prompt", code="missing_required_parameter")
        body: dict[str, Any] = {"model": form.get("model")}
        body.update({k: v for k, v in form.items() if k in IMAGE_EDIT_FIELDS and isinstance(v, str)})
        body["image"] = image
        if isinstance(mask, tuple):
            body["mask"] = mask
    except ClientDisconnect:
        return Response(status_code=499)
    except Exception as exc:
        return error_response(exc)
    return await _route(request, IMAGE_EDITS, body, caller)


def media_routes() -> list[BaseRoute]:
    """The audio and image-edit routes, with and without the ``/v1`` prefix."""
    routes: list[BaseRoute] = []
    for prefix in ("/v1", ""):
        routes += [
            Route(f"{prefix}/audio/speech", speech, methods=["POST"]),
            Route(f"{prefix}/audio/transcriptions", transcriptions, methods=["POST"]),
            Route(f"{prefix}/images/edits", image_edits, methods=["POST"]),
        ]
    return routes
