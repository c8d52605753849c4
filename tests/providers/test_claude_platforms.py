"""Claude on Vertex AI and on Bedrock at the adapter level: which deployments speak Messages natively,
the bodies each platform gets, and the failures (error shapes, in-band errors, cut and corrupt
streams, a refused token) against the loopback fakes of both platforms."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import orjson
import pytest

from routerd import errors
from routerd.config.table import Deployment
from routerd.http import HttpClient
from routerd.providers import bedrock_claude, vertex_claude
from routerd.providers.base import UpstreamRequest, get_adapter, speaks_natively
from routerd.providers.bedrock import BedrockAdapter
from routerd.providers.errors import ErrorContext
from routerd.providers.eventstream import EventStreamDecoder
from routerd.providers.vertex import VertexAdapter
from routerd.testing.anthropic_fake import AnthropicReply
from routerd.testing.claude_platforms_fake import (
    FakeBedrockClaude,
    FakeVertexClaude,
    aws_failure,
    google_failure,
)
from routerd.testing.fake_http import StreamPlan
from routerd.testing.gemini_fake import FakeGoogleToken, make_service_account

MakeDeployment = Callable[..., Deployment]
AKID = "AKIDCLAUDEPLATFORM01"
SECRET = "claude-platform-secret-value"
TOKEN = "ya29.claude-static-token"
VERTEX_MODEL = "claude-haiku-4-5@20251001"
BEDROCK_MODEL = "anthropic.claude-haiku-4-5-20251001-v1:0"
HELLO = {"model": "client-name", "max_tokens": 32, "messages": [{"role": "user", "content": "hello"}]}


@pytest.fixture
async def vertex_fake() -> AsyncIterator[FakeVertexClaude]:
    async with FakeVertexClaude(tokens={TOKEN}) as fake:
        yield fake


@pytest.fixture
async def bedrock_fake() -> AsyncIterator[FakeBedrockClaude]:
    async with FakeBedrockClaude(access_key=AKID, secret_key=SECRET) as fake:
        yield fake


def vertex(fake: FakeVertexClaude, make: MakeDeployment, adapter: VertexAdapter, **extra: Any) -> Deployment:
    api_key = extra.pop("api_key", TOKEN)
    extra.setdefault("vertex_project", "p1")
    deployment = make(
        "vertex_ai", VERTEX_MODEL, prepare=False, api_base=fake.base_url, api_key=api_key, extra=extra
    )
    return replace(deployment, prepared=adapter.prepare(deployment))


def bedrock(fake: FakeBedrockClaude, make: MakeDeployment, **extra: Any) -> Deployment:
    aws = {
        "aws_access_key_id": AKID,
        "aws_secret_access_key": SECRET,
        "aws_region_name": "us-east-1",
        "aws_bedrock_runtime_endpoint": fake.base_url,
    }
    return make("bedrock", BEDROCK_MODEL, extra={**aws, **extra})


def call(deployment: Deployment, body: dict[str, Any] | None = None, **headers: str) -> UpstreamRequest:
    return UpstreamRequest(deployment=deployment, body=body or HELLO, timeout=10.0, extra_headers=headers)


async def collect(stream: AsyncIterator[dict[str, Any]]) -> list[dict[str, Any]]:
    return [event async for event in stream]


# -- which deployments are native -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "model", "native"),
    [
        ("vertex_ai", "claude-sonnet-4-5@20250929", True),
        ("vertex_ai", "gemini-2.5-flash", False),
        ("bedrock", "anthropic.claude-3-5-sonnet-20240620-v1:0", True),
        ("bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", True),
        (
            "bedrock",
            "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0",
            True,
        ),
        ("bedrock", "meta.llama3-70b-instruct-v1:0", False),
        ("bedrock", "amazon.titan-embed-text-v2:0", False),
        ("anthropic", "claude-sonnet-4-5", True),
        ("openai", "gpt-4o-mini", False),
    ],
)
def test_which_deployments_get_messages_natively(
    make_deployment: MakeDeployment, provider: str, model: str, native: bool
) -> None:
    extra = {"vertex_project": "p"} if provider == "vertex_ai" else {}
    deployment = make_deployment(provider, model, api_key="k", extra=extra)
    adapter = get_adapter(provider)
    assert speaks_natively(adapter, deployment, "messages") is native
    assert speaks_natively(adapter, deployment, "responses") is (provider == "openai")


# -- bodies -----------------------------------------------------------------------------------------


def test_bedrock_body_moves_betas_into_it_and_applies_the_deployment(
    make_deployment: MakeDeployment,
) -> None:
    deployment = make_deployment(
        "bedrock",
        BEDROCK_MODEL,
        extra={
            "aws_region_name": "us-east-1",
            "extra_body": {"top_k": 5},
            "additional_drop_params": ["metadata"],
        },
    )
    params = deployment.prepared.params
    body = {**HELLO, "stream": True, "metadata": {"user_id": "u"}, "speed": "fast"}
    request = call(
        deployment, body, **{"anthropic-beta": "a-2025, b-2026 ", "anthropic-version": "2023-06-01"}
    )
    sent = bedrock_claude.invoke_body(request, params, stream=True)
    assert sent == {
        "max_tokens": 32,
        "messages": HELLO["messages"],
        "speed": "fast",
        "top_k": 5,
        "anthropic_version": "bedrock-2023-05-31",
        "anthropic_beta": ["a-2025", "b-2026"],
    }
    # a client that names its betas in the body keeps them
    own = bedrock_claude.invoke_body(
        call(deployment, {**HELLO, "anthropic_beta": ["mine"]}, **{"anthropic-beta": "x"}),
        params,
        stream=False,
    )
    assert own["anthropic_beta"] == ["mine"]


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b'{"bytes": "%%% not base64"}',
        b'{"nothing": 1}',
        orjson.dumps({"bytes": base64.b64encode(b"not json either").decode()}),
    ],
)
def test_a_bedrock_chunk_that_is_not_an_anthropic_event_is_a_502(payload: bytes) -> None:
    with pytest.raises(errors.BadGatewayError, match="not an Anthropic event"):
        bedrock_claude.chunk_event(payload, ErrorContext("bedrock", BEDROCK_MODEL))


def test_vertex_errors_read_both_shapes() -> None:
    context = ErrorContext("vertex_ai", VERTEX_MODEL)
    google = {"error": {"code": 403, "message": "denied", "status": "PERMISSION_DENIED"}}
    assert isinstance(vertex_claude.vertex_error(403, google, {}, context), errors.PermissionDeniedError)
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    error = vertex_claude.vertex_error(529, overloaded, {}, context)
    assert isinstance(error, errors.ServiceUnavailableError) and error.retryable
    assert error.message == "vertex_ai: Overloaded"


# -- Vertex -----------------------------------------------------------------------------------------


async def test_vertex_in_band_error_and_cut_stream(
    http_client: HttpClient, vertex_fake: FakeVertexClaude, make_deployment: MakeDeployment
) -> None:
    adapter = VertexAdapter()
    deployment = vertex(vertex_fake, make_deployment, adapter)
    in_band = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    vertex_fake.enqueue(
        AnthropicReply.text("some words here", stream=StreamPlan(error_after=3, error_event=in_band)),
        AnthropicReply.text("some words here", stream=StreamPlan(end_after=3)),
    )
    with pytest.raises(errors.ServiceUnavailableError):
        await collect(adapter.messages_stream(http_client, call(deployment)))
    with pytest.raises(errors.OpenAIError, match="stream"):
        await collect(adapter.messages_stream(http_client, call(deployment)))
    assert vertex_fake.requests[-1].json["stream"] is True


async def test_vertex_refused_token_is_dropped_and_fetched_again(
    http_client: HttpClient, vertex_fake: FakeVertexClaude, make_deployment: MakeDeployment
) -> None:
    async with FakeGoogleToken() as token_server:
        info, token_server.public_key_pem = make_service_account(token_server.token_uri, project_id="sa")
        vertex_fake.tokens = token_server.issued
        adapter = VertexAdapter()
        deployment = vertex(
            vertex_fake,
            make_deployment,
            adapter,
            api_key=None,
            vertex_credentials=orjson.dumps(info).decode(),
        )
        await adapter.messages(http_client, call(deployment))
        token_server.issued.clear()  # revoked
        with pytest.raises(errors.AuthenticationError):
            await adapter.messages(http_client, call(deployment))
        answer = await adapter.messages(http_client, call(deployment))
    assert answer.body["type"] == "message"
    assert len(token_server.claims) == 2  # a new token after the refusal, not the cached one


async def test_vertex_quota_error_then_chat_translated(
    http_client: HttpClient, vertex_fake: FakeVertexClaude, make_deployment: MakeDeployment
) -> None:
    adapter = VertexAdapter()
    deployment = vertex(vertex_fake, make_deployment, adapter)
    vertex_fake.enqueue(google_failure(429, "RESOURCE_EXHAUSTED", "Quota exceeded"))
    with pytest.raises(errors.RateLimitError):
        await adapter.messages(http_client, call(deployment))
    answer = await adapter.chat(http_client, call(deployment))
    assert answer.body["object"] == "chat.completion"
    assert answer.body["choices"][0]["message"]["content"] == "echo: hello"


# -- Bedrock ----------------------------------------------------------------------------------------


async def test_bedrock_stream_cut_and_exception(
    http_client: HttpClient, bedrock_fake: FakeBedrockClaude, make_deployment: MakeDeployment
) -> None:
    adapter = BedrockAdapter()
    deployment = bedrock(bedrock_fake, make_deployment)
    broken = {"type": "error", "error": {"message": "model broke"}}
    bedrock_fake.enqueue(
        AnthropicReply.text("some words here", stream=StreamPlan(end_after=4)),
        AnthropicReply.text("some words here", stream=StreamPlan(error_after=2, error_event=broken)),
        aws_failure(403, "AccessDeniedException", "no access to this model"),
    )
    with pytest.raises(errors.OpenAIError, match="stream"):
        await collect(adapter.messages_stream(http_client, call(deployment)))
    with pytest.raises(errors.BadGatewayError, match="model broke"):
        await collect(adapter.messages_stream(http_client, call(deployment)))
    with pytest.raises(errors.PermissionDeniedError):
        await collect(adapter.messages_stream(http_client, call(deployment)))
    events = await collect(adapter.messages_stream(http_client, call(deployment)))
    assert events[0]["type"] == "message_start" and events[-1]["type"] == "message_stop"


async def test_bedrock_invocation_metrics_are_not_relayed(
    http_client: HttpClient, bedrock_fake: FakeBedrockClaude, make_deployment: MakeDeployment
) -> None:
    # the fake sends them as the Bedrock runtime does, on the last chunk
    [frame] = EventStreamDecoder().feed(bedrock_fake.encode({"type": "message_stop"}))
    sent = bedrock_claude.chunk_event(frame.payload, ErrorContext("bedrock", BEDROCK_MODEL))
    assert sent[bedrock_claude.INVOCATION_METRICS]["outputTokenCount"] > 0
    events = await collect(
        BedrockAdapter().messages_stream(http_client, call(bedrock(bedrock_fake, make_deployment)))
    )
    assert events[-1] == {"type": "message_stop"}
    assert not any(bedrock_claude.INVOCATION_METRICS in event for event in events)


async def test_bedrock_native_answer_is_the_message(
    http_client: HttpClient, bedrock_fake: FakeBedrockClaude, make_deployment: MakeDeployment
) -> None:
    adapter = BedrockAdapter()
    deployment = bedrock(bedrock_fake, make_deployment)
    bedrock_fake.enqueue(AnthropicReply.thinking("hmm", "done"))
    answer = await adapter.messages(http_client, call(deployment))
    assert [block["type"] for block in answer.body["content"]] == ["thinking", "text"]
    assert answer.body["model"] == BEDROCK_MODEL


def test_vertex_body_names_no_model_and_keeps_a_pinned_version() -> None:
    sent = orjson.loads(vertex_claude.vertex_body({**HELLO}))
    assert "model" not in sent and sent["anthropic_version"] == "vertex-2023-10-16"
    pinned = orjson.loads(vertex_claude.vertex_body({**HELLO, "anthropic_version": "vertex-2099-01-01"}))
    assert pinned["anthropic_version"] == "vertex-2099-01-01"  # a deployment's extra_body may pin it


async def test_vertex_headers_carry_betas_not_the_version(
    http_client: HttpClient, vertex_fake: FakeVertexClaude, make_deployment: MakeDeployment
) -> None:
    adapter = VertexAdapter()
    deployment = vertex(vertex_fake, make_deployment, adapter, headers={"x-team": "a"})
    forwarded = {"Anthropic-Beta": "b-1", "anthropic-version": "2023-06-01", "authorization": "Bearer client"}
    await adapter.messages(http_client, call(deployment, **forwarded))
    sent = vertex_fake.requests[-1].headers
    assert sent["anthropic-beta"] == "b-1" and sent["x-team"] == "a"
    assert "anthropic-version" not in sent and sent["authorization"] == f"Bearer {TOKEN}"
