"""``bedrock/``: Converse translation on stored payloads, and the adapter against the fake runtime."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest

from routerd import errors
from routerd.config.table import Deployment
from routerd.http import HttpClient
from routerd.providers import bedrock_translate as translate
from routerd.providers.base import UpstreamRequest, get_adapter
from routerd.providers.bedrock import AwsTarget, BedrockAdapter
from routerd.providers.infer import split_model
from routerd.testing.bedrock_fake import BedrockReply, FakeBedrock
from routerd.testing.fake_http import StreamPlan

AKID = "AKIDEXAMPLE000000001"
SECRET = "bedrock-secret-key-do-not-leak-0123"
MODEL = "us.anthropic.claude-3-5-sonnet-20240620-v1:0"
MakeDeployment = Callable[..., Deployment]
adapter = BedrockAdapter()
PNG = "data:image/png;base64,iVBORw0KGgo="


@pytest.fixture(autouse=True)
def _no_aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_PROFILE",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
async def fake() -> AsyncIterator[FakeBedrock]:
    async with FakeBedrock(access_key=AKID, secret_key=SECRET, region="eu-west-1") as server:
        yield server


def aws_params(fake: FakeBedrock, **more: Any) -> dict[str, Any]:
    return {
        "aws_access_key_id": AKID,
        "aws_secret_access_key": SECRET,
        "aws_region_name": "eu-west-1",
        "aws_bedrock_runtime_endpoint": fake.base_url,
        **more,
    }


@pytest.fixture
def deployment(fake: FakeBedrock, make_deployment: MakeDeployment) -> Deployment:
    return make_deployment("bedrock", MODEL, extra=aws_params(fake))


def call(deployment: Deployment, body: dict[str, Any]) -> UpstreamRequest:
    return UpstreamRequest(deployment=deployment, body={"model": "claude", **body}, timeout=10.0)


def ask(text: str = "hello") -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


async def collect(stream: AsyncIterator[dict[str, Any]]) -> list[dict[str, Any]]:
    return [chunk async for chunk in stream]


# --- pure translation --------------------------------------------------------------------------------


def test_request_translation_of_a_tool_conversation_with_an_image() -> None:
    body = {
        "messages": [
            {"role": "system", "content": "be brief"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": PNG}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "t1", "type": "function", "function": {"name": "look", "arguments": '{"x": 1}'}}
                ],
            },
            {"role": "tool", "tool_call_id": "t1", "content": "a cat"},
            {"role": "user", "content": "thanks"},
        ],
        "max_tokens": 100,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": "END",
        "top_k": 5,
        "tools": [
            {
                "type": "function",
                "function": {"name": "look", "description": "d", "parameters": {"type": "object"}},
            }
        ],
        "tool_choice": "required",
    }
    assert translate.to_converse_request(body) == {
        "system": [{"text": "be brief"}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"text": "what is this?"},
                    {"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}},
                ],
            },
            {
                "role": "assistant",
                "content": [{"toolUse": {"toolUseId": "t1", "name": "look", "input": {"x": 1}}}],
            },
            # the tool result and the next user message merge into one user turn
            {
                "role": "user",
                "content": [
                    {"toolResult": {"toolUseId": "t1", "content": [{"text": "a cat"}]}},
                    {"text": "thanks"},
                ],
            },
        ],
        "inferenceConfig": {"maxTokens": 100, "temperature": 0.2, "topP": 0.9, "stopSequences": ["END"]},
        "toolConfig": {
            "tools": [
                {
                    "toolSpec": {
                        "name": "look",
                        "inputSchema": {"json": {"type": "object"}},
                        "description": "d",
                    }
                }
            ],
            "toolChoice": {"any": {}},
        },
        "additionalModelRequestFields": {"top_k": 5},
    }


def test_image_links_are_refused_with_a_clear_400() -> None:
    body = {
        "messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/cat.png"}}]}
        ]
    }
    with pytest.raises(errors.BadRequestError, match="data: URLs"):
        translate.to_converse_request(body)


def test_response_translation_with_tool_use_and_cache_usage() -> None:
    stored = {
        "output": {
            "message": {
                "role": "assistant",
                "content": [
                    {"text": "let me check"},
                    {"toolUse": {"toolUseId": "tu1", "name": "get", "input": {"city": "Oslo"}}},
                ],
            }
        },
        "stopReason": "tool_use",
        "usage": {"inputTokens": 10, "outputTokens": 4, "totalTokens": 14, "cacheReadInputTokens": 6},
    }
    out = translate.to_openai_completion(stored, model="m", created=1, request_id="r1")
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "let me check"
    assert choice["message"]["tool_calls"] == [
        {"id": "tu1", "type": "function", "function": {"name": "get", "arguments": '{"city":"Oslo"}'}}
    ]
    assert out["usage"]["prompt_tokens"] == 16
    assert out["usage"]["completion_tokens"] == 4
    assert out["usage"]["prompt_tokens_details"]["cached_tokens"] == 6


@pytest.mark.parametrize(
    ("name", "message", "cls"),
    [
        ("ThrottlingException", "Too many requests", errors.RateLimitError),
        ("ValidationException", "Input is too long for requested model.", errors.ContextWindowExceededError),
        ("ValidationException", "malformed input", errors.BadRequestError),
        ("AccessDeniedException", "no access to model", errors.PermissionDeniedError),
        ("ModelNotReadyException", "warming", errors.ServiceUnavailableError),
        ("ServiceUnavailableException", "down", errors.ServiceUnavailableError),
        ("ModelTimeoutException", "slow", errors.Timeout),
        ("ResourceNotFoundException", "no such model", errors.NotFoundError),
    ],
)
def test_exception_names_map_to_routerd_classes(
    name: str, message: str, cls: type[errors.OpenAIError]
) -> None:
    from routerd.providers.errors import ErrorContext

    error = translate.error_from(ErrorContext("bedrock", "m"), 400, name, {"message": message})
    assert type(error) is cls
    assert error.code == name


def test_model_id_keeps_inference_profiles_and_strips_route_prefixes() -> None:
    assert translate.model_id("converse/" + MODEL) == MODEL
    assert translate.model_id(MODEL) == MODEL
    assert split_model(f"bedrock/{MODEL}") == ("bedrock", MODEL)


# --- against the fake -----------------------------------------------------------------------------------


def test_registered_and_prepared_without_showing_the_secret(deployment: Deployment) -> None:
    assert isinstance(get_adapter("bedrock"), BedrockAdapter)
    assert isinstance(deployment.prepared, AwsTarget)
    assert SECRET not in repr(deployment.prepared)


async def test_chat_is_signed_and_translated(
    http_client: HttpClient, fake: FakeBedrock, deployment: Deployment
) -> None:
    response = await adapter.chat(http_client, call(deployment, ask("hi there")))
    recorded = fake.requests[-1]
    # the inference profile id is URL-encoded in the path (":" -> %3A)
    assert recorded.path == f"/model/{MODEL}/converse"
    assert recorded.headers["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={AKID}/")
    assert "/eu-west-1/bedrock/aws4_request" in recorded.headers["authorization"]
    assert recorded.json["messages"] == [{"role": "user", "content": [{"text": "hi there"}]}]
    assert response.body["choices"][0]["message"]["content"] == "echo: hi there"
    assert response.body["usage"]["total_tokens"] == 10


async def test_wrong_secret_is_refused_by_the_fake_and_mapped(
    http_client: HttpClient, fake: FakeBedrock, make_deployment: MakeDeployment
) -> None:
    wrong = make_deployment(
        "bedrock", MODEL, extra=aws_params(fake, aws_secret_access_key="wrong-secret-value-123")
    )
    with pytest.raises(errors.AuthenticationError) as caught:
        await adapter.chat(http_client, call(wrong, ask()))
    assert caught.value.upstream_status == 403
    assert "wrong-secret-value-123" not in str(caught.value)


async def test_session_token_is_signed(
    http_client: HttpClient, fake: FakeBedrock, make_deployment: MakeDeployment
) -> None:
    with_token = make_deployment(
        "bedrock", MODEL, extra=aws_params(fake, aws_session_token="session-token-xyz")
    )
    await adapter.chat(http_client, call(with_token, ask()))
    assert fake.requests[-1].headers["x-amz-security-token"] == "session-token-xyz"


@pytest.mark.parametrize(
    ("status", "name", "cls"),
    [
        (429, "ThrottlingException", errors.RateLimitError),
        (400, "ValidationException", errors.ContextWindowExceededError),
        (403, "AccessDeniedException", errors.PermissionDeniedError),
        (503, "ServiceUnavailableException", errors.ServiceUnavailableError),
    ],
)
async def test_http_errors_are_mapped(
    http_client: HttpClient,
    fake: FakeBedrock,
    deployment: Deployment,
    status: int,
    name: str,
    cls: type[errors.OpenAIError],
) -> None:
    message = "Input is too long for requested model." if name == "ValidationException" else "no"
    fake.enqueue(BedrockReply.failure(status, name, message))
    with pytest.raises(cls) as caught:
        await adapter.chat(http_client, call(deployment, ask()))
    assert caught.value.upstream_status == status
    assert caught.value.llm_provider == "bedrock"


async def test_tool_call_answer(http_client: HttpClient, fake: FakeBedrock, deployment: Deployment) -> None:
    fake.enqueue(BedrockReply.tool_use("get_weather", {"city": "Paris"}))
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    response = await adapter.chat(http_client, call(deployment, {**ask(), "tools": tools}))
    call_out = response.body["choices"][0]["message"]["tool_calls"][0]
    assert orjson.loads(call_out["function"]["arguments"]) == {"city": "Paris"}
    assert fake.requests[-1].json["toolConfig"]["tools"][0]["toolSpec"]["name"] == "get_weather"


async def test_stream_text_with_usage(
    http_client: HttpClient, fake: FakeBedrock, deployment: Deployment
) -> None:
    body = {**ask("streaming please"), "stream": True, "stream_options": {"include_usage": True}}
    chunks = await collect(adapter.chat_stream(http_client, call(deployment, body)))
    assert fake.requests[-1].path.endswith("/converse-stream")
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "echo: streaming please"
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 3


async def test_stream_tool_call_arguments_arrive_in_fragments(
    http_client: HttpClient, fake: FakeBedrock, deployment: Deployment
) -> None:
    fake.enqueue(BedrockReply.tool_use("lookup", {"query": "a fairly long argument value"}))
    chunks = await collect(adapter.chat_stream(http_client, call(deployment, {**ask(), "stream": True})))
    calls = [
        c["choices"][0]["delta"]["tool_calls"][0]
        for c in chunks
        if c["choices"] and c["choices"][0]["delta"].get("tool_calls")
    ]
    assert calls[0]["function"]["name"] == "lookup"
    assert len(calls) > 2
    assert orjson.loads("".join(c["function"]["arguments"] for c in calls)) == {
        "query": "a fairly long argument value"
    }
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    # usage always ends the stream (the router meters it and hides it unless the client asked)
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["prompt_tokens"] == 7


async def test_stream_exception_midway_is_raised_as_its_class(
    http_client: HttpClient, fake: FakeBedrock, deployment: Deployment
) -> None:
    fake.enqueue(
        BedrockReply(
            stream=StreamPlan(error_after=2), stream_exception="throttlingException", message="slow down"
        )
    )
    seen = []
    with pytest.raises(errors.RateLimitError, match="slow down"):
        async for chunk in adapter.chat_stream(http_client, call(deployment, {**ask(), "stream": True})):
            seen.append(chunk)
    assert seen  # the events before the exception were delivered


async def test_stream_that_ends_early_is_a_cut_stream(
    http_client: HttpClient, fake: FakeBedrock, deployment: Deployment
) -> None:
    fake.enqueue(BedrockReply(stream=StreamPlan(end_after=2)))
    with pytest.raises(errors.APIConnectionError, match="ended unexpectedly"):
        await collect(adapter.chat_stream(http_client, call(deployment, {**ask(), "stream": True})))


async def test_stream_http_error_before_the_first_chunk(
    http_client: HttpClient, fake: FakeBedrock, deployment: Deployment
) -> None:
    fake.enqueue(BedrockReply.failure(429, "ThrottlingException", "rate"))
    with pytest.raises(errors.RateLimitError):
        await collect(adapter.chat_stream(http_client, call(deployment, {**ask(), "stream": True})))


async def test_titan_embeddings_one_call_per_input(
    http_client: HttpClient, fake: FakeBedrock, make_deployment: MakeDeployment
) -> None:
    titan = make_deployment("bedrock", "amazon.titan-embed-text-v2:0", extra=aws_params(fake))
    response = await adapter.embedding(
        http_client, call(titan, {"input": ["a", "bb", "ccc"], "dimensions": 3})
    )
    assert [r.json for r in fake.requests] == [
        {"inputText": t, "dimensions": 3} for t in ("a", "bb", "ccc")
    ] or sorted(r.json["inputText"] for r in fake.requests) == ["a", "bb", "ccc"]
    assert all(r.path == "/model/amazon.titan-embed-text-v2:0/invoke" for r in fake.requests)
    assert [len(d["embedding"]) for d in response.body["data"]] == [3, 3, 3]
    assert [d["index"] for d in response.body["data"]] == [0, 1, 2]


async def test_cohere_embeddings_in_one_call(
    http_client: HttpClient, fake: FakeBedrock, make_deployment: MakeDeployment
) -> None:
    cohere = make_deployment("bedrock", "cohere.embed-english-v3", extra=aws_params(fake))
    response = await adapter.embedding(http_client, call(cohere, {"input": ["x", "y"]}))
    assert len(fake.requests) == 1
    assert fake.requests[0].json == {"texts": ["x", "y"], "input_type": "search_document"}
    assert len(response.body["data"]) == 2


async def test_role_without_web_identity_is_a_clear_error(
    http_client: HttpClient, fake: FakeBedrock, make_deployment: MakeDeployment
) -> None:
    extra = {"aws_role_name": "arn:aws:iam::1:role/r", "aws_bedrock_runtime_endpoint": fake.base_url}
    role = make_deployment("bedrock", MODEL, extra=extra)
    with pytest.raises(errors.AuthenticationError, match="not supported yet"):
        await adapter.chat(http_client, call(role, ask()))
    assert fake.requests == []


ROLE = "arn:aws:iam::123456789012:role/bedrock-caller"
OIDC_TOKEN = "eyJ-oidc-token-for-tests-0123456789"


def web_identity(fake: FakeBedrock, make_deployment: MakeDeployment, token: str = OIDC_TOKEN) -> Deployment:
    extra = {
        "aws_role_name": ROLE,
        "aws_web_identity_token": token,
        "aws_region_name": "eu-west-1",
        "aws_sts_endpoint": fake.base_url,
        "aws_bedrock_runtime_endpoint": fake.base_url,
    }
    return make_deployment("bedrock", MODEL, extra=extra)


async def test_web_identity_assumes_the_role_through_sts_and_caches_the_credentials(
    http_client: HttpClient, fake: FakeBedrock, make_deployment: MakeDeployment
) -> None:
    fake.web_identities[OIDC_TOKEN] = ROLE
    deployment = web_identity(fake, make_deployment)
    for _ in range(2):
        response = await adapter.chat(http_client, call(deployment, ask("assumed")))
        assert response.body["choices"][0]["message"]["content"] == "echo: assumed"
    assert fake.sts_calls == 1  # the second call reused the temporary credentials
    converse = [r for r in fake.requests if r.path.endswith("/converse")]
    assert "Credential=ASIATEMP" in converse[-1].headers["authorization"]
    assert converse[-1].headers["x-amz-security-token"] == "temp-session-1"


async def test_web_identity_credentials_are_renewed_before_they_expire(
    http_client: HttpClient, fake: FakeBedrock, make_deployment: MakeDeployment
) -> None:
    import time as real_time

    from routerd.providers.aws_auth import REFRESH_BEFORE_EXPIRY_S

    fake.web_identities[OIDC_TOKEN] = ROLE
    fake.sts_lifetime_s = 3600
    deployment = web_identity(fake, make_deployment)
    signer = deployment.prepared.signer
    now = [real_time.time()]
    signer.clock = lambda: now[0]
    await adapter.chat(http_client, call(deployment, ask()))
    now[0] += 3600 - REFRESH_BEFORE_EXPIRY_S - 60  # still fresh
    await adapter.chat(http_client, call(deployment, ask()))
    assert fake.sts_calls == 1
    now[0] += 120  # inside the renewal window
    await adapter.chat(http_client, call(deployment, ask()))
    assert fake.sts_calls == 2


async def test_a_refused_web_identity_is_an_authentication_error_without_the_token(
    http_client: HttpClient, fake: FakeBedrock, make_deployment: MakeDeployment
) -> None:
    deployment = web_identity(fake, make_deployment, token="eyJ-unknown-token-abcdefgh")
    with pytest.raises(errors.AuthenticationError, match="InvalidIdentityToken") as caught:
        await adapter.chat(http_client, call(deployment, ask()))
    assert "eyJ-unknown-token-abcdefgh" not in str(caught.value)
    assert not [r for r in fake.requests if r.path.startswith("/model/")]


async def test_standard_chain_credentials_from_the_environment(
    http_client: HttpClient,
    fake: FakeBedrock,
    make_deployment: MakeDeployment,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AKID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    chained = make_deployment("bedrock", MODEL, extra={"aws_bedrock_runtime_endpoint": fake.base_url})
    response = await adapter.chat(http_client, call(chained, ask("chain")))
    assert response.body["choices"][0]["message"]["content"] == "echo: chain"


async def test_deployment_params_apply_and_extra_headers_are_signed(
    http_client: HttpClient, fake: FakeBedrock, make_deployment: MakeDeployment
) -> None:
    extra = aws_params(
        fake,
        temperature=0.3,
        extra_body={"performanceConfig": {"latency": "optimized"}},
        headers={"X-Amzn-Bedrock-Trace": "ENABLED"},
    )
    tuned = make_deployment("bedrock", MODEL, extra=extra)
    await adapter.chat(http_client, call(tuned, ask()))
    sent = fake.requests[-1]
    assert sent.json["inferenceConfig"] == {"temperature": 0.3}
    assert sent.json["performanceConfig"] == {"latency": "optimized"}
    assert sent.headers["x-amzn-bedrock-trace"] == "ENABLED"  # and the fake verified it was signed
    assert "x-amzn-bedrock-trace" in sent.headers["authorization"]
    await adapter.chat(http_client, call(tuned, {**ask(), "temperature": 0.9}))
    assert fake.requests[-1].json["inferenceConfig"] == {"temperature": 0.9}  # the client's value wins


async def test_titan_calls_in_flight_are_bounded(
    http_client: HttpClient,
    fake: FakeBedrock,
    make_deployment: MakeDeployment,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import routerd.providers.bedrock as bedrock_module

    monkeypatch.setattr(bedrock_module, "TITAN_CONCURRENCY", 2)
    fake.invoke_delay = 0.02  # long enough for the calls to overlap
    titan = make_deployment("bedrock", "amazon.titan-embed-text-v1", extra=aws_params(fake))
    response = await adapter.embedding(http_client, call(titan, {"input": [f"text {i}" for i in range(6)]}))
    assert len(response.body["data"]) == 6
    assert fake.max_invokes_in_flight == 2
