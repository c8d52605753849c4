"""The OpenAI-family adapters against the fake OpenAI upstream, through both HTTP clients."""

from __future__ import annotations

import socket
from typing import Any

import httpx
import pytest
from openai.types import Completion, CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from routerd import errors
from routerd.http import HttpxClient
from routerd.providers.base import get_adapter
from routerd.testing import FakeOpenAI, Reply

KEY = "sk-test-key-123456"
CHAT_BODY = {"model": "public-name", "messages": [{"role": "user", "content": "Say this is a test"}]}


@pytest.fixture
def deployment(make_deployment, fake_openai: FakeOpenAI):
    def build(provider: str = "openai", model: str = "gpt-4o-mini", **fields: Any):
        fields.setdefault("api_base", fake_openai.base_url)
        fields.setdefault("api_key", KEY)
        return make_deployment(provider, model, **fields)

    return build


async def collect(stream) -> list[dict[str, Any]]:
    return [chunk async for chunk in stream]


# --- chat ----------------------------------------------------------------------------------------


async def test_chat_round_trip(http_client, fake_openai, deployment, make_request) -> None:
    fake_openai.enqueue(Reply(headers={"x-ratelimit-remaining-requests": "42", "x-other": "no"}))
    dep = deployment(organization="org-9", extra={"top_k": 5})
    body = {**CHAT_BODY, "temperature": 0.2, "stream": False, "mock_response": "ignored", "num_retries": 3}
    response = await get_adapter("openai").chat(http_client, make_request(dep, body))

    ChatCompletion.model_validate(response.body)
    assert response.body["choices"][0]["message"]["content"] == "Say this is a test"
    assert response.body["usage"]["prompt_tokens"] > 0
    assert response.headers == {"x-ratelimit-remaining-requests": "42"}
    sent = fake_openai.requests[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["openai-organization"] == "org-9"
    assert sent.headers["content-type"] == "application/json"
    assert sent.json == {
        "top_k": 5,
        "model": "gpt-4o-mini",
        "messages": CHAT_BODY["messages"],
        "temperature": 0.2,
    }


async def test_fine_tuned_model_id_is_sent_as_is(http_client, fake_openai, deployment, make_request) -> None:
    dep = deployment(model="ft:gpt-4o-mini:my-org:suffix:abc123")
    response = await get_adapter("openai").chat(http_client, make_request(dep, CHAT_BODY))
    assert fake_openai.requests[-1].json["model"] == "ft:gpt-4o-mini:my-org:suffix:abc123"
    assert response.body["model"] == "ft:gpt-4o-mini:my-org:suffix:abc123"


async def test_wildcard_deployment_is_prepared_on_the_fly(
    http_client, fake_openai, deployment, make_request
) -> None:
    dep = deployment(model="gpt-4o", prepare=False)
    assert dep.prepared is None
    await get_adapter("openai").chat(http_client, make_request(dep, CHAT_BODY))
    assert fake_openai.requests[-1].json["model"] == "gpt-4o"


async def test_extra_headers_are_forwarded_but_cannot_replace_credentials(
    http_client, fake_openai, deployment, make_request
) -> None:
    request = make_request(
        deployment(), CHAT_BODY, extra_headers={"X-Trace": "t-1", "Authorization": "Bearer evil"}
    )
    await get_adapter("openai").chat(http_client, request)
    sent = fake_openai.requests[-1].headers
    assert sent["x-trace"] == "t-1"
    assert sent["authorization"] == f"Bearer {KEY}"


async def test_compatible_server_without_key(http_client, make_deployment, make_request) -> None:
    async with FakeOpenAI(answer="local answer") as local:
        dep = make_deployment("openai", "qwen2.5-7b-instruct", api_base=local.base_url)
        response = await get_adapter("openai").chat(http_client, make_request(dep, CHAT_BODY))
        assert response.body["choices"][0]["message"]["content"] == "local answer"
        assert "authorization" not in local.requests[-1].headers


async def test_hosted_vllm_with_bare_host(http_client, fake_openai, make_deployment, make_request) -> None:
    dep = make_deployment(
        "hosted_vllm", "meta-llama/Llama-3.1-8B-Instruct", api_base=fake_openai.origin, api_key=KEY
    )
    await get_adapter("hosted_vllm").chat(http_client, make_request(dep, CHAT_BODY))
    assert fake_openai.requests[-1].path == "/v1/chat/completions"
    response = await get_adapter("hosted_vllm").completion(http_client, make_request(dep, {"prompt": "Once"}))
    assert fake_openai.requests[-1].path == "/v1/completions"  # vLLM serves completions natively
    assert response.body["object"] == "text_completion"


# --- errors --------------------------------------------------------------------------------------


async def test_rate_limit_with_retry_after(http_client, fake_openai, deployment, make_request) -> None:
    fake_openai.enqueue(
        Reply.error(429, "Rate limit reached for requests", code="rate_limit_exceeded", retry_after=7)
    )
    dep = deployment()
    with pytest.raises(errors.RateLimitError) as info:
        await get_adapter("openai").chat(http_client, make_request(dep, CHAT_BODY))
    error = info.value
    assert error.retry_after == 7.0
    assert (error.llm_provider, error.model, error.deployment_id, error.upstream_status) == (
        "openai",
        "gpt-4o-mini",
        dep.id,
        429,
    )


@pytest.mark.parametrize(
    ("reply", "cls"),
    [
        (Reply.error(500, "The server had an error"), errors.BadGatewayError),
        (Reply.error(503, "overloaded"), errors.ServiceUnavailableError),
        (Reply.error(400, "too long", code="context_length_exceeded"), errors.ContextWindowExceededError),
        (Reply.error(400, "flagged", code="content_policy_violation"), errors.ContentPolicyViolationError),
        (Reply(status=502, body=b"<html><h1>502 Bad Gateway</h1></html>"), errors.BadGatewayError),
        (Reply(status=200, body=b"this is not json"), errors.BadGatewayError),
        (Reply(status=200, json=[1, 2]), errors.BadGatewayError),
        (
            Reply(status=200, json={"error": {"message": "quota", "type": "rate_limit_error"}}),
            errors.RateLimitError,
        ),
    ],
)
async def test_upstream_failures_are_translated(
    http_client, fake_openai, deployment, make_request, reply, cls
) -> None:
    fake_openai.enqueue(reply)
    with pytest.raises(errors.OpenAIError) as info:
        await get_adapter("openai").chat(http_client, make_request(deployment(), CHAT_BODY))
    assert type(info.value) is cls
    assert info.value.llm_provider == "openai"


async def test_wrong_key_is_authentication_error_without_the_key(
    http_client, fake_openai, deployment, make_request
) -> None:
    dep = deployment(api_key="sk-wrong-key-abcdef987654")
    with pytest.raises(errors.AuthenticationError) as info:
        await get_adapter("openai").chat(http_client, make_request(dep, CHAT_BODY))
    rendered = f"{info.value} {info.value.to_dict()}"
    assert "Incorrect API key" in rendered
    assert "sk-" not in rendered and "7654" not in rendered


async def test_hang_becomes_timeout(http_client, fake_openai, deployment, make_request) -> None:
    fake_openai.enqueue(Reply(hang=True))
    with pytest.raises(errors.Timeout) as info:
        await get_adapter("openai").chat(http_client, make_request(deployment(), CHAT_BODY, timeout=0.2))
    assert info.value.llm_provider == "openai"
    assert info.value.status_code == 504


async def test_unreachable_upstream_is_connection_error(http_client, make_deployment, make_request) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dep = make_deployment("openai", "gpt-4o", api_base=f"http://127.0.0.1:{port}/v1", api_key=KEY)
    with pytest.raises(errors.APIConnectionError) as info:
        await get_adapter("openai").chat(http_client, make_request(dep, CHAT_BODY))
    assert info.value.deployment_id == dep.id
    assert KEY not in str(info.value)


# --- streaming -----------------------------------------------------------------------------------


async def test_chat_stream_chunks_and_usage(http_client, fake_openai, deployment, make_request) -> None:
    body = {**CHAT_BODY, "stream_options": {"include_usage": True}}
    chunks = await collect(get_adapter("openai").chat_stream(http_client, make_request(deployment(), body)))
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Say this is a test"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0
    assert fake_openai.requests[-1].json["stream"] is True


async def test_stream_error_is_raised_before_any_chunk(
    http_client, fake_openai, deployment, make_request
) -> None:
    fake_openai.enqueue(Reply.error(429, "slow down", retry_after_ms=1500))
    stream = get_adapter("openai").chat_stream(http_client, make_request(deployment(), CHAT_BODY))
    with pytest.raises(errors.RateLimitError) as info:
        await anext(stream)
    assert info.value.retry_after == 1.5


async def test_cut_stream_raises_after_delivering_what_arrived(
    http_client, fake_openai, deployment, make_request
) -> None:
    fake_openai.enqueue(Reply(content="one two three four five", cut_after=3))
    received = []
    with pytest.raises(errors.APIConnectionError) as info:
        async for chunk in get_adapter("openai").chat_stream(
            http_client, make_request(deployment(), CHAT_BODY)
        ):
            received.append(chunk)
    assert len(received) == 3
    assert info.value.retryable and info.value.llm_provider == "openai"


async def test_in_band_stream_error(http_client, fake_openai, deployment, make_request) -> None:
    error = {
        "error": {"message": "The server had an error while processing your request.", "type": "server_error"}
    }
    fake_openai.enqueue(Reply(error_after=2, inband_error=error))
    received = []
    with pytest.raises(errors.BadGatewayError) as info:
        async for chunk in get_adapter("openai").chat_stream(
            http_client, make_request(deployment(), CHAT_BODY)
        ):
            received.append(chunk)
    assert len(received) == 2
    assert "server had an error" in info.value.message


async def test_closing_the_stream_closes_the_upstream(
    http_client, fake_openai, deployment, make_request
) -> None:
    fake_openai.enqueue(Reply(content="a b c d e f", hang_after=2))
    stream = get_adapter("openai").chat_stream(http_client, make_request(deployment(), CHAT_BODY))
    first = await anext(stream)
    second = await anext(stream)
    assert (
        first["choices"][0]["delta"]["role"] == "assistant"
        and second["choices"][0]["delta"]["content"] == "a"
    )
    assert fake_openai.disconnects == 0
    await stream.aclose()
    await fake_openai.wait_disconnect(timeout=5)
    assert fake_openai.disconnects == 1


async def test_stream_answered_with_plain_json_is_converted(
    http_client, fake_openai, deployment, make_request
) -> None:
    complete = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "whole"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
    fake_openai.enqueue(Reply(json=complete))
    chunks = await collect(
        get_adapter("openai").chat_stream(http_client, make_request(deployment(), CHAT_BODY))
    )
    assert chunks[0]["choices"][0]["delta"]["content"] == "whole"
    assert chunks[-1]["usage"]["total_tokens"] == 2


# --- completions ---------------------------------------------------------------------------------


async def test_chat_model_serves_completions_through_chat(
    http_client, fake_openai, deployment, make_request
) -> None:
    body = {"model": "public", "prompt": ["Say hi", "Say bye"], "echo": True, "max_tokens": 7}
    response = await get_adapter("openai").completion(http_client, make_request(deployment(), body))
    Completion.model_validate(response.body)
    assert [r.path for r in fake_openai.requests] == ["/v1/chat/completions"] * 2
    assert sorted(r.json["messages"][0]["content"] for r in fake_openai.requests) == ["Say bye", "Say hi"]
    assert [c["text"] for c in response.body["choices"]] == ["Say hiSay hi", "Say byeSay bye"]
    assert response.body["usage"]["prompt_tokens"] > 0


async def test_chat_model_streams_completions_through_chat(
    http_client, fake_openai, deployment, make_request
) -> None:
    body = {"prompt": "one two", "stream": True, "stream_options": {"include_usage": True}}
    chunks = await collect(
        get_adapter("openai").completion_stream(http_client, make_request(deployment(), body))
    )
    # (streamed text chunks have finish_reason null, which openai's Completion type only allows unvalidated)
    assert all(c["object"] == "text_completion" for c in chunks)
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"
    assert "".join(c["choices"][0]["text"] for c in chunks if c["choices"]) == "one two"
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0


async def test_text_completion_openai_is_native(http_client, fake_openai, deployment, make_request) -> None:
    dep = deployment("text-completion-openai", "gpt-3.5-turbo-instruct")
    body = {"model": "public", "prompt": [1, 2, 3], "echo": True, "logprobs": 2, "suffix": "!"}
    response = await get_adapter("text-completion-openai").completion(http_client, make_request(dep, body))
    sent = fake_openai.requests[-1]
    assert sent.path == "/v1/completions"
    assert sent.json == {
        "model": "gpt-3.5-turbo-instruct",
        "prompt": [1, 2, 3],
        "echo": True,
        "logprobs": 2,
        "suffix": "!",
    }
    assert response.body["object"] == "text_completion"
    stream_body = {"prompt": "Say this", "stream": True}
    chunks = await collect(
        get_adapter("text-completion-openai").completion_stream(http_client, make_request(dep, stream_body))
    )
    assert "".join(c["choices"][0]["text"] for c in chunks if c["choices"]) == "Say this"
    assert [c for c in chunks if c["choices"]][-1]["choices"][0]["finish_reason"] == "stop"
    # streams always ask the upstream for usage (the router hides it again from clients that did not)
    assert fake_openai.requests[-1].json["stream_options"] == {"include_usage": True}
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0


async def test_text_model_serves_chat_through_completions(
    http_client, fake_openai, deployment, make_request
) -> None:
    dep = deployment("text-completion-openai", "gpt-3.5-turbo-instruct")
    adapter = get_adapter("text-completion-openai")
    response = await adapter.chat(http_client, make_request(dep, CHAT_BODY))
    ChatCompletion.model_validate(response.body)
    assert fake_openai.requests[-1].path == "/v1/completions"
    assert fake_openai.requests[-1].json["prompt"] == "Say this is a test"
    assert response.body["choices"][0]["message"]["content"] == "Say this is a test"
    chunks = await collect(adapter.chat_stream(http_client, make_request(dep, CHAT_BODY)))
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert (
        "".join(c["choices"][0]["delta"]["content"] for c in chunks if c["choices"]) == "Say this is a test"
    )
    assert chunks[-1]["usage"]["prompt_tokens"] > 0  # the upstream was asked for usage


# --- embeddings ----------------------------------------------------------------------------------


async def test_embeddings(http_client, fake_openai, deployment, make_request) -> None:
    dep = deployment(model="text-embedding-3-small")
    body = {"model": "emb", "input": ["a", "b"], "encoding_format": "float", "dimensions": 4}
    response = await get_adapter("openai").embedding(http_client, make_request(dep, body))
    CreateEmbeddingResponse.model_validate(response.body)
    assert fake_openai.requests[-1].path == "/v1/embeddings"
    assert fake_openai.requests[-1].json == {**body, "model": "text-embedding-3-small"}
    assert [len(item["embedding"]) for item in response.body["data"]] == [4, 4]


# --- an injected httpx client (httpx.MockTransport) ------------------------------------------------


async def test_injected_httpx_client_with_mock_transport(make_deployment, make_request) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = {
            "id": "chatcmpl-x",
            "object": "chat.completion",
            "created": 1,
            "model": "gpt-4o",
            "choices": [],
        }
        return httpx.Response(200, json=answer, headers={"x-ratelimit-remaining-tokens": "99"})

    client = HttpxClient(httpx.AsyncClient(transport=httpx.MockTransport(handler)), owned=True)
    dep = make_deployment("openai", "gpt-4o", api_key=KEY)
    response = await get_adapter("openai").chat(client, make_request(dep, CHAT_BODY))
    await client.aclose()
    assert str(seen[0].url) == "https://api.openai.com/v1/chat/completions"
    assert seen[0].headers["authorization"] == f"Bearer {KEY}"
    assert response.headers == {"x-ratelimit-remaining-tokens": "99"}


async def test_transport_failure_mid_stream_is_annotated(make_deployment, make_request) -> None:
    class DropsAfterOneChunk(httpx.AsyncByteStream):
        async def __aiter__(self):
            yield b'data: {"choices": [{"index": 0, "delta": {"role": "assistant"}}]}\n\n'
            raise httpx.ReadError("connection reset by peer")

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=DropsAfterOneChunk())

    client = HttpxClient(httpx.AsyncClient(transport=httpx.MockTransport(handler)), owned=True)
    dep = make_deployment("openai", "gpt-4o", api_key=KEY)
    received = []
    with pytest.raises(errors.APIConnectionError) as info:
        async for chunk in get_adapter("openai").chat_stream(client, make_request(dep, CHAT_BODY)):
            received.append(chunk)
    await client.aclose()
    assert len(received) == 1
    assert (info.value.llm_provider, info.value.deployment_id) == ("openai", dep.id)
