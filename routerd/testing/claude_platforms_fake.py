"""Claude on Vertex AI and on Amazon Bedrock, faked on loopback in each platform's own wire format.

Both are :class:`~routerd.testing.anthropic_fake.FakeAnthropic` (the same scripted
:class:`~routerd.testing.anthropic_fake.AnthropicReply` answers, the same body checks) behind
another front:

* :class:`FakeVertexClaude`: ``POST /v1/projects/{p}/locations/{l}/publishers/anthropic/models/
  {model}:rawPredict`` (``:streamRawPredict``: Anthropic's SSE) with ``Authorization: Bearer`` (the
  Vertex fake's tokens); the body has no ``model`` and ``anthropic_version: "vertex-2023-10-16"``.
  Vertex's own errors are Google-shaped (:func:`google_failure`), the model's Anthropic-shaped.
* :class:`FakeBedrockClaude`: ``POST /model/{id}/invoke`` and ``/invoke-with-response-stream``,
  SigV4-checked as :class:`~routerd.testing.bedrock_fake.FakeBedrock` checks it; the body has no
  ``model`` nor ``stream``, ``anthropic_version: "bedrock-2023-05-31"`` and beta features in
  ``anthropic_beta``. Streams are AWS event-stream frames whose ``chunk`` events carry
  ``{"bytes": <base64 event>}``; an ``error`` event is sent as an exception frame, and
  ``message_stop`` carries Bedrock's own ``amazon-bedrock-invocationMetrics`` as the real runtime's
  does. Errors are AWS-shaped (:func:`aws_failure`).
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import unquote

import orjson
from aiohttp import web

from routerd.providers.eventstream import encode_message
from routerd.testing.anthropic_fake import KNOWN_FIELDS, AnthropicReply, FakeAnthropic, check_body, error_body
from routerd.testing.bedrock_fake import aws_error, verify_sigv4
from routerd.testing.fake_http import json_response
from routerd.testing.gemini_fake import error_body as google_error_body

JSON = dict[str, Any]

VERTEX_VERSION = "vertex-2023-10-16"
BEDROCK_VERSION = "bedrock-2023-05-31"
# the platforms' bodies: the URL names the model (and, on Bedrock, the action says whether to stream)
VERTEX_FIELDS = (KNOWN_FIELDS - {"model"}) | {"anthropic_version"}
BEDROCK_FIELDS = (KNOWN_FIELDS - {"model", "stream"}) | {"anthropic_version", "anthropic_beta"}
# the base API version the platforms' versions stand for (what the body checks compare against)
_BASE_VERSION = "2023-06-01"
_VERTEX_METHODS = {"rawPredict": False, "streamRawPredict": True}
_BEDROCK_ACTIONS = {"invoke": False, "invoke-with-response-stream": True}
#: what the Bedrock runtime adds to a stream's ``message_stop`` event (its own bookkeeping)
BEDROCK_INVOCATION_METRICS = {
    "inputTokenCount": 9,
    "outputTokenCount": 4,
    "invocationLatency": 321,
    "firstByteLatency": 123,
}


def google_failure(status: int, google_status: str, message: str) -> AnthropicReply:
    """An error from Vertex itself (quota, permissions), in Google's shape."""
    return AnthropicReply(status=status, error_body=google_error_body(status, google_status, message))


def aws_failure(status: int, exception: str, message: str) -> AnthropicReply:
    """A Bedrock error: ``x-amzn-ErrorType`` and ``{"message": ...}``."""
    headers = {"x-amzn-ErrorType": f"{exception}:http://internal.amazon.com/coral/com.amazon.bedrock/"}
    return AnthropicReply(status=status, error_body={"message": message}, headers=headers)


class FakeVertexClaude(FakeAnthropic):
    """Claude models on Vertex AI; ``tokens`` are the OAuth access tokens it accepts."""

    def __init__(self, *, tokens: set[str] | None = None) -> None:
        super().__init__(api_key=None)
        self.tokens: set[str] = tokens if tokens is not None else {"vertex-test-token"}

    def routes(self) -> list[web.RouteDef]:
        path = "/{version}/projects/{project}/locations/{location}/publishers/anthropic/models/{call}"
        return [web.post(path, self._predict), web.route("*", "/{tail:.*}", self._missing)]

    async def _missing(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        return json_response(google_error_body(404, "NOT_FOUND", f"{request.path} is not found"), 404)

    async def _predict(self, request: web.Request) -> web.StreamResponse:
        recorded = await self.record(request)
        header = recorded.headers.get("authorization", "")
        if not (header.startswith("Bearer ") and header[7:] in self.tokens):
            message = "Request had invalid authentication credentials."
            return json_response(google_error_body(401, "UNAUTHENTICATED", message), 401)
        model, _, method = request.match_info["call"].rpartition(":")
        if method not in _VERTEX_METHODS:
            return json_response(google_error_body(404, "NOT_FOUND", f"method {method} is not found"), 404)
        body = recorded.json
        stream = _VERTEX_METHODS[method]
        problem = check_body(body, _BASE_VERSION, fields=VERTEX_FIELDS, model=model)
        if problem is None and body.get("anthropic_version") != VERTEX_VERSION:
            problem = f"anthropic_version: must be {VERTEX_VERSION}"
        if problem is None and bool(body.get("stream")) != stream:
            problem = f"stream: {method} needs stream={str(stream).lower()}"
        if problem is not None:
            return json_response(error_body("invalid_request_error", problem), 400)
        return await self.answer(request, body, model=model, stream=stream)


class FakeBedrockClaude(FakeAnthropic):
    """Claude models on the Bedrock runtime, for one AWS access key and secret."""

    service = "bedrock"

    def __init__(self, *, access_key: str, secret_key: str, region: str = "us-east-1") -> None:
        super().__init__(api_key=None)
        self.access_key = access_key
        self.secret_key = secret_key
        self.region = region

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/model/{model_id}/{action}", self._invoke)]

    async def _invoke(self, request: web.Request) -> web.StreamResponse:
        recorded = await self.record(request)
        problem = verify_sigv4(request, recorded, self.service, self.access_key, self.secret_key, self.region)
        if problem:
            return aws_error(403, "InvalidSignatureException", problem)
        action = request.match_info["action"]
        if action not in _BEDROCK_ACTIONS:
            return aws_error(404, "UnknownOperationException", action)
        model = unquote(request.match_info["model_id"])
        body = recorded.json
        invalid = check_body(body, _BASE_VERSION, fields=BEDROCK_FIELDS, model=model)
        if invalid is None and "anthropic.claude" not in model:
            invalid = f"model {model} does not take Anthropic's format"
        if invalid is None and body.get("anthropic_version") != BEDROCK_VERSION:
            invalid = f"anthropic_version: must be {BEDROCK_VERSION}"
        betas = body.get("anthropic_beta", []) if isinstance(body, dict) else []
        if invalid is None and not (isinstance(betas, list) and all(isinstance(b, str) for b in betas)):
            invalid = "anthropic_beta: must be a list of strings"
        if invalid is not None:
            return aws_error(400, "ValidationException", invalid)
        return await self.answer(request, body, model=model, stream=_BEDROCK_ACTIONS[action])

    async def open_stream(self, request: web.Request, headers: dict[str, str]) -> web.StreamResponse:
        response = web.StreamResponse(
            status=200, headers={**headers, "content-type": "application/vnd.amazon.eventstream"}
        )
        await response.prepare(request)
        return response

    def encode(self, event: JSON) -> bytes:
        if event.get("type") == "error":
            message = str((event.get("error") or {}).get("message") or "stream failed")
            headers = {
                ":message-type": "exception",
                ":exception-type": "modelStreamErrorException",
                ":content-type": "application/json",
            }
            return encode_message(headers, orjson.dumps({"message": message}))
        if event.get("type") == "message_stop":
            event = {**event, "amazon-bedrock-invocationMetrics": BEDROCK_INVOCATION_METRICS}
        headers = {":message-type": "event", ":event-type": "chunk", ":content-type": "application/json"}
        chunk = {"bytes": base64.b64encode(orjson.dumps(event)).decode()}
        return encode_message(headers, orjson.dumps(chunk))
