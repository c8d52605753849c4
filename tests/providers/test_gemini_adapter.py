"""The ``gemini/`` adapter end to end: routerd's HTTP clients against the fake Gemini API."""

from __future__ import annotations

import base64
import struct
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest

from routerd import errors
from routerd.config.table import Deployment
from routerd.http import HttpClient
from routerd.providers.base import UpstreamRequest, get_adapter
from routerd.providers.gemini import GeminiAdapter, GeminiTarget, base_url, model_path, versioned_base
from routerd.testing.fake_http import StreamPlan
from routerd.testing.gemini_fake import FakeGemini, GeminiReply, error_body

KEY = "AIzaSyFakeGeminiKey-0123456789"
MODEL = "gemini-2.0-flash"
MakeDeployment = Callable[..., Deployment]

adapter = GeminiAdapter()


@pytest.fixture
async def fake() -> AsyncIterator[FakeGemini]:
    async with FakeGemini(api_key=KEY) as server:
        yield server


@pytest.fixture
def deployment(fake: FakeGemini, make_deployment: MakeDeployment) -> Deployment:
    return make_deployment("gemini", MODEL, api_base=fake.base_url + "/v1beta", api_key=KEY, group="gem")


def call(deployment: Deployment, body: dict[str, Any], **fields: Any) -> UpstreamRequest:
    return UpstreamRequest(deployment=deployment, body={"model": "gem", **body}, timeout=10.0, **fields)


def ask(text: str = "hello") -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


async def collect(stream: AsyncIterator[dict[str, Any]]) -> list[dict[str, Any]]:
    return [chunk async for chunk in stream]


def test_registered_under_its_name() -> None:
    assert isinstance(get_adapter("gemini"), GeminiAdapter)


@pytest.mark.parametrize(
    ("model", "path"),
    [
        ("gemini-2.0-flash", "models/gemini-2.0-flash"),
        ("tunedModels/my-model-123", "tunedModels/my-model-123"),
    ],
)
def test_model_path(model: str, path: str) -> None:
    assert model_path(model) == path


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("https://generativelanguage.googleapis.com", "https://generativelanguage.googleapis.com/v1beta"),
        ("https://proxy.example/gemini/", "https://proxy.example/gemini/v1beta"),
        ("https://proxy.example/v1", "https://proxy.example/v1"),
    ],
)
def test_versioned_base(base: str, expected: str) -> None:
    assert versioned_base(base, "v1beta") == expected


@pytest.mark.parametrize(
    ("api_base", "api_version", "expected"),
    [
        (None, None, "https://generativelanguage.googleapis.com/v1beta"),
        (None, "v1", "https://generativelanguage.googleapis.com/v1"),
        (
            "https://generativelanguage.googleapis.com/",
            None,
            "https://generativelanguage.googleapis.com/v1beta",
        ),
        # a Vertex-Express style api_base: LiteLLM calls {api_base}/models/... with nothing inserted
        (
            "https://aiplatform.googleapis.com/v1/publishers/google",
            None,
            "https://aiplatform.googleapis.com/v1/publishers/google",
        ),
        ("https://proxy.example/gemini/", None, "https://proxy.example/gemini"),
        ("https://proxy.example/gemini", "v1alpha", "https://proxy.example/gemini/v1alpha"),
    ],
)
def test_base_url_follows_litellm_for_a_configured_api_base(
    api_base: str | None, api_version: str | None, expected: str
) -> None:
    assert base_url(api_base, api_version) == expected


def test_urls_never_carry_the_key(deployment: Deployment) -> None:
    target = deployment.prepared
    assert isinstance(target, GeminiTarget)
    for endpoint in (target.generate, target.stream, target.embed):
        assert KEY not in endpoint.url
        assert endpoint.headers["x-goog-api-key"] == KEY
    assert target.stream.url.endswith("/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse")
    assert KEY not in repr(target)


async def test_plain_chat(http_client: HttpClient, fake: FakeGemini, deployment: Deployment) -> None:
    body = {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}]}
    response = await adapter.chat(
        http_client, call(deployment, {**body, "temperature": 0.3, "max_tokens": 50})
    )

    sent = fake.requests[-1]
    assert sent.path == "/v1beta/models/gemini-2.0-flash:generateContent"
    assert sent.query == {}  # no ?key=
    assert sent.headers["x-goog-api-key"] == KEY
    assert sent.json["systemInstruction"] == {"parts": [{"text": "be brief"}]}
    assert sent.json["generationConfig"] == {"temperature": 0.3, "maxOutputTokens": 50}
    assert response.body["object"] == "chat.completion"
    choice = response.body["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "echo: hello"}
    assert choice["finish_reason"] == "stop"
    assert response.body["usage"]["prompt_tokens"] > 0


async def test_several_candidates(http_client: HttpClient, fake: FakeGemini, deployment: Deployment) -> None:
    response = await adapter.chat(http_client, call(deployment, {**ask(), "n": 2}))
    assert fake.requests[-1].json["generationConfig"]["candidateCount"] == 2
    assert [c["index"] for c in response.body["choices"]] == [0, 1]


async def test_function_call(http_client: HttpClient, fake: FakeGemini, deployment: Deployment) -> None:
    fake.enqueue(GeminiReply.function_call("get_weather", {"city": "Paris"}))
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    response = await adapter.chat(
        http_client, call(deployment, {**ask(), "tools": tools, "tool_choice": "auto"})
    )
    assert fake.requests[-1].json["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}
    choice = response.body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    call_ = choice["message"]["tool_calls"][0]
    assert call_["function"] == {"name": "get_weather", "arguments": '{"city":"Paris"}'}
    assert call_["id"].startswith("call_")


async def test_streamed_chat(http_client: HttpClient, fake: FakeGemini, deployment: Deployment) -> None:
    fake.enqueue(
        GeminiReply.function_call("lookup", {"q": "Paris"}, text="Looking that up for you.", signature="c2ln")
    )
    body = {**ask(), "stream": True, "stream_options": {"include_usage": True}}
    chunks = await collect(adapter.chat_stream(http_client, call(deployment, body)))

    sent = fake.requests[-1]
    assert sent.path == "/v1beta/models/gemini-2.0-flash:streamGenerateContent"
    assert sent.query == {"alt": "sse"}
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert "".join(d.get("content") or "" for d in deltas) == "Looking that up for you."
    assert len([d for d in deltas if d.get("content")]) > 1  # it arrived in pieces
    calls = [tc for d in deltas for tc in d.get("tool_calls", [])]
    assert len(calls) == 1
    assert calls[0]["index"] == 0
    assert orjson.loads(calls[0]["function"]["arguments"]) == {"q": "Paris"}
    assert calls[0]["id"].endswith("__thought__c2ln")
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "tool_calls"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["total_tokens"] > 0


# --- safety --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reply", [GeminiReply(prompt_block="SAFETY"), GeminiReply.text("", finish_reason="SAFETY")]
)
async def test_safety_blocks_are_content_policy_errors(
    http_client: HttpClient, fake: FakeGemini, deployment: Deployment, reply: GeminiReply
) -> None:
    for stream in (False, True):
        fake.enqueue(reply)
        with pytest.raises(errors.ContentPolicyViolationError) as info:
            if stream:
                await collect(adapter.chat_stream(http_client, call(deployment, {**ask(), "stream": True})))
            else:
                await adapter.chat(http_client, call(deployment, ask()))
        assert info.value.deployment_id == deployment.id
        assert not info.value.retryable  # the router moves on to content_policy_fallbacks instead


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "google_status", "message", "cls"),
    [
        (429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota).", errors.RateLimitError),
        (
            503,
            "UNAVAILABLE",
            "The model is overloaded. Please try again later.",
            errors.ServiceUnavailableError,
        ),
        (500, "INTERNAL", "An internal error has occurred.", errors.InternalServerError),
        (404, "NOT_FOUND", "models/gemini-9 is not found for API version v1beta", errors.NotFoundError),
        (
            400,
            "INVALID_ARGUMENT",
            "The input token count (1200345) exceeds the maximum number of tokens allowed (1048576).",
            errors.ContextWindowExceededError,
        ),
    ],
)
async def test_upstream_errors_are_mapped(
    http_client: HttpClient,
    fake: FakeGemini,
    deployment: Deployment,
    status: int,
    google_status: str,
    message: str,
    cls: type[errors.OpenAIError],
) -> None:
    for stream in (False, True):
        fake.enqueue(GeminiReply.failure(status, google_status, message))
        with pytest.raises(cls) as info:
            if stream:
                await collect(adapter.chat_stream(http_client, call(deployment, {**ask(), "stream": True})))
            else:
                await adapter.chat(http_client, call(deployment, ask()))
        assert type(info.value) is cls
        assert info.value.upstream_status == status
        assert (info.value.llm_provider, info.value.model, info.value.deployment_id) == (
            "gemini",
            MODEL,
            deployment.id,
        )


async def test_rate_limit_retry_delay(
    http_client: HttpClient, fake: FakeGemini, deployment: Deployment
) -> None:
    details = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "21s"}]
    fake.enqueue(GeminiReply.failure(429, "RESOURCE_EXHAUSTED", "quota", details=details))
    with pytest.raises(errors.RateLimitError) as info:
        await adapter.chat(http_client, call(deployment, ask()))
    assert info.value.retry_after == 21.0


async def test_wrong_key_is_an_authentication_error_without_the_key(
    http_client: HttpClient, fake: FakeGemini, make_deployment: MakeDeployment
) -> None:
    wrong = "AIzaSyWrongKey-99999999999"
    deployment = make_deployment("gemini", MODEL, api_base=fake.base_url + "/v1beta", api_key=wrong)
    with pytest.raises(errors.AuthenticationError) as info:
        await adapter.chat(http_client, call(deployment, ask()))
    assert info.value.upstream_status == 400
    for text in (str(info.value), repr(info.value), orjson.dumps(info.value.to_dict()).decode()):
        assert wrong not in text


async def test_missing_key_fails_before_any_request(
    http_client: HttpClient, fake: FakeGemini, make_deployment: MakeDeployment
) -> None:
    deployment = make_deployment("gemini", MODEL, api_base=fake.base_url + "/v1beta")
    with pytest.raises(errors.AuthenticationError) as info:
        await adapter.chat(http_client, call(deployment, ask()))
    assert "GEMINI_API_KEY" in info.value.message
    assert fake.requests == []


async def test_in_band_error_mid_stream(
    http_client: HttpClient, fake: FakeGemini, deployment: Deployment
) -> None:
    plan = StreamPlan(error_after=2, error_event=error_body(503, "UNAVAILABLE", "The model is overloaded."))
    fake.enqueue(GeminiReply.text("a long answer in many small pieces", stream=plan))
    received = []
    with pytest.raises(errors.ServiceUnavailableError):
        async for chunk in adapter.chat_stream(http_client, call(deployment, {**ask(), "stream": True})):
            received.append(chunk)
    assert received


@pytest.mark.parametrize("plan", [StreamPlan(cut_after=2), StreamPlan(end_after=2)])
async def test_unfinished_stream_is_a_connection_error(
    http_client: HttpClient, fake: FakeGemini, deployment: Deployment, plan: StreamPlan
) -> None:
    fake.enqueue(GeminiReply.text("a long answer in many small pieces", stream=plan))
    with pytest.raises(errors.APIConnectionError) as info:
        await collect(adapter.chat_stream(http_client, call(deployment, {**ask(), "stream": True})))
    assert info.value.retryable


# --- parameters ----------------------------------------------------------------------------------


async def test_unsupported_parameter_without_and_with_drop_params(
    http_client: HttpClient, fake: FakeGemini, deployment: Deployment
) -> None:
    body = {**ask(), "logit_bias": {"1": 3}, "temperature": 0.1}
    with pytest.raises(errors.UnsupportedParamsError) as info:
        await adapter.chat(http_client, call(deployment, body))
    assert info.value.param == "logit_bias"
    assert info.value.deployment_id == deployment.id
    assert fake.requests == []
    await adapter.chat(http_client, call(deployment, body, drop_params=True))
    assert fake.requests[-1].json["generationConfig"] == {"temperature": 0.1}


# --- embeddings ----------------------------------------------------------------------------------


async def test_embeddings(http_client: HttpClient, fake: FakeGemini, make_deployment: MakeDeployment) -> None:
    deployment = make_deployment(
        "gemini", "text-embedding-004", api_base=fake.base_url + "/v1beta", api_key=KEY
    )
    body = {"model": "emb", "input": ["hello", "world"], "dimensions": 4}
    response = await adapter.embedding(
        http_client, UpstreamRequest(deployment=deployment, body=body, timeout=5)
    )
    sent = fake.requests[-1]
    assert sent.path == "/v1beta/models/text-embedding-004:batchEmbedContents"
    assert sent.headers["x-goog-api-key"] == KEY
    assert [r["outputDimensionality"] for r in sent.json["requests"]] == [4, 4]
    assert response.body["object"] == "list"
    assert [item["index"] for item in response.body["data"]] == [0, 1]
    assert all(len(item["embedding"]) == 4 for item in response.body["data"])
    assert response.body["usage"]["prompt_tokens"] > 0


async def test_embeddings_as_base64(
    http_client: HttpClient, fake: FakeGemini, make_deployment: MakeDeployment
) -> None:
    deployment = make_deployment(
        "gemini", "text-embedding-004", api_base=fake.base_url + "/v1beta", api_key=KEY
    )
    body = {"input": "hello", "encoding_format": "base64", "dimensions": 3}
    response = await adapter.embedding(
        http_client, UpstreamRequest(deployment=deployment, body=body, timeout=5)
    )
    packed = base64.b64decode(response.body["data"][0]["embedding"])
    assert len(struct.unpack("<3f", packed)) == 3


async def test_deployment_parameters_apply_to_every_call(
    http_client: HttpClient, fake: FakeGemini, make_deployment: MakeDeployment
) -> None:
    safety = [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}]
    extra = {"safety_settings": safety, "top_k": 20, "extra_body": {"cachedContent": "cachedContents/abc"}}
    deployment = make_deployment(
        "gemini", MODEL, api_base=fake.base_url + "/v1beta", api_key=KEY, extra=extra
    )
    await adapter.chat(http_client, call(deployment, ask()))
    sent = fake.requests[-1].json
    assert sent["safetySettings"] == safety
    assert sent["generationConfig"]["topK"] == 20
    assert sent["cachedContent"] == "cachedContents/abc"


async def test_a_vertex_express_style_api_base_gets_nothing_inserted(
    http_client: HttpClient, fake: FakeGemini, make_deployment: MakeDeployment
) -> None:
    # LiteLLM calls {api_base}/models/{model}:generateContent; routerd used to insert /v1beta
    deployment = make_deployment("gemini", MODEL, api_base=fake.base_url + "/", api_key=KEY)
    response = await adapter.chat(http_client, call(deployment, ask()))
    assert fake.requests[-1].path == "/models/gemini-2.0-flash:generateContent"
    assert response.body["choices"][0]["message"]["content"] == "echo: hello"


async def test_stream_always_ends_with_usage_so_the_router_meters_it(
    http_client: HttpClient, fake: FakeGemini, deployment: Deployment
) -> None:
    # the client did not ask for usage: the adapter still sends it (the router's relay hides it)
    fake.enqueue(GeminiReply.text("metered anyway"))
    chunks = await collect(adapter.chat_stream(http_client, call(deployment, {**ask(), "stream": True})))
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == (
        "metered anyway"
    )
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["total_tokens"] > 0
