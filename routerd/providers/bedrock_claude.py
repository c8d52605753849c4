"""Claude on Amazon Bedrock in Anthropic's own format: the pure half of native ``/v1/messages``.

InvokeModel (``/model/{id}/invoke``) takes a Messages request without ``model`` (the URL names it)
and without ``stream`` (the action says it), with ``anthropic_version`` set to
:data:`BEDROCK_ANTHROPIC_VERSION` and beta features in the body's ``anthropic_beta`` list (Bedrock
reads no ``anthropic-beta`` header); it answers Anthropic's ``message``.
InvokeModelWithResponseStream (``/invoke-with-response-stream``) answers AWS event-stream frames whose
``chunk`` events carry ``{"bytes": <base64 of one Anthropic event>}``; the last one, ``message_stop``,
also carries Bedrock's ``amazon-bedrock-invocationMetrics``, which is dropped here: the provider's
own bookkeeping is not part of Anthropic's event, and the gateway does not relay it. The HTTP half (SigV4, framing,
AWS errors) is :mod:`routerd.providers.bedrock`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

import orjson

from routerd.providers.anthropic_wire import beta_features, checked_events, native_payload
from routerd.providers.base import JSON, UpstreamRequest
from routerd.providers.errors import ErrorContext
from routerd.providers.eventstream import Message
from routerd.providers.openai_parts import DeploymentParams

#: the ``anthropic_version`` Bedrock expects in the body
BEDROCK_ANTHROPIC_VERSION = "bedrock-2023-05-31"
#: the field Bedrock adds to a stream's ``message_stop`` (token counts and latencies of its own)
INVOCATION_METRICS = "amazon-bedrock-invocationMetrics"


def is_claude(model_id: str) -> bool:
    """Whether a Bedrock model id is Anthropic's: ``anthropic.claude-*``, a cross-region profile
    (``us.anthropic.claude-*``) or an ARN naming one. (An application inference profile's ARN does
    not name its model: such deployments are served through Converse.)"""
    return "anthropic.claude" in model_id


def invoke_body(request: UpstreamRequest, params: DeploymentParams, *, stream: bool) -> JSON:
    """The InvokeModel body for a ``/v1/messages`` request (client's unknown fields included)."""
    body = native_payload(request, params, stream=stream)
    body.pop("model", None)
    body.pop("stream", None)
    # setdefault: a client or a deployment's extra_body may set them already
    body.setdefault("anthropic_version", BEDROCK_ANTHROPIC_VERSION)
    betas = beta_features(request.extra_headers)
    if betas:
        body.setdefault("anthropic_beta", betas)
    return body


def anthropic_events(
    frames: AsyncGenerator[Message, None], errors: ErrorContext
) -> AsyncGenerator[JSON, None]:
    """Anthropic's events carried by an InvokeModelWithResponseStream answer's ``chunk`` frames
    (closing it closes ``frames``, and so the upstream call)."""
    return checked_events(_chunks(frames, errors), errors)


async def _chunks(frames: AsyncGenerator[Message, None], errors: ErrorContext) -> AsyncGenerator[Any, None]:
    async with aclosing(frames):
        async for frame in frames:
            if frame.event_type != "chunk":
                continue  # no other event type is documented; one added later is not Anthropic's
            event = chunk_event(frame.payload, errors)
            if type(event) is dict and event.get("type") == "message_stop":
                event.pop(INVOCATION_METRICS, None)
            yield event


def chunk_event(payload: bytes, errors: ErrorContext) -> Any:
    """The Anthropic event inside one ``chunk`` frame's payload (``{"bytes": "<base64>"}``)."""
    try:
        wrapper = orjson.loads(payload)
        raw = wrapper.get("bytes") if isinstance(wrapper, dict) else None
        if not isinstance(raw, str):
            raise ValueError("no bytes")
        return orjson.loads(base64.b64decode(raw, validate=True))
    except (ValueError, binascii.Error):  # orjson.JSONDecodeError is a ValueError
        raise errors.bad_gateway(
            f"{errors.provider} sent a stream chunk that is not an Anthropic event"
        ) from None
