"""Issue 3, done when: the official ``openai`` client drives the real daemon through every endpoint.

Each call runs twice: once routed to a fake OpenAI upstream (a real HTTP server speaking OpenAI's wire
format) and once to the built-in offline ``mock/`` provider.
"""

from __future__ import annotations

import base64
import struct

import openai
import pytest
from clients import tracked

from routerd.testing import FakeOpenAI
from routerd.testing.server import RouterdServer

from .support import MASTER_KEY, OPENAI_KEY, client_for, user

MOCK_ANSWER = "Hello from the mock deployment."
# (public model, deployment id, the answer to "what is routerd?")
CHAT_TARGETS = [
    pytest.param("gpt-4o-mini", "openai-chat", "what is routerd?", id="openai-upstream"),
    pytest.param("mock-chat", "mock-chat", MOCK_ANSWER, id="mock"),
]


@pytest.mark.parametrize(("model", "deployment", "answer"), CHAT_TARGETS)
def test_chat_completion(gateway: RouterdServer, model: str, deployment: str, answer: str) -> None:
    completion = client_for(gateway).chat.completions.create(
        model=model, messages=user("what is routerd?"), temperature=0.2, seed=7, user="e2e"
    )

    assert completion.object == "chat.completion"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == answer
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens > 0
    assert completion.usage.completion_tokens > 0
    usage = completion.usage
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_chat_parameters_reach_the_upstream(gateway: RouterdServer, fake_openai: FakeOpenAI) -> None:
    client_for(gateway).chat.completions.create(
        model="gpt-4o-mini",
        messages=user("hi"),
        temperature=0.2,
        top_p=0.9,
        stop=["\n\n"],
        max_completion_tokens=64,
        seed=7,
        user="e2e",
        response_format={"type": "json_object"},
    )

    sent = fake_openai.requests[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {OPENAI_KEY}"  # the upstream key, not the client's
    assert sent.json["model"] == "gpt-4o-mini"
    for name, value in {
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": ["\n\n"],
        "max_completion_tokens": 64,
        "seed": 7,
        "user": "e2e",
        "response_format": {"type": "json_object"},
    }.items():
        assert sent.json[name] == value, name


@pytest.mark.parametrize(("model", "deployment", "answer"), CHAT_TARGETS)
def test_streamed_chat(gateway: RouterdServer, model: str, deployment: str, answer: str) -> None:
    client = client_for(gateway)
    plain = client.chat.completions.create(model=model, messages=user("what is routerd?"))

    stream = client.chat.completions.create(
        model=model,
        messages=user("what is routerd?"),
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content_chunks) >= 2, "the answer arrives in pieces, not as one buffered chunk"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == answer
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == ["stop"]
    # include_usage: one last chunk with no choices and the usage of the whole answer
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert plain.usage is not None
    assert chunks[-1].usage.prompt_tokens == plain.usage.prompt_tokens
    assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens
    assert all(c.usage is None for c in chunks[:-1])


def test_streamed_chat_without_usage_option_has_no_usage_chunk(gateway: RouterdServer) -> None:
    chunks = list(
        client_for(gateway).chat.completions.create(model="mock-chat", messages=user("hi"), stream=True)
    )

    assert chunks
    assert all(chunk.usage is None for chunk in chunks)
    assert all(chunk.choices for chunk in chunks)


COMPLETION_TARGETS = [
    pytest.param("instruct", "Say this is a test", id="openai-native-completions"),
    pytest.param("gpt-4o-mini", "Say this is a test", id="openai-chat-model-through-chat"),
    pytest.param("mock-chat", MOCK_ANSWER, id="mock"),
]


@pytest.mark.parametrize(("model", "answer"), COMPLETION_TARGETS)
def test_text_completion(gateway: RouterdServer, model: str, answer: str) -> None:
    completion = client_for(gateway).completions.create(
        model=model, prompt="Say this is a test", max_tokens=32
    )

    assert completion.object == "text_completion"
    assert [choice.text for choice in completion.choices] == [answer]
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens > 0


def test_text_completion_with_a_list_of_prompts(gateway: RouterdServer) -> None:
    completion = client_for(gateway).completions.create(model="instruct", prompt=["first", "second"])

    assert [(choice.index, choice.text) for choice in completion.choices] == [(0, "first"), (1, "second")]


@pytest.mark.parametrize(("model", "answer"), COMPLETION_TARGETS)
def test_streamed_text_completion(gateway: RouterdServer, model: str, answer: str) -> None:
    chunks = list(
        client_for(gateway).completions.create(
            model=model,
            prompt="Say this is a test",
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    assert all(chunk.object == "text_completion" for chunk in chunks)
    assert "".join(choice.text for chunk in chunks for choice in chunk.choices) == answer
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == ["stop"]
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0


@pytest.mark.parametrize(("model", "dimensions"), [("embed", 8), ("mock-embed", 16)])
def test_embeddings(gateway: RouterdServer, model: str, dimensions: int) -> None:
    client = client_for(gateway)

    result = client.embeddings.create(model=model, input=["the quick brown fox", "jumps"])
    again = client.embeddings.create(model=model, input="the quick brown fox")

    assert result.object == "list"
    assert [item.index for item in result.data] == [0, 1]
    assert all(item.object == "embedding" and len(item.embedding) == dimensions for item in result.data)
    assert result.data[0].embedding != result.data[1].embedding
    assert again.data[0].embedding == pytest.approx(result.data[0].embedding)  # deterministic per text
    assert result.usage.prompt_tokens > 0


def test_base64_embeddings_decode_to_the_same_vector(gateway: RouterdServer) -> None:
    # The openai client asks for base64 by default when numpy is around and decodes it; ask explicitly.
    client = client_for(gateway)
    floats = client.embeddings.create(model="mock-embed", input="vector", encoding_format="float")
    encoded = client.embeddings.create(model="mock-embed", input="vector", encoding_format="base64")

    assert isinstance(encoded.data[0].embedding, str)
    raw = base64.b64decode(encoded.data[0].embedding)
    assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == pytest.approx(floats.data[0].embedding)


def test_models_list_and_retrieve(gateway: RouterdServer) -> None:
    client = client_for(gateway)

    listed = {model.id: model for model in client.models.list()}
    model = client.models.retrieve("mock-chat")

    assert set(listed) == {
        "gpt-4o-mini",
        "instruct",
        "embed",
        "slow-upstream",
        "wrong-key",
        "mock-chat",
        "mock-embed",
    }
    assert all(m.object == "model" and m.owned_by for m in listed.values())
    assert (model.id, model.object) == ("mock-chat", "model")


def test_response_headers_name_the_request_and_the_deployment(gateway: RouterdServer) -> None:
    client = client_for(gateway)

    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=user("hi"), extra_headers={"x-request-id": "e2e-request-42"}
    )
    generated = client.chat.completions.with_raw_response.create(model="mock-chat", messages=user("hi"))

    assert raw.headers["x-request-id"] == "e2e-request-42"  # an inbound id is kept
    assert raw.headers["x-routerd-model-id"] == "openai-chat"
    assert raw.headers["x-routerd-attempts"] == "1"
    assert raw.parse().choices[0].message.content == "hi"
    assert len(generated.headers["x-request-id"]) >= 16  # one is made up when none came in
    assert generated.headers["x-request-id"] != raw.headers["x-request-id"]
    assert generated.headers["x-routerd-model-id"] == "mock-chat"
    assert generated.headers["x-routerd-attempts"] == "1"


def test_streamed_response_carries_the_headers_too(gateway: RouterdServer) -> None:
    with client_for(gateway).chat.completions.with_streaming_response.create(
        model="gpt-4o-mini",
        messages=user("stream me"),
        stream=True,
        extra_headers={"x-request-id": "e2e-stream-7"},
    ) as response:
        assert response.headers["x-request-id"] == "e2e-stream-7"
        assert response.headers["x-routerd-model-id"] == "openai-chat"
        assert response.headers["x-routerd-attempts"] == "1"
        assert response.headers["content-type"].startswith("text/event-stream")
        text = "".join(chunk.choices[0].delta.content or "" for chunk in response.parse() if chunk.choices)
    assert text == "stream me"


def test_api_key_header_is_accepted_like_a_bearer_token(gateway: RouterdServer) -> None:
    # Azure-style clients send the key as `api-key`; the gateway takes either.
    client = tracked(
        openai.OpenAI(
            base_url=gateway.base_url + "/v1",
            api_key="unused",
            max_retries=0,
            default_headers={"Authorization": "", "api-key": MASTER_KEY},
        )
    )

    assert client.chat.completions.create(model="mock-chat", messages=user("hi")).choices


async def test_async_client_chat_and_stream(gateway: RouterdServer) -> None:
    async with openai.AsyncOpenAI(
        base_url=gateway.base_url + "/v1", api_key=MASTER_KEY, max_retries=0
    ) as client:
        completion = await client.chat.completions.create(model="gpt-4o-mini", messages=user("async hi"))
        stream = await client.chat.completions.create(
            model="mock-chat", messages=user("hi"), stream=True, stream_options={"include_usage": True}
        )
        pieces = [chunk async for chunk in stream]
        embedding = await client.embeddings.create(model="mock-embed", input="async")

    assert completion.choices[0].message.content == "async hi"
    assert "".join(c.choices[0].delta.content or "" for c in pieces if c.choices) == MOCK_ANSWER
    assert pieces[-1].usage is not None
    assert len(embedding.data[0].embedding) == 16
