"""Amazon SageMaker endpoints: ``sagemaker/`` (HF TGI-style JSON) and ``sagemaker_chat/`` (OpenAI messages).

``POST {endpoint}/endpoints/{name}/invocations`` (streamed: ``/invocations-response-stream``),
SigV4-signed for the service ``sagemaker`` with the same credentials as Bedrock
(:mod:`routerd.providers.aws_auth`). ``{endpoint}`` is ``api_base`` when given, else
``https://runtime.sagemaker.{region}.amazonaws.com``; ``{name}`` is the model part of
``sagemaker/<endpoint name>``.

* ``sagemaker/`` sends ``{"inputs": <prompt>, "parameters": {...}}`` as Hugging Face TGI containers
  expect and reads ``[{"generated_text": ..., "details": ...}]``. Chat messages are joined into one
  prompt, one ``<role>: <text>`` line each, ending with ``assistant:`` (routerd applies no model
  chat template; use ``sagemaker_chat/`` for containers that serve the Messages API).
* ``sagemaker_chat/`` sends the OpenAI chat body as it is and reads an OpenAI chat completion.

Streams arrive as AWS event-stream ``PayloadPart`` messages whose payloads, joined, are the
container's own SSE body (TGI token events, or OpenAI chunks).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any, cast
from urllib.parse import quote

import orjson

from routerd.config.table import Deployment
from routerd.errors import BadRequestError, OpenAIError
from routerd.http import HttpClient
from routerd.providers import bedrock_translate as aws_errors
from routerd.providers.aws_auth import AwsSigner, aws_region
from routerd.providers.base import (
    CHAT,
    JSON,
    Adapter,
    BaseAdapter,
    UpstreamRequest,
    UpstreamResponse,
    register,
)
from routerd.providers.bedrock import AwsTarget, aws_post, runtime_endpoint
from routerd.providers.errors import ErrorContext
from routerd.providers.eventstream import EventStreamDecoder, EventStreamError
from routerd.providers.openai_parts import DeploymentParams, content_text, stop_list
from routerd.providers.shapes import usage
from routerd.providers.sse import iter_data, iter_json_chunks
from routerd.tokens import estimate_tokens

__all__ = ["SageMakerAdapter", "SageMakerChatAdapter", "tgi_prompt"]

_TGI_FINISH: dict[Any, str] = {"length": "length", "eos_token": "stop", "stop_sequence": "stop"}


class _SageMakerBase(BaseAdapter):
    endpoints = frozenset({CHAT})

    def prepare(self, deployment: Deployment) -> AwsTarget:
        region = aws_region(deployment.extra, deployment.region_name)
        where = f"deployment {deployment.id} ({deployment.litellm_model})"
        signer = AwsSigner.from_extra("sagemaker", region, deployment.extra, where)
        errors = ErrorContext(self.name, deployment.model, deployment.id, secrets=signer.secrets)
        base = runtime_endpoint(deployment, "runtime.sagemaker", region)
        return AwsTarget(
            base, deployment.model, signer, errors, DeploymentParams.from_extra(deployment.extra)
        )

    def _target(self, deployment: Deployment) -> AwsTarget:
        target = deployment.prepared
        return target if isinstance(target, AwsTarget) else self.prepare(deployment)

    @staticmethod
    def url(target: AwsTarget, stream: bool) -> str:
        action = "invocations-response-stream" if stream else "invocations"
        return f"{target.base}/endpoints/{quote(target.model_id, safe='')}/{action}"

    async def _payload_lines(
        self, http: HttpClient, target: AwsTarget, payload: JSON, timeout: float
    ) -> AsyncIterator[bytes]:
        """The lines of the container's streamed body, unwrapped from the event-stream framing."""
        url = self.url(target, stream=True)
        content = orjson.dumps(payload)
        errors = target.errors
        decoder = EventStreamDecoder()
        pending = b""
        headers = await target.signer.sign(
            http,
            "POST",
            url,
            target.headers("application/vnd.amazon.eventstream"),
            content,
        )
        async with http.stream("POST", url, headers=headers, content=content, timeout=timeout) as response:
            if response.status >= 400:
                body = _maybe_json(await response.aread())
                name = aws_errors.exception_name(response.headers, body)
                raise aws_errors.error_from(errors, response.status, name, body, response.headers)
            try:
                async for data in response.aiter_bytes():
                    for message in decoder.feed(data):
                        if message.message_type != "event":
                            raise aws_errors.error_from(
                                errors, None, message.event_type, _maybe_json(message.payload)
                            )
                        if message.event_type != "PayloadPart":
                            continue
                        pending += message.payload
                        *lines, pending = pending.split(b"\n")
                        for line in lines:
                            yield line.rstrip(b"\r")
            except EventStreamError as exc:
                raise errors.bad_gateway(f"sagemaker sent a corrupt event stream: {exc}") from None
        # a line left without its newline (or a partial frame) is a cut body: the consumer sees the
        # answer unfinished and reports it, rather than parsing half a JSON event


class SageMakerAdapter(_SageMakerBase):
    """``sagemaker/``: TGI-style ``inputs`` / ``parameters`` JSON."""

    name = "sagemaker"

    async def chat(self, http: HttpClient, request: UpstreamRequest) -> UpstreamResponse:
        target = self._target(request.deployment)
        try:
            payload = target.params.upstream_body(
                to_tgi_request(target.params.client_body(request.body), stream=False)
            )
        except OpenAIError as exc:
            raise target.errors.annotate(exc) from None
        response = await aws_post(http, target, self.url(target, stream=False), payload, request.timeout)
        answer = _maybe_json(response.content)
        first = answer[0] if isinstance(answer, list) and answer else answer
        if not isinstance(first, dict) or not isinstance(first.get("generated_text"), str):
            raise target.errors.bad_gateway("sagemaker answered without generated_text", upstream_status=200)
        details = first.get("details") or {}
        text = first["generated_text"]
        prompt_tokens = estimate_tokens(payload["inputs"])
        completion_tokens = int(details.get("generated_tokens") or estimate_tokens(text))
        body = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": target.model_id,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": _TGI_FINISH.get(details.get("finish_reason"), "stop"),
                    "logprobs": None,
                }
            ],
            "usage": usage(prompt_tokens, completion_tokens),
        }
        return UpstreamResponse(body)

    async def chat_stream(self, http: HttpClient, request: UpstreamRequest) -> AsyncIterator[JSON]:
        target = self._target(request.deployment)
        errors = target.errors
        try:
            payload = target.params.upstream_body(
                to_tgi_request(target.params.client_body(request.body), stream=True)
            )
        except OpenAIError as exc:
            raise errors.annotate(exc) from None
        chunk_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        include_usage = True  # always: the router's relay meters it and hides it from clients that did not ask (include_usage)

        def chunk(delta: JSON, finish: str | None = None) -> JSON:
            choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
            return {
                "id": chunk_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": target.model_id,
                "choices": [choice],
            }

        tokens = 0
        finished = False
        try:
            yield_role = True
            async for _name, data in iter_data(self._payload_lines(http, target, payload, request.timeout)):
                event = _maybe_json(data)
                if not isinstance(event, dict):
                    raise errors.bad_gateway("sagemaker sent a stream event that is not a JSON object")
                if event.get("error"):
                    raise errors.from_payload(event)
                if yield_role:
                    yield_role = False
                    yield chunk({"role": "assistant", "content": ""})
                token = event.get("token") or {}
                if token.get("text") and not token.get("special"):
                    tokens += 1
                    yield chunk({"content": token["text"]})
                details = event.get("details")
                if isinstance(details, dict) or event.get("generated_text") is not None:
                    finished = True
                    reason = _TGI_FINISH.get((details or {}).get("finish_reason"), "stop")
                    yield chunk({}, reason)
                    break
        except OpenAIError as exc:
            raise errors.annotate(exc) from None
        if not finished:
            raise errors.stream_cut(tokens)
        if include_usage:
            final = chunk({})
            final["choices"] = []
            final["usage"] = usage(estimate_tokens(payload["inputs"]), tokens)
            yield final


class SageMakerChatAdapter(_SageMakerBase):
    """``sagemaker_chat/``: containers that serve OpenAI's chat completions (TGI / LMI Messages API)."""

    name = "sagemaker_chat"

    @staticmethod
    def _body(target: AwsTarget, request: UpstreamRequest, stream: bool) -> JSON:
        from routerd.providers.openai import strip_routerd_keys

        client = target.params.client_body(strip_routerd_keys(request.body))
        body = target.params.upstream_body({**client, "model": request.deployment.model})
        if stream:
            body["stream"] = True
        else:
            body.pop("stream", None)
            body.pop("stream_options", None)
        return body

    async def chat(self, http: HttpClient, request: UpstreamRequest) -> UpstreamResponse:
        target = self._target(request.deployment)
        payload = self._body(target, request, stream=False)
        response = await aws_post(http, target, self.url(target, stream=False), payload, request.timeout)
        answer = _maybe_json(response.content)
        if not isinstance(answer, dict) or not isinstance(answer.get("choices"), list):
            raise target.errors.bad_gateway(
                "sagemaker answered a body that is not a chat completion", upstream_status=200
            )
        return UpstreamResponse(answer)

    async def chat_stream(self, http: HttpClient, request: UpstreamRequest) -> AsyncIterator[JSON]:
        target = self._target(request.deployment)
        lines = self._payload_lines(http, target, self._body(target, request, stream=True), request.timeout)
        async for chunk in iter_json_chunks(lines, target.errors):
            yield chunk


def tgi_prompt(messages: Any) -> str:
    """One prompt for chat ``messages``: a ``<role>: <text>`` line each, then ``assistant:``."""
    if not isinstance(messages, list) or not messages:
        raise BadRequestError("messages must be a non-empty list", param="messages")
    lines = [f"{m.get('role')}: {content_text(m.get('content'))}" for m in messages if isinstance(m, Mapping)]
    return "\n".join([*lines, "assistant:"])


def to_tgi_request(body: Mapping[str, Any], *, stream: bool) -> JSON:
    """The TGI ``inputs`` / ``parameters`` body for an OpenAI chat body."""
    parameters: JSON = {"details": True}
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens is not None:
        parameters["max_new_tokens"] = max_tokens
    for ours, theirs in (
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("top_k", "top_k"),
        ("seed", "seed"),
    ):
        if body.get(ours) is not None:
            parameters[theirs] = body[ours]
    stops = stop_list(body.get("stop"))
    if stops:
        parameters["stop"] = stops
    payload: JSON = {"inputs": tgi_prompt(body.get("messages")), "parameters": parameters}
    if stream:
        payload["stream"] = True
    return payload


def _maybe_json(content: bytes) -> Any:
    try:
        return orjson.loads(content) if content else None
    except orjson.JSONDecodeError:
        return None


register(cast(Adapter, SageMakerAdapter()))
register(cast(Adapter, SageMakerChatAdapter()))
