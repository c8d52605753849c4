"""``sagemaker/`` and ``sagemaker_chat/`` against the fake SageMaker runtime."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from routerd import errors
from routerd.config.table import Deployment
from routerd.http import HttpClient
from routerd.providers.base import UpstreamRequest, get_adapter
from routerd.providers.infer import split_model
from routerd.providers.sagemaker import SageMakerAdapter, SageMakerChatAdapter, to_tgi_request
from routerd.testing.fake_http import StreamPlan
from routerd.testing.sagemaker_fake import FakeSageMaker, SageMakerReply

AKID = "AKIDSAGEMAKER0000001"
SECRET = "sagemaker-secret-do-not-leak-456"
MakeDeployment = Callable[..., Deployment]


@pytest.fixture
async def fake() -> AsyncIterator[FakeSageMaker]:
    async with FakeSageMaker(access_key=AKID, secret_key=SECRET, region="us-west-2") as server:
        yield server


def deploy(make_deployment: MakeDeployment, fake: FakeSageMaker, provider: str) -> Deployment:
    extra = {"aws_access_key_id": AKID, "aws_secret_access_key": SECRET, "aws_region_name": "us-west-2"}
    return make_deployment(provider, "my-llama-endpoint", api_base=fake.base_url, extra=extra)


def call(deployment: Deployment, body: dict[str, Any]) -> UpstreamRequest:
    return UpstreamRequest(deployment=deployment, body={"model": "g", **body}, timeout=10.0)


ASK = {"messages": [{"role": "system", "content": "be nice"}, {"role": "user", "content": "hello there"}]}


def test_prefixes_and_registration() -> None:
    assert split_model("sagemaker/ep") == ("sagemaker", "ep")
    assert split_model("sagemaker_chat/ep") == ("sagemaker_chat", "ep")
    assert isinstance(get_adapter("sagemaker"), SageMakerAdapter)
    assert isinstance(get_adapter("sagemaker_chat"), SageMakerChatAdapter)


def test_tgi_request() -> None:
    body = {**ASK, "max_tokens": 50, "temperature": 0.1, "stop": "##"}
    assert to_tgi_request(body, stream=False) == {
        "inputs": "system: be nice\nuser: hello there\nassistant:",
        "parameters": {"details": True, "max_new_tokens": 50, "temperature": 0.1, "stop": ["##"]},
    }


async def test_tgi_chat(
    http_client: HttpClient, fake: FakeSageMaker, make_deployment: MakeDeployment
) -> None:
    deployment = deploy(make_deployment, fake, "sagemaker")
    response = await SageMakerAdapter().chat(http_client, call(deployment, ASK))
    recorded = fake.requests[-1]
    assert recorded.path == "/endpoints/my-llama-endpoint/invocations"
    assert "/us-west-2/sagemaker/aws4_request" in recorded.headers["authorization"]
    assert response.body["choices"][0]["message"]["content"] == "echo: hello there"
    assert response.body["choices"][0]["finish_reason"] == "stop"
    assert response.body["usage"]["completion_tokens"] == 3


async def test_tgi_stream_split_across_payload_parts(
    http_client: HttpClient, fake: FakeSageMaker, make_deployment: MakeDeployment
) -> None:
    deployment = deploy(make_deployment, fake, "sagemaker")
    body = {**ASK, "stream": True, "stream_options": {"include_usage": True}}
    chunks = [c async for c in SageMakerAdapter().chat_stream(http_client, call(deployment, body))]
    assert fake.requests[-1].path == "/endpoints/my-llama-endpoint/invocations-response-stream"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "echo: hello there"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"]["completion_tokens"] == 3


async def test_chat_api_endpoint(
    http_client: HttpClient, fake: FakeSageMaker, make_deployment: MakeDeployment
) -> None:
    deployment = deploy(make_deployment, fake, "sagemaker_chat")
    response = await SageMakerChatAdapter().chat(http_client, call(deployment, ASK))
    assert fake.requests[-1].json["messages"] == ASK["messages"]
    assert fake.requests[-1].json["model"] == "my-llama-endpoint"
    assert response.body["choices"][0]["message"]["content"] == "echo: hello there"

    chunks = [
        c
        async for c in SageMakerChatAdapter().chat_stream(
            http_client, call(deployment, {**ASK, "stream": True})
        )
    ]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "echo: hello there"


async def test_errors(http_client: HttpClient, fake: FakeSageMaker, make_deployment: MakeDeployment) -> None:
    deployment = deploy(make_deployment, fake, "sagemaker_chat")
    fake.enqueue(SageMakerReply(status=429, exception="ThrottlingException", message="slow"))
    with pytest.raises(errors.RateLimitError):
        await SageMakerChatAdapter().chat(http_client, call(deployment, ASK))
    fake.enqueue(SageMakerReply(status=424, exception="ModelError", message="Received client error (400)"))
    with pytest.raises(errors.BadGatewayError) as caught:
        await SageMakerChatAdapter().chat(http_client, call(deployment, ASK))
    assert caught.value.upstream_status == 424
    fake.enqueue(SageMakerReply(stream=StreamPlan(error_after=3), message="boom"))
    with pytest.raises(errors.BadGatewayError, match="boom"):
        _ = [
            c
            async for c in SageMakerAdapter().chat_stream(
                http_client, call(deploy(make_deployment, fake, "sagemaker"), ASK)
            )
        ]


async def test_cut_tgi_stream(
    http_client: HttpClient, fake: FakeSageMaker, make_deployment: MakeDeployment
) -> None:
    fake.enqueue(SageMakerReply(stream=StreamPlan(end_after=4)))
    deployment = deploy(make_deployment, fake, "sagemaker")
    with pytest.raises(errors.APIConnectionError, match="ended unexpectedly"):
        _ = [c async for c in SageMakerAdapter().chat_stream(http_client, call(deployment, ASK))]
