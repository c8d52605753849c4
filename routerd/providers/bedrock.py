"""The ``bedrock/`` provider: chat through Converse / ConverseStream, embeddings through InvokeModel.

``POST {endpoint}/model/{model id}/converse`` (``/converse-stream``, ``/invoke``), SigV4-signed for the
service ``bedrock`` (:mod:`routerd.providers.aws_auth`). ``{endpoint}`` is
``aws_bedrock_runtime_endpoint`` or ``api_base`` when given, else
``https://bedrock-runtime.{region}.amazonaws.com``. Model ids are sent URL-encoded (``:`` kept), so inference
profile ids (``us.anthropic.claude-...``) and ARNs work as given.

Embeddings: ``amazon.titan-embed-*`` take one text per call (calls run concurrently, at most
:data:`TITAN_CONCURRENCY` at a time); ``cohere.embed-*`` take the whole list in one call.
Translation is pure (:mod:`routerd.providers.bedrock_translate`); streamed answers arrive in AWS
event-stream framing (:mod:`routerd.providers.eventstream`).

Claude models (``anthropic.claude-*``, and inference profiles of them) also get ``/v1/messages``
requests natively, through InvokeModel in Anthropic's format (:mod:`routerd.providers.bedrock_claude`).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import quote

import orjson

from routerd.config.table import Deployment
from routerd.errors import BadRequestError, OpenAIError
from routerd.http import HttpClient, HttpResponse
from routerd.providers import bedrock_claude
from routerd.providers import bedrock_translate as translate
from routerd.providers.anthropic_wire import checked_message
from routerd.providers.aws_auth import AwsSigner, aws_region
from routerd.providers.base import (
    CHAT,
    EMBEDDINGS,
    JSON,
    Adapter,
    BaseAdapter,
    UpstreamRequest,
    UpstreamResponse,
    register,
)
from routerd.providers.errors import ErrorContext
from routerd.providers.eventstream import EventStreamDecoder, EventStreamError, Message
from routerd.providers.openai_parts import DeploymentParams
from routerd.providers.shapes import embedding_list
from routerd.tokens import estimate_tokens

__all__ = [
    "TITAN_CONCURRENCY",
    "AwsTarget",
    "BedrockAdapter",
    "aws_event_stream",
    "aws_post",
    "runtime_endpoint",
]

#: Titan embedding calls in flight at once for one request (Titan embeds one text per call)
TITAN_CONCURRENCY = 8


@dataclass(frozen=True, slots=True)
class AwsTarget:
    """What an AWS adapter precomputes for one deployment."""

    base: str
    model_id: str
    signer: AwsSigner = field(repr=False)
    errors: ErrorContext = field(repr=False)
    # defaults, drops, extra_body and headers from the deployment's litellm_params
    params: DeploymentParams = field(
        default_factory=lambda: DeploymentParams({}, frozenset(), {}, {}), repr=False
    )

    def headers(self, accept: str) -> dict[str, str]:
        """The headers to sign: the deployment's own ``headers`` first, ours over them."""
        return {**self.params.headers, "content-type": "application/json", "accept": accept}

    def url(self, action: str) -> str:
        # ":" (in versions and profile ids) stays literal: some clients (aiohttp) unescape "%3A" after
        # signing, which would break the signature; "/" of an ARN must be escaped
        return f"{self.base}/model/{quote(self.model_id, safe=':')}/{action}"


def runtime_endpoint(deployment: Deployment, service_host: str, region: str) -> str:
    """The endpoint override (``aws_bedrock_runtime_endpoint`` / ``api_base``) or the regional host."""
    override = deployment.extra.get("aws_bedrock_runtime_endpoint") or deployment.api_base
    if isinstance(override, str) and override:
        return override.rstrip("/")
    return f"https://{service_host}.{region}.amazonaws.com"


async def aws_post(
    http: HttpClient, target: AwsTarget, url: str, payload: Any, timeout: float
) -> HttpResponse:
    """A signed JSON POST; non-2xx answers raised as routerd errors."""
    content = orjson.dumps(payload)
    errors = target.errors
    try:
        headers = await target.signer.sign(http, "POST", url, target.headers("application/json"), content)
        response = await http.request("POST", url, headers=headers, content=content, timeout=timeout)
    except OpenAIError as exc:
        raise errors.annotate(exc) from None
    if response.status >= 400:
        body = _maybe_json(response.content)
        name = translate.exception_name(response.headers, body)
        raise translate.error_from(errors, response.status, name, body, response.headers)
    return response


async def aws_event_stream(
    http: HttpClient, target: AwsTarget, url: str, content: bytes, timeout: float
) -> AsyncGenerator[Message, None]:
    """A signed streaming POST answered in AWS event-stream framing; yields its ``event`` messages.

    A non-2xx answer, an in-stream exception and corrupt framing are raised as routerd errors.
    """
    errors = target.errors
    decoder = EventStreamDecoder()
    try:
        headers = await target.signer.sign(
            http, "POST", url, target.headers("application/vnd.amazon.eventstream"), content
        )
        async with http.stream("POST", url, headers=headers, content=content, timeout=timeout) as response:
            if response.status >= 400:
                body = _maybe_json(await response.aread())
                name = translate.exception_name(response.headers, body)
                raise translate.error_from(errors, response.status, name, body, response.headers)
            async for data in response.aiter_bytes():
                for message in decoder.feed(data):
                    if message.message_type != "event":
                        payload = _maybe_json(message.payload)
                        raise translate.error_from(errors, None, message.event_type, payload)
                    yield message
    except EventStreamError as exc:
        raise errors.bad_gateway(f"bedrock sent a corrupt event stream: {exc}") from None
    except OpenAIError as exc:
        raise errors.annotate(exc) from None


class BedrockAdapter(BaseAdapter):
    """Chat (plain and streamed) and embeddings on Amazon Bedrock."""

    name = translate.PROVIDER
    endpoints = frozenset({CHAT, EMBEDDINGS})

    def prepare(self, deployment: Deployment) -> AwsTarget:
        region = aws_region(deployment.extra, deployment.region_name)
        where = f"deployment {deployment.id} ({deployment.litellm_model})"
        signer = AwsSigner.from_extra("bedrock", region, deployment.extra, where)
        model = translate.model_id(deployment.model)
        errors = ErrorContext(self.name, model, deployment.id, secrets=signer.secrets)
        base = runtime_endpoint(deployment, "bedrock-runtime", region)
        return AwsTarget(base, model, signer, errors, DeploymentParams.from_extra(deployment.extra))

    def _target(self, deployment: Deployment) -> AwsTarget:
        target = deployment.prepared
        return target if isinstance(target, AwsTarget) else self.prepare(deployment)

    def _converse_body(self, target: AwsTarget, request: UpstreamRequest) -> JSON:
        drop = request.drop_params or bool(request.deployment.drop_params)
        try:
            body = translate.POLICY.apply(target.params.client_body(request.body), drop, target.model_id)
            return target.params.upstream_body(translate.to_converse_request(body))
        except OpenAIError as exc:
            raise target.errors.annotate(exc) from None

    async def chat(self, http: HttpClient, request: UpstreamRequest) -> UpstreamResponse:
        target = self._target(request.deployment)
        payload = self._converse_body(target, request)
        response = await aws_post(http, target, target.url("converse"), payload, request.timeout)
        answer = _maybe_json(response.content)
        if not isinstance(answer, dict) or "output" not in answer:
            raise target.errors.bad_gateway(
                "bedrock answered a body that is not a Converse response", upstream_status=200
            )
        request_id = response.headers.get("x-amzn-requestid") or uuid.uuid4().hex
        body = translate.to_openai_completion(
            answer, model=target.model_id, created=int(time.time()), request_id=request_id
        )
        return UpstreamResponse(body)

    async def chat_stream(self, http: HttpClient, request: UpstreamRequest) -> AsyncIterator[JSON]:
        target = self._target(request.deployment)
        errors = target.errors
        content = orjson.dumps(self._converse_body(target, request))
        translator = translate.StreamTranslator(
            model=target.model_id,
            created=int(time.time()),
            chunk_id=f"chatcmpl-{uuid.uuid4().hex}",
            include_usage=True,  # always: the router's relay meters it and hides it from clients that did not ask (include_usage)
            errors=errors,
        )
        events = 0
        url = target.url("converse-stream")
        frames = aws_event_stream(http, target, url, content, request.timeout)
        async with aclosing(frames):  # closing this stream closes the upstream call at once
            async for message in frames:
                payload = _maybe_json(message.payload)
                events += 1
                for chunk in translator.feed(
                    message.event_type, payload if isinstance(payload, dict) else {}
                ):
                    yield chunk
        if not translator.stopped:
            raise errors.stream_cut(events)

    def native_for(self, deployment: Deployment, api: str) -> bool:
        """Claude models get ``/v1/messages`` requests as they are (see providers.base.speaks_natively)."""
        return api == "messages" and bedrock_claude.is_claude(self._target(deployment).model_id)

    async def messages(self, http: HttpClient, request: UpstreamRequest) -> UpstreamResponse:
        """A ``/v1/messages`` request for a Claude model, sent as it is (InvokeModel)."""
        target = self._target(request.deployment)
        payload = bedrock_claude.invoke_body(request, target.params, stream=False)
        response = await aws_post(http, target, target.url("invoke"), payload, request.timeout)
        return UpstreamResponse(checked_message(_maybe_json(response.content), target.errors))

    def messages_stream(self, http: HttpClient, request: UpstreamRequest) -> AsyncIterator[JSON]:
        """A streamed ``/v1/messages`` request for a Claude model (InvokeModelWithResponseStream):
        the event-stream's chunks decoded to Anthropic's events."""
        target = self._target(request.deployment)
        content = orjson.dumps(bedrock_claude.invoke_body(request, target.params, stream=True))
        url = target.url("invoke-with-response-stream")
        frames = aws_event_stream(http, target, url, content, request.timeout)
        return bedrock_claude.anthropic_events(frames, target.errors)

    async def embedding(self, http: HttpClient, request: UpstreamRequest) -> UpstreamResponse:
        target = self._target(request.deployment)
        inputs = _embedding_inputs(request.body)
        url = target.url("invoke")
        if target.model_id.split(".", 1)[-1].startswith("cohere.embed") or target.model_id.startswith(
            "cohere.embed"
        ):
            vectors = await self._cohere_embed(http, target, url, inputs, request)
        elif "titan-embed" in target.model_id:
            vectors = await self._titan_embed(http, target, url, inputs, request)
        else:
            raise target.errors.annotate(
                BadRequestError(
                    f"bedrock embeddings support amazon.titan-embed-* and cohere.embed-*, not {target.model_id}"
                )
            )
        tokens = sum(estimate_tokens(text) for text in inputs)
        body = embedding_list(
            model=target.model_id,
            vectors=vectors,
            prompt_tokens=tokens,
            encoding_format=request.body.get("encoding_format"),
        )
        return UpstreamResponse(body)

    async def _titan_embed(
        self, http: HttpClient, target: AwsTarget, url: str, inputs: list[str], request: UpstreamRequest
    ) -> list[list[float]]:
        gate = asyncio.Semaphore(TITAN_CONCURRENCY)
        dimensions = request.body.get("dimensions")

        async def one(text: str) -> list[float]:
            payload: JSON = {"inputText": text}
            if dimensions is not None:
                payload["dimensions"] = dimensions
            async with gate:
                response = await aws_post(http, target, url, payload, request.timeout)
            answer = _maybe_json(response.content)
            vector = answer.get("embedding") if isinstance(answer, dict) else None
            if not isinstance(vector, list):
                raise target.errors.bad_gateway(
                    "bedrock titan answered without an embedding", upstream_status=200
                )
            return vector

        return list(await asyncio.gather(*(one(text) for text in inputs)))

    async def _cohere_embed(
        self, http: HttpClient, target: AwsTarget, url: str, inputs: list[str], request: UpstreamRequest
    ) -> list[list[float]]:
        input_type = (
            request.body.get("input_type") or request.deployment.extra.get("input_type") or "search_document"
        )
        payload = {"texts": inputs, "input_type": input_type}
        response = await aws_post(http, target, url, payload, request.timeout)
        answer = _maybe_json(response.content)
        vectors = answer.get("embeddings") if isinstance(answer, dict) else None
        if isinstance(vectors, dict):  # asked with embedding_types: {"float": [...]}
            vectors = vectors.get("float")
        if not isinstance(vectors, list) or len(vectors) != len(inputs):
            raise target.errors.bad_gateway(
                "bedrock cohere answered without one embedding per text", upstream_status=200
            )
        return cast(list[list[float]], vectors)


def _embedding_inputs(body: Mapping[str, Any]) -> list[str]:
    value = body.get("input")
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        return list(value)
    raise BadRequestError("input must be a string or a non-empty list of strings for bedrock", param="input")


def _maybe_json(content: bytes) -> Any:
    try:
        return orjson.loads(content) if content else None
    except orjson.JSONDecodeError:
        return None


register(cast(Adapter, BedrockAdapter()))
